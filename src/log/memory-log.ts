// CommandLog held in memory: for the deterministic simulator and tests that need the log contract
// without disk. Same invariants as the SQLite log (contiguous seqs after the base, unique client
// ids, atomic batches, hard state, retention and reset); it is run against the same contract suite.
// It keeps every client id it holds (no window) and drops entry by entry (no batches).
import { assert } from '../domain/assert.js';
import { appendProblem, EMPTY_BASE, EMPTY_HARD_STATE, freezeEntry, type CommandLog, type HardState, type LogBase, type LogEntry } from './command-log.js';

export class MemoryCommandLog implements CommandLog {
  /** log[i] has seq baseAt.seq + 1 + i. */
  private log: LogEntry[] = [];
  private readonly byClient = new Map<string, LogEntry>();
  private hard: HardState = EMPTY_HARD_STATE;
  private baseAt: LogBase = EMPTY_BASE;

  hardState(): HardState {
    return this.hard;
  }

  setHardState(h: HardState): void {
    this.hard = { ...h };
  }

  lastSeq(): number {
    return this.baseAt.seq + this.log.length;
  }

  base(): LogBase {
    return this.baseAt;
  }

  epochAt(seq: number): number | undefined {
    if (seq === 0) return 0;
    if (seq === this.baseAt.seq) return this.baseAt.epoch;
    return this.at(seq)?.epoch;
  }

  lastSeqOfEpochAtMost(epoch: number): number {
    let i = this.log.length;
    while (i > 0 && this.log[i - 1]!.epoch > epoch) i -= 1;
    return this.baseAt.seq + i;
  }

  entries(from: number, to: number): LogEntry[] {
    assert(from > this.baseAt.seq && to <= this.lastSeq() && from <= to + 1, `entries ${from}..${to} outside ${this.baseAt.seq + 1}..${this.lastSeq()}`);
    return this.log.slice(from - this.baseAt.seq - 1, to - this.baseAt.seq);
  }

  append(batch: readonly LogEntry[]): void {
    const problem = appendProblem(this.lastSeq(), this.epochAt(this.lastSeq())!, batch);
    assert(problem === null, problem ?? '');
    const seen = new Set<string>();
    for (const e of batch) {
      // Checked up front so a rejected batch leaves nothing behind (atomicity, like the SQL UNIQUE).
      if (this.byClient.has(e.clientId) || seen.has(e.clientId)) throw new Error(`duplicate client id ${e.clientId}`);
      seen.add(e.clientId);
    }
    for (const e of batch) {
      // Entries are immutable once logged: callers share them (the leader ships the very objects).
      freezeEntry(e);
      this.log.push(e);
      this.byClient.set(e.clientId, e);
    }
  }

  findByClientId(clientId: string): LogEntry | undefined {
    return this.byClient.get(clientId);
  }

  *entriesFrom(fromSeq: number): IterableIterator<LogEntry> {
    for (let i = Math.max(0, fromSeq - this.baseAt.seq - 1); i < this.log.length; i++) yield this.log[i]!;
  }

  entryAt(seq: number): LogEntry | undefined {
    return this.at(seq);
  }

  truncateAfter(seq: number): number {
    assert(seq >= this.baseAt.seq && seq <= this.lastSeq(), `truncate to ${seq} outside ${this.baseAt.seq}..${this.lastSeq()}`);
    const removed = this.log.splice(seq - this.baseAt.seq);
    for (const e of removed) this.byClient.delete(e.clientId);
    return removed.length;
  }

  dropThrough(seq: number): number {
    assert(seq <= this.lastSeq(), `drop through ${seq} beyond the log (${this.lastSeq()})`);
    if (seq <= this.baseAt.seq) return 0;
    const dropped = this.log.splice(0, seq - this.baseAt.seq);
    for (const e of dropped) this.byClient.delete(e.clientId);
    const last = dropped.at(-1)!;
    this.baseAt = { seq: last.seq, epoch: last.epoch, stateHash: last.stateHash };
    return dropped.length;
  }

  resetTo(base: LogBase): void {
    this.log = [];
    this.byClient.clear();
    this.baseAt = { ...base };
  }

  close(): void {}

  private at(seq: number): LogEntry | undefined {
    return seq > this.baseAt.seq ? this.log[seq - this.baseAt.seq - 1] : undefined;
  }
}

// CommandLog held in memory: for the deterministic simulator and tests that need the log contract
// without disk. Same invariants as the SQLite log (contiguous seqs, unique client ids, atomic
// batches, hard state); it is run against the same contract suite.
import { assert } from '../domain/assert.js';
import { appendProblem, EMPTY_HARD_STATE, freezeEntry, type CommandLog, type HardState, type LogEntry } from './command-log.js';

export class MemoryCommandLog implements CommandLog {
  private readonly log: LogEntry[] = [];
  private readonly byClient = new Map<string, LogEntry>();
  private hard: HardState = EMPTY_HARD_STATE;

  hardState(): HardState {
    return this.hard;
  }

  setHardState(h: HardState): void {
    this.hard = { ...h };
  }

  lastSeq(): number {
    return this.log.length;
  }

  epochAt(seq: number): number | undefined {
    return seq === 0 ? 0 : this.log[seq - 1]?.epoch;
  }

  lastSeqOfEpochAtMost(epoch: number): number {
    let i = this.log.length;
    while (i > 0 && this.log[i - 1]!.epoch > epoch) i -= 1;
    return i;
  }

  entries(from: number, to: number): LogEntry[] {
    assert(from >= 1 && to <= this.log.length && from <= to + 1, `entries ${from}..${to} outside 1..${this.log.length}`);
    return this.log.slice(from - 1, to);
  }

  append(batch: readonly LogEntry[]): void {
    const problem = appendProblem(this.log.length, this.epochAt(this.log.length)!, batch);
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
    for (let i = Math.max(0, fromSeq - 1); i < this.log.length; i++) yield this.log[i]!;
  }

  entryAt(seq: number): LogEntry | undefined {
    return this.log[seq - 1];
  }

  truncateAfter(seq: number): number {
    assert(seq >= 0 && seq <= this.log.length, `truncate to ${seq} outside 0..${this.log.length}`);
    const removed = this.log.splice(seq);
    for (const e of removed) this.byClient.delete(e.clientId);
    return removed.length;
  }

  close(): void {}
}

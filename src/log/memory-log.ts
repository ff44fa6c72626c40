// CommandLog held in memory: for simulations and tests that need the log contract without disk.
// Same invariants as the SQLite log (contiguous seqs, unique client ids, atomic batches); it is
// run against the same contract suite.
import { assert } from '../domain/assert.js';
import type { CommandLog, LogEntry } from './command-log.js';

export class MemoryCommandLog implements CommandLog {
  private readonly entries: LogEntry[] = [];
  private readonly byClient = new Map<string, LogEntry>();
  private epochPromise = 0;

  lastSeq(): number {
    return this.entries.length;
  }

  appendBatch(batch: readonly LogEntry[]): void {
    const seen = new Set<string>();
    let epoch = this.lastEpoch();
    batch.forEach((e, i) => {
      assert(e.seq === this.entries.length + 1 + i, `log append out of order: got seq ${e.seq}`);
      assert(e.epoch >= epoch, `log append with epoch ${e.epoch} after epoch ${epoch}`);
      epoch = e.epoch;
      // Checked up front so a rejected batch leaves nothing behind (atomicity, like the SQL UNIQUE).
      if (this.byClient.has(e.clientId) || seen.has(e.clientId)) throw new Error(`duplicate client id ${e.clientId}`);
      seen.add(e.clientId);
    });
    for (const e of batch) {
      const copy = structuredClone(e);
      this.entries.push(copy);
      this.byClient.set(e.clientId, copy);
    }
  }

  findByClientId(clientId: string): LogEntry | undefined {
    const e = this.byClient.get(clientId);
    return e === undefined ? undefined : structuredClone(e);
  }

  *entriesFrom(fromSeq: number): IterableIterator<LogEntry> {
    for (let i = Math.max(0, fromSeq - 1); i < this.entries.length; i++) yield structuredClone(this.entries[i]!);
  }

  entryAt(seq: number): LogEntry | undefined {
    const e = this.entries[seq - 1];
    return e === undefined ? undefined : structuredClone(e);
  }

  lastEpoch(): number {
    return this.entries.at(-1)?.epoch ?? 0;
  }

  epochEnd(epoch: number): number {
    const next = this.entries.find((e) => e.epoch > epoch);
    return next === undefined ? this.entries.length : next.seq - 1;
  }

  truncateAfter(seq: number): number {
    assert(seq >= 0 && seq <= this.entries.length, `truncate to ${seq} outside 0..${this.entries.length}`);
    const removed = this.entries.splice(seq);
    for (const e of removed) this.byClient.delete(e.clientId);
    return removed.length;
  }

  currentEpoch(): number {
    return Math.max(this.epochPromise, this.lastEpoch());
  }

  setCurrentEpoch(epoch: number): void {
    assert(epoch >= this.currentEpoch(), `current epoch may not go back (${epoch} < ${this.currentEpoch()})`);
    this.epochPromise = epoch;
  }

  close(): void {}
}

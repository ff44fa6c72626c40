// CommandLog held in memory: for simulations and tests that need the log contract without disk.
// Same invariants as the SQLite log (contiguous seqs, unique client ids, atomic batches); it is
// run against the same contract suite.
import { assert } from '../domain/assert.js';
import type { CommandLog, LogEntry } from './command-log.js';

export class MemoryCommandLog implements CommandLog {
  private readonly entries: LogEntry[] = [];
  private readonly byClient = new Map<string, LogEntry>();

  lastSeq(): number {
    return this.entries.length;
  }

  appendBatch(batch: readonly LogEntry[]): void {
    const seen = new Set<string>();
    batch.forEach((e, i) => {
      assert(e.seq === this.entries.length + 1 + i, `log append out of order: got seq ${e.seq}`);
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

  close(): void {}
}

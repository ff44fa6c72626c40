// The command log: the durable, gap-free record of every sequenced command and the result the
// state machine gave it. It is the source of truth: state, hashes and every Yjs doc are derived
// from it by replay. Invariants: seqs are contiguous from 1; a client id appears at most once;
// appendBatch is atomic (all entries or none) and durable when it returns; epochs never decrease
// along the log. Entries with the same (epoch, seq) in two logs are identical (only one primary
// writes per epoch), which is what lets a rejoining node find where its log diverged.
import type { Command, Result, Seq } from '../domain/types.js';

export interface LogEntry {
  /** Epoch of the primary that sequenced the entry. */
  epoch: number;
  seq: Seq;
  /** Idempotency key chosen by the client: a retry with the same id returns this entry's result. */
  clientId: string;
  tsMs: number;
  command: Command;
  result: Result;
  /** State hash after applying this entry (checked by replay and by the standby). */
  stateHash: string;
}

export interface CommandLog {
  /** 0 when empty. */
  lastSeq(): number;
  /** Appends atomically and durably; asserts entries continue lastSeq() without gaps. */
  appendBatch(entries: readonly LogEntry[]): void;
  findByClientId(clientId: string): LogEntry | undefined;
  /** Entries with seq >= fromSeq in order, lazily. */
  entriesFrom(fromSeq: number): IterableIterator<LogEntry>;
  entryAt(seq: number): LogEntry | undefined;
  /** Epoch of the last entry, 0 when empty. */
  lastEpoch(): number;
  /**
   * Last seq this log holds from epochs <= `epoch`: where a node whose log ends in `epoch` must
   * truncate to agree with this log (Kafka's OffsetsForLeaderEpoch).
   */
  epochEnd(epoch: number): number;
  /**
   * Drops every entry after `seq`. Only for a suffix that was never acknowledged to a client nor
   * published: the unreplicated tail of a primary that lost its primacy.
   */
  truncateAfter(seq: number): number;
  /** Highest epoch this node has promised to follow or lead (Raft's currentTerm), persisted. */
  currentEpoch(): number;
  setCurrentEpoch(epoch: number): void;
  close(): void;
}

export class LogCorruptError extends Error {
  override name = 'LogCorruptError';
}

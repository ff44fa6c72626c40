// The command log: the durable, gap-free record of every sequenced command and the result the
// state machine gave it. It is the source of truth: state, hashes and every Yjs doc are derived
// from it by replay. Invariants: seqs are contiguous from 1; a client id appears at most once;
// appendBatch is atomic (all entries or none) and durable when it returns.
import type { Command, Result, Seq } from '../domain/types.js';

export interface LogEntry {
  seq: Seq;
  /** Idempotency key chosen by the client: a retry with the same id returns this entry's result. */
  clientId: string;
  tsMs: number;
  command: Command;
  result: Result;
}

export interface CommandLog {
  /** 0 when empty. */
  lastSeq(): number;
  /** Appends atomically and durably; asserts entries continue lastSeq() without gaps. */
  appendBatch(entries: readonly LogEntry[]): void;
  findByClientId(clientId: string): LogEntry | undefined;
  /** Entries with seq >= fromSeq in order, lazily. */
  entriesFrom(fromSeq: number): IterableIterator<LogEntry>;
  close(): void;
}

export class LogCorruptError extends Error {
  override name = 'LogCorruptError';
}

// The command log: the durable, gap-free record of every sequenced command and the result the
// state machine gave it, plus Raft's hard state (cluster id, epoch, vote, learner flag). It is the
// source of truth: state, hashes and every Yjs doc are derived from it by replay. It is also the
// storage the replication protocol runs on (replication/storage.ts, docs/replication.md).
// Invariants: seqs are contiguous from 1; a client id appears at most once within the log's
// idempotency window (the SQLite log: its newest `idempotencyWindow` entries; memory: all); append is atomic (all
// entries or none) and durable when it returns; epochs never decrease along the log; every
// mutating call either is durable when it returns or throws (StorageError for a disk that refuses:
// full, I/O error) having changed nothing. Entries with the same (epoch, seq) in two logs are
// identical (one leader per epoch), which is what lets Raft find where two logs diverge.
import type { Command, Result, Seq } from '../domain/types.js';

export interface LogEntry {
  /** Epoch (Raft term) of the leader that sequenced the entry. */
  epoch: number;
  seq: Seq;
  /** Idempotency key chosen by the client: a retry with the same id returns this entry's result. */
  clientId: string;
  tsMs: number;
  command: Command;
  result: Result;
  /** State hash after applying this entry (checked by replay and by every follower). */
  stateHash: string;
}

/** Raft's persistent state besides the log (docs/replication.md, "What each node persists"). */
export interface HardState {
  /** Fixed at the cluster's bootstrap; null until this node has joined a cluster. */
  clusterId: string | null;
  /** Raft's currentTerm: the highest epoch this node has seen. */
  epoch: number;
  /** Whom this node voted for in `epoch` (or '#none': it will not vote in it). */
  votedFor: string | null;
  /** Lost its disk and has not caught up yet: may not vote or campaign. */
  learner: boolean;
}

export const EMPTY_HARD_STATE: HardState = { clusterId: null, epoch: 0, votedFor: null, learner: false };

/** The disk refused a write (full, I/O error): named as such, never as divergence. */
export class StorageError extends Error {
  override name = 'StorageError';
}

/**
 * Where the log starts: the entry just before its first one. Entries up to it were dropped or
 * archived after a snapshot (retention), or never held (a node refilled from a snapshot). They are
 * committed: only committed entries are ever dropped.
 */
export interface LogBase {
  seq: number;
  epoch: number;
  /** The state hash stored on that entry ('' if it was not a checkpoint, or is unknown). */
  stateHash: string;
}

export const EMPTY_BASE: LogBase = { seq: 0, epoch: 0, stateHash: '' };

export interface CommandLog {
  hardState(): HardState;
  setHardState(h: HardState): void;
  /** 0 when empty. */
  lastSeq(): number;
  /** The entry before the first one held (seq 0 when the log starts at 1). */
  base(): LogBase;
  /** Epoch of the entry at seq; 0 for seq 0; the base's at base().seq; undefined outside base..last. */
  epochAt(seq: number): number | undefined;
  /** Last seq whose epoch is <= epoch, 0 if none (where a log ending in `epoch` agrees with this one). */
  lastSeqOfEpochAtMost(epoch: number): number;
  /** Entries from..to inclusive, both within the log. */
  entries(from: number, to: number): LogEntry[];
  /** Appends atomically and durably; asserts entries continue lastSeq() without gaps. */
  append(entries: readonly LogEntry[]): void;
  /**
   * Drops every entry after `seq`: only ever a suffix that was not committed (a follower's tail
   * that the leader does not hold). Returns how many entries it removed.
   */
  truncateAfter(seq: number): number;
  findByClientId(clientId: string): LogEntry | undefined;
  /** Entries with seq >= fromSeq in order, lazily. */
  entriesFrom(fromSeq: number): IterableIterator<LogEntry>;
  entryAt(seq: number): LogEntry | undefined;
  /**
   * Retention: drops (or archives) whole stored batches that end at or before `seq`, which must be
   * committed. The base moves to the last entry dropped. Returns how many entries went.
   */
  dropThrough(seq: number): number;
  /**
   * Empties the log and starts it after `base` (a node refilled from a snapshot: the leader no
   * longer holds the entries it lacks). Only ever with a base that is committed.
   */
  resetTo(base: LogBase): void;
  close(): void;
}

export class LogCorruptError extends Error {
  override name = 'LogCorruptError';
}

/** Shared by every implementation: an append continues the log and never lowers the epoch. */
export function appendProblem(lastSeq: number, lastEpoch: number, entries: readonly { seq: number; epoch: number }[]): string | null {
  let expected = lastSeq + 1;
  let epoch = lastEpoch;
  for (const e of entries) {
    if (e.seq !== expected) return `log append out of order: got seq ${e.seq}, expected ${expected}`;
    if (e.epoch < epoch) return `log append with epoch ${e.epoch} after epoch ${epoch}`;
    expected += 1;
    epoch = e.epoch;
  }
  return null;
}

/**
 * Freezes an entry deeply: logged entries are shared (the leader ships the very objects it
 * appended, the tail cache hands them out), so nobody may change one after it is logged.
 */
export function freezeEntry(e: LogEntry): LogEntry {
  deepFreeze(e);
  return e;
}

function deepFreeze(v: unknown): void {
  if (v === null || typeof v !== 'object' || Object.isFrozen(v)) return;
  Object.freeze(v);
  for (const x of Object.values(v)) deepFreeze(x);
}

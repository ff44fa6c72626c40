// What Raft needs from durable storage. The command log (log/command-log.ts) is that storage in
// production (SQLite) and in the simulator (in memory); the hard state and StorageError live with
// it, below this layer. Invariants: see CommandLog — every mutating call is durable when it
// returns, or throws StorageError having changed nothing.
import type { CommandLog } from '../log/command-log.js';
import type { RaftEntry } from './messages.js';

export { StorageError, EMPTY_HARD_STATE, type HardState } from '../log/command-log.js';

/** The part of the command log Raft uses, generic in the entry type so the protocol stays small. */
export type RaftStorage<E extends RaftEntry> = Pick<CommandLog, 'hardState' | 'setHardState' | 'lastSeq' | 'base' | 'resetTo' | 'epochAt' | 'lastSeqOfEpochAtMost' | 'truncateAfter'> & {
  entries(from: number, to: number): E[];
  append(entries: readonly E[]): void;
};

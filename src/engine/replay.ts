// Replay: rebuilds the hashed state machine from a command log, checking every stored result and
// every stored state hash (the last entry of each sequenced batch carries one) against a fresh apply. Used by the primary at start-up (publish/core.ts) and by the
// standby for every shipped entry (replication/follower.ts).
// Why it lives in engine/ and not log/: replay needs the HashedMachine (state machine + state hash),
// which sits in engine/ above log/; log/ only stores and returns entries and knows no state machine.
// Invariants: replay never writes to the log; any difference between a stored result or hash and a
// fresh apply throws LogCorruptError (nondeterminism halts loudly, it never silently diverges).
import { canonicalJson, sameData } from '../domain/canonical.js';
import type { DomainConfig } from '../domain/types.js';
import { LogCorruptError, type CommandLog, type LogEntry } from '../log/command-log.js';
import { HashedMachine } from './hashed-machine.js';

/** Checks one stored entry against a fresh apply; throws LogCorruptError on any difference. */
export function applyChecked(machine: HashedMachine, e: LogEntry): void {
  // An entry without a hash is inside a batch: the batch's last entry carries (and checks) it.
  const { result, stateHash } = machine.apply({ seq: e.seq, tsMs: e.tsMs, command: e.command }, e.stateHash !== '');
  if (!sameData(result, e.result)) {
    throw new LogCorruptError(`diverged at seq ${e.seq}: log says ${canonicalJson(e.result)}, state machine says ${canonicalJson(result)}`);
  }
  if (stateHash !== e.stateHash) {
    throw new LogCorruptError(`diverged at seq ${e.seq}: state hash ${stateHash}, log says ${e.stateHash}`);
  }
}

/** Rebuilds state from a log, checking each stored result and hash against a fresh apply. */
export function replay(domain: DomainConfig, log: CommandLog): HashedMachine {
  const machine = new HashedMachine(domain);
  for (const e of log.entriesFrom(1)) applyChecked(machine, e);
  machine.drainEffects();
  return machine;
}

// A single-node cluster over a command log: the same Raft node and replicated machine a cluster
// node runs, with nobody to ask or wait for. It bootstraps (if new), replays the log and leads at
// once — its whole durable log is committed. Used by Core without a cluster (tests, benches, a
// config with one core node).
// Invariants: the returned machine is a ready leader's (ready === true), holding the whole log.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { assert } from '../domain/assert.js';
import type { DomainConfig } from '../domain/types.js';
import { LogCorruptError, type CommandLog, type LogEntry } from '../log/command-log.js';
import type { Clock } from '../engine/sequencer.js';
import { RaftNode } from './raft.js';
import { ReplicatedMachine } from './replicated-machine.js';

export interface SingleNodeOptions {
  domain: DomainConfig;
  log: CommandLog;
  nodeName: string;
  clock: Clock;
  logger?: Logger;
}

export function openSingleNode(o: SingleNodeOptions): ReplicatedMachine {
  const replicated = new ReplicatedMachine({ domain: o.domain, storage: o.log, nodeName: o.nodeName, wallMs: () => o.clock.nowMs() });
  const raft = new RaftNode<LogEntry>({
    id: o.nodeName,
    nodes: [o.nodeName],
    storage: o.log,
    now: () => performance.now(),
    random: Math.random,
    electionTimeoutMs: 1000,
    heartbeatMs: 100,
    maxEntriesPerAppend: 1,
    maxInflightAppends: 1,
    send: () => {},
    onRole: (role, epoch) => replicated.onRole(role, epoch),
    onCommit: (commit) => replicated.onCommit(commit),
    newClusterId: () => randomUUID(),
    log: (level, msg, fields) => o.logger?.[level](fields ?? {}, msg),
  });
  replicated.attach(raft);
  raft.start();
  // Replaying the log re-checks every stored result and hash: a mismatch is corruption, loudly.
  if (raft.role === 'halted') throw new LogCorruptError(raft.haltReason ?? 'replay halted');
  assert(replicated.ready, `a single node did not take the lead (${raft.role}${raft.storageError ? `: ${raft.storageError}` : ''})`);
  return replicated;
}

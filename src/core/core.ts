// The core: opens the command log, replays it into a fresh state machine (verifying every stored
// result, so nondeterminism halts loudly instead of silently diverging), then runs the sequencer
// and publishes every durable batch into a new generation of Yjs docs. Invariants: the state
// machine, the state hash and the published docs are all functions of the log prefix up to
// lastSeq; publishing happens only after the batch is durable.
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { canonicalJson } from '../domain/canonical.js';
import { StateMachine } from '../domain/state-machine.js';
import type { DomainConfig, Seq } from '../domain/types.js';
import { LogCorruptError, type CommandLog } from '../log/command-log.js';
import { SqliteCommandLog } from '../log/sqlite-log.js';
import { Publisher } from '../publish/publisher.js';
import type { Layout } from '../publish/layout.js';
import { Sequencer, systemClock, type Clock, type CommittedBatch } from './sequencer.js';
import { StateHasher } from './state-hash.js';

export interface CoreOptions {
  domain: DomainConfig;
  layout: Layout;
  bookDepth: number;
  tradesKept: number;
  maxBatch: number;
  maxQueue: number;
  /** Directory holding log.db; or pass `log` directly. */
  dataDir?: string;
  log?: CommandLog;
  clock?: Clock;
  logger?: Logger;
}

/** Rebuilds state from a log, checking each stored result against a fresh apply. */
export function replay(domain: DomainConfig, log: CommandLog): { machine: StateMachine; hasher: StateHasher } {
  const machine = new StateMachine(domain);
  for (const e of log.entriesFrom(1)) {
    const result = machine.apply({ seq: e.seq, tsMs: e.tsMs, command: e.command });
    if (canonicalJson(result) !== canonicalJson(e.result)) {
      throw new LogCorruptError(
        `replay diverged at seq ${e.seq}: log says ${canonicalJson(e.result)}, state machine says ${canonicalJson(result)}`,
      );
    }
  }
  machine.drainEffects();
  const hasher = new StateHasher();
  for (const id of machine.accountIds()) hasher.update(machine.account(id)!);
  return { machine, hasher };
}

export class Core extends EventEmitter<{ committed: [CommittedBatch] }> {
  readonly log: CommandLog;
  readonly machine: StateMachine;
  readonly publisher: Publisher;
  readonly sequencer: Sequencer;
  private readonly hasher: StateHasher;
  private hash: string;
  /** Seq of the last durable batch. The machine can be ahead of it after a log failure (halt). */
  private durableSeq: Seq;
  readonly startedAtMs = Date.now();
  readonly replayedEntries: number;

  constructor(readonly opts: CoreOptions) {
    super();
    this.setMaxListeners(10_000);
    const clock = opts.clock ?? systemClock;
    this.log = opts.log ?? new SqliteCommandLog(join(opts.dataDir ?? 'data/core', 'log.db'));
    const t0 = performance.now();
    const { machine, hasher } = replay(opts.domain, this.log);
    this.machine = machine;
    this.hasher = hasher;
    this.replayedEntries = machine.lastSeq;
    this.hash = hasher.hash(machine.lastSeq);
    this.durableSeq = machine.lastSeq;
    opts.logger?.info({ seq: machine.lastSeq, ms: Math.round(performance.now() - t0), stateHash: this.hash }, 'log replayed');
    this.publisher = new Publisher({ machine, layout: opts.layout, bookDepth: opts.bookDepth, tradesKept: opts.tradesKept });
    this.publisher.publishAll(this.hash, clock.nowMs());
    this.sequencer = new Sequencer({
      log: this.log,
      machine,
      clock,
      maxBatch: opts.maxBatch,
      maxQueue: opts.maxQueue,
      onCommitted: (batch) => this.committed(batch),
      onHalt: (err) => opts.logger?.fatal({ err }, 'sequencer halted: the core takes no more writes until restarted'),
    });
  }

  get seq(): Seq {
    return this.durableSeq;
  }

  get stateHash(): string {
    return this.hash;
  }

  private committed(batch: CommittedBatch): void {
    this.durableSeq = batch.lastSeq;
    for (const id of batch.effects.accounts) this.hasher.update(this.machine.account(id)!);
    this.hash = this.hasher.hash(batch.lastSeq);
    const last = batch.entries[batch.entries.length - 1]!;
    this.publisher.publishBatch(batch.lastSeq, batch.effects, this.hash, last.tsMs);
    this.emit('committed', batch);
  }

  close(): void {
    this.publisher.destroy();
    this.log.close();
  }
}

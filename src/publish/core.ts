// The committed-state publisher around the engine (the primary's Core): a replayed (or handed-over)
// state machine, the sequencer that extends the log, and the publisher that mirrors every committed
// batch into a new generation of Yjs docs, with compaction into a fresh generation. It lives in
// publish/ because it owns the Publisher; http/ (write routes) and node/ use it from above.
// Invariants: the state machine, the state hash and the published docs are all functions of the
// committed log prefix; publishing happens only after a batch is committed (durable locally and,
// in synchronous mode, acknowledged by the standby); replay re-checks every stored result and
// state hash, so nondeterminism halts loudly instead of silently diverging.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { DomainConfig, Seq } from '../domain/types.js';
import { join } from 'node:path';
import type { CommandLog, LogEntry } from '../log/command-log.js';
import { SqliteCommandLog } from '../log/sqlite-log.js';
import type { HashedMachine } from '../engine/hashed-machine.js';
import { replay } from '../engine/replay.js';
import { Sequencer, systemClock, type Clock, type CommittedBatch } from '../engine/sequencer.js';
import type { Layout } from './layout.js';
import { Publisher } from './publisher.js';

export interface CoreOptions {
  domain: DomainConfig;
  layout: Layout;
  bookDepth: number;
  tradesKept: number;
  maxBatch: number;
  maxQueue: number;
  /** The command log; or `dataDir` to open `<dataDir>/log.db`. */
  log?: CommandLog;
  dataDir?: string;
  /** This primary's epoch (default: the log's current epoch, at least 1). */
  epoch?: number;
  /** The node's name, recorded in the epoch_start entry. */
  nodeName?: string;
  /** State already built from `log` (a promoted standby hands its own over: no replay). */
  machine?: HashedMachine;
  replicate?: (entries: readonly LogEntry[]) => Promise<void>;
  /**
   * Compact into a new Yjs generation once the publisher's tombstones exceed
   * max(tombstonesPerAccount × accounts, tombstonesMin) (defaults 8 and 250 000): v1 state then
   * stays within ~1.8× live data (tombstone ~11 B vs account view ~110 B), at the price of one full
   * resync per read node per rotation.
   */
  compaction?: { tombstonesPerAccount: number; tombstonesMin: number };
  clock?: Clock;
  logger?: Logger;
}

export const COMPACTION_DEFAULT = { tombstonesPerAccount: 8, tombstonesMin: 250_000 };

export class Core extends EventEmitter<{ committed: [CommittedBatch]; generation: [Publisher, Publisher] }> {
  readonly log: CommandLog;
  readonly hashed: HashedMachine;
  private pub: Publisher;
  readonly sequencer: Sequencer;
  readonly epoch: number;
  private hash: string;
  /** Seq of the last committed batch. The machine can be ahead of it while a batch is in flight. */
  private committedSeq: Seq;
  readonly startedAtMs = Date.now();
  readonly replayedEntries: number;
  /** Generations replaced by a compaction, still published until retired (bounded by the grace). */
  private readonly retiring: Publisher[] = [];

  constructor(readonly opts: CoreOptions) {
    super();
    this.setMaxListeners(10_000);
    const clock = opts.clock ?? systemClock;
    this.log = opts.log ?? new SqliteCommandLog(join(opts.dataDir ?? 'data/core', 'log.db'));
    this.epoch = opts.epoch ?? Math.max(1, this.log.currentEpoch());
    if (this.log.currentEpoch() < this.epoch) this.log.setCurrentEpoch(this.epoch);
    const t0 = performance.now();
    this.hashed = opts.machine ?? replay(opts.domain, this.log);
    if (!opts.machine) opts.logger?.info({ seq: this.hashed.lastSeq, ms: Math.round(performance.now() - t0) }, 'log replayed');
    this.replayedEntries = opts.machine ? 0 : this.hashed.lastSeq;
    this.hashed.drainEffects();
    this.hash = this.hashed.stateHash;
    this.committedSeq = this.hashed.lastSeq;
    this.pub = new Publisher({ machine: this.machine, layout: opts.layout, bookDepth: opts.bookDepth, tradesKept: opts.tradesKept });
    this.pub.publishAll(this.hash, clock.nowMs(), this.epoch);
    this.sequencer = new Sequencer({
      log: this.log,
      machine: this.hashed,
      epoch: this.epoch,
      clock,
      maxBatch: opts.maxBatch,
      maxQueue: opts.maxQueue,
      ...(opts.replicate ? { replicate: opts.replicate } : {}),
      onCommitted: (batch) => this.committed(batch),
      onHalt: (err) => opts.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'sequencer stopped: this core takes no more writes'),
    });
  }

  /**
   * Marks the start of this primary's epoch in the log (Raft's no-op). Resolves once committed;
   * until then nothing else this primary sequences can commit either (one batch in flight).
   */
  async startEpoch(): Promise<void> {
    // '#' can't appear in a client's id (API schema), so the marker never collides with one.
    // An empty log needs no marker: its first entry carries the epoch.
    if (this.log.lastSeq() === 0 || this.log.lastEpoch() >= this.epoch) return;
    await this.sequencer.submit([
      { clientId: `#epoch-${this.epoch}`, command: { type: 'epoch_start', epoch: this.epoch, node: this.opts.nodeName ?? 'core' } },
    ]);
  }

  /** The current generation's publisher; replaced when the core compacts (see 'generation'). */
  get publisher(): Publisher {
    return this.pub;
  }

  get machine() {
    return this.hashed.machine;
  }

  get seq(): Seq {
    return this.committedSeq;
  }

  get stateHash(): string {
    return this.hash;
  }

  private committed(batch: CommittedBatch): void {
    this.committedSeq = batch.lastSeq;
    const last = batch.entries[batch.entries.length - 1]!;
    this.hash = last.stateHash;
    this.pub.publishBatch(batch.lastSeq, batch.effects, this.hash, last.tsMs, this.epoch);
    // Retiring generations keep receiving every batch until retired, so readers still on them
    // keep advancing while they sync the new one (no stall at a compaction).
    for (const old of this.retiring) old.publishBatch(batch.lastSeq, batch.effects, this.hash, last.tsMs, this.epoch);
    const { tombstonesPerAccount, tombstonesMin } = this.opts.compaction ?? COMPACTION_DEFAULT;
    if (this.pub.tombstones > Math.max(tombstonesMin, tombstonesPerAccount * this.machine.accountCount())) {
      // Called synchronously after the batch: the machine holds exactly the committed state.
      const old = this.pub;
      this.pub = new Publisher({ machine: this.machine, layout: this.opts.layout, bookDepth: this.opts.bookDepth, tradesKept: this.opts.tradesKept });
      this.pub.copyTrades(old);
      this.pub.publishAll(this.hash, last.tsMs, this.epoch);
      this.retiring.push(old);
      this.emit('generation', this.pub, old);
    }
    this.emit('committed', batch);
  }

  /** Stops publishing a generation replaced by a compaction (after the handover grace). */
  retire(old: Publisher): void {
    const i = this.retiring.indexOf(old);
    if (i < 0) return;
    this.retiring.splice(i, 1);
    old.destroy();
  }

  /** Stops sequencing and publishing; the log stays open (the node may rejoin as standby). */
  stop(reason: string): void {
    this.sequencer.stop(reason);
    this.pub.destroy();
    for (const old of this.retiring.splice(0)) old.destroy();
  }

  /** Stops and closes the log. */
  close(): void {
    this.stop('closed');
    this.log.close();
  }
}

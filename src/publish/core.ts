// The committed-state publisher around the engine (a ready leader's Core): the sequencer that
// extends the replicated log and the publisher that mirrors every committed batch into a new
// generation of Yjs docs, with compaction into a fresh generation. It lives in publish/ because it
// owns the Publisher; http/ (write routes) and node/ use it from above. A cluster node builds one
// when its Raft node becomes a ready leader and hands its ReplicatedMachine over; without one, Core
// runs a single-node cluster over its log (tests, `core.nodes` with one node).
// Invariants: the state machine, the state hash and the published docs are all functions of the
// committed log prefix: the first generation is published when the leader is ready (its whole log
// committed), and every later batch only after it commits (a majority holds it).
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { assert } from '../domain/assert.js';
import type { DomainConfig, Seq } from '../domain/types.js';
import type { CommandLog } from '../log/command-log.js';
import { SqliteCommandLog } from '../log/sqlite-log.js';
import type { HashedMachine } from '../engine/hashed-machine.js';
import { Sequencer, systemClock, type Clock, type CommittedBatch, type SequencerObserver } from '../engine/sequencer.js';
import type { ReplicatedMachine } from '../replication/replicated-machine.js';
import { openSingleNode } from '../replication/single-node.js';
import type { Layout } from './layout.js';
import { Publisher, captureView, type StateView } from './publisher.js';

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
  /** The node's name (a single-node cluster's Raft id). */
  nodeName?: string;
  /** A ready leader's replicated machine (cluster nodes); absent: a single-node cluster over `log`. */
  replicated?: ReplicatedMachine;
  /**
   * Compact into a new Yjs generation once the publisher's tombstones exceed tombstonesMin and
   * either tombstonesPerAccount × accounts or maxOverhead × its live bytes / TOMBSTONE_BYTES
   * (defaults 8, 16 384, 0.5): each overwrite leaves a ~11-byte item for good, so this keeps the v1
   * state (on the wire and at a read node's rest) within ~1.5× the plain JSON, at the price of one
   * full resync per reader per rotation.
   */
  compaction?: { tombstonesPerAccount: number; tombstonesMin: number; maxOverhead?: number; budgetMs?: number };
  /** Batches sequenced while earlier ones wait for their majority (default 4). */
  maxInFlightBatches?: number;
  /**
   * Up to this many accounts the first generation is written in one go at construction; above,
   * a slice per turn (like a compaction), and `ready` says when it is served. Default 20 000.
   */
  firstGenerationSyncMax?: number;
  clock?: Clock;
  logger?: Logger;
  /** Commit timings for metrics (passed to the sequencer). */
  sequencerObserver?: SequencerObserver;
}

export const COMPACTION_DEFAULT = { tombstonesPerAccount: 8, tombstonesMin: 16_384, maxOverhead: 0.5 };
/** V1 bytes one overwritten map value leaves behind (measured 11.5; test/publish/growth.test.ts). */
const TOMBSTONE_BYTES = 11.5;
/** A compaction's work per event-loop turn (ms; compaction.budgetMs), in slices of this many accounts. */
const BUILD_BUDGET_MS = 8;
const BUILD_SLICE = 64;
/** ~100 ms of synchronous publishAll on this machine (it measured 556–670 ms at 100k accounts). */
const FIRST_GENERATION_SYNC_MAX = 20_000;

export class Core extends EventEmitter<{ committed: [CommittedBatch]; generation: [Publisher, Publisher]; ready: [Publisher] }> {
  readonly log: CommandLog;
  readonly replicated: ReplicatedMachine;
  /** The served generation; null while the first one is still being written (see `publishing`). */
  private pub: Publisher | null = null;
  readonly sequencer: Sequencer;
  readonly epoch: number;
  private hash: string;
  /** Seq of the last committed batch. The machine can be ahead of it while a batch is in flight. */
  private committedSeq: Seq;
  readonly startedAtMs = Date.now();
  /** How long writing the first generation took (synchronous, when this node became the ready leader). */
  readonly firstPublishMs: number;
  /** Entries replayed at construction (a single-node Core replays its log; a cluster node hands its machine over: 0). */
  readonly replayedEntries: number;
  /** Generations replaced by a compaction, still published until retired (bounded by the grace). */
  private readonly retiring: Publisher[] = [];
  /**
   * A compaction under way: the next generation, written a slice of accounts per event-loop turn
   * from the live machine while every committed batch is published to it too (see
   * Publisher.seedAccounts); once every account is written, new batches wait only until those in
   * flight commit, then books and meta are written and the generations swap.
   */
  private building: { pub: Publisher; ids: Iterator<string>; done: boolean; startedMs: number; turns: number; longestTurnMs: number } | null = null;
  private stopped = false;
  /** The last compactions: how long each took and the longest slice of work it put on the event loop. */
  readonly compactions = { count: 0, lastMs: 0, lastTurns: 0, longestTurnMs: 0, finishMs: 0 };

  constructor(readonly opts: CoreOptions) {
    super();
    this.setMaxListeners(10_000);
    const clock = opts.clock ?? systemClock;
    this.log = opts.log ?? new SqliteCommandLog(join(opts.dataDir ?? 'data/core', 'log.db'));
    const t0 = performance.now();
    this.replicated =
      opts.replicated ??
      openSingleNode({ domain: opts.domain, log: this.log, nodeName: opts.nodeName ?? 'core', clock, ...(opts.logger ? { logger: opts.logger } : {}) });
    this.replayedEntries = opts.replicated ? 0 : this.replicated.applied;
    if (!opts.replicated) opts.logger?.info({ seq: this.replicated.applied, ms: Math.round(performance.now() - t0) }, 'log replayed');
    assert(this.replicated.ready, 'Core built on a node that is not a ready leader');
    this.epoch = this.replicated.epoch;
    this.hashed.drainEffects();
    this.hash = this.hashed.stateHash;
    this.committedSeq = this.hashed.lastSeq;
    const p0 = performance.now();
    if (this.machine.accountCount() <= (opts.firstGenerationSyncMax ?? FIRST_GENERATION_SYNC_MAX)) {
      this.pub = new Publisher({ machine: this.machine, layout: opts.layout, bookDepth: opts.bookDepth, tradesKept: opts.tradesKept });
      this.pub.publishAll(this.hash, clock.nowMs(), this.epoch);
    } else {
      // A large state: written a slice per turn like a compaction, so a new leader never blocks its
      // event loop for seconds (its followers would miss heartbeats and depose it). Writes are taken
      // meanwhile; reads and rooms wait for 'ready'.
      this.startBuild(null);
    }
    this.firstPublishMs = performance.now() - p0;
    this.sequencer = new Sequencer({
      log: this.log,
      target: this.replicated,
      maxBatch: opts.maxBatch,
      maxQueue: opts.maxQueue,
      onCommitted: (batch) => this.committed(batch),
      maxInFlightBatches: opts.maxInFlightBatches ?? 4,
      // The checkpoint that ended the batch already built the touched accounts' views: reuse them.
      capture: (effects) => captureView(this.machine, effects, opts.bookDepth, (id) => this.hashed.accountView(id)),
      // Only the last step of a compaction holds new batches (until those in flight commit).
      hold: () => this.building?.done === true,
      onHalt: (err) => opts.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'sequencer stopped: this core takes no more writes'),
      ...(opts.sequencerObserver ? { observer: opts.sequencerObserver } : {}),
    });
  }

  /** The hashed state machine (the leader's: up to maxInFlightBatches ahead of what is published). */
  get hashed(): HashedMachine {
    return this.replicated.machine;
  }

  /** The current generation's publisher; replaced when the core compacts (see 'generation'). */
  get publisher(): Publisher {
    assert(this.pub !== null, 'the first generation is still being written (check `publishing`, or wait for ready)');
    return this.pub;
  }

  /** The first generation is written and served (until then reads and rooms wait). */
  get publishing(): boolean {
    return this.pub !== null;
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
    const view = batch.captured as StateView | undefined;
    this.pub?.publishBatch(batch.lastSeq, batch.effects, this.hash, last.tsMs, this.epoch, view);
    // Retiring generations keep receiving every batch until retired, so readers still on them
    // keep advancing while they sync the new one (no stall at a compaction).
    for (const old of this.retiring) old.publishBatch(batch.lastSeq, batch.effects, this.hash, last.tsMs, this.epoch, view);
    if (this.building !== null) this.building.pub.publishBatch(batch.lastSeq, batch.effects, this.hash, last.tsMs, this.epoch, view);
    const { tombstonesPerAccount, tombstonesMin, maxOverhead = COMPACTION_DEFAULT.maxOverhead } = this.opts.compaction ?? COMPACTION_DEFAULT;
    const t = this.pub?.tombstones ?? 0;
    // At most one replaced generation in its handover grace: each is still published every batch,
    // so back-to-back compactions (a small state under a high rate) would multiply that cost.
    const wanted = this.pub !== null && this.retiring.length === 0 && t > tombstonesMin && (t > tombstonesPerAccount * this.machine.accountCount() || t * TOMBSTONE_BYTES > maxOverhead * this.pub.liveBytes);
    if (wanted && this.building === null) this.startBuild(this.pub);
    else if (this.building?.done && this.sequencer.batchesInFlight === 0) this.finishBuild(last.tsMs);
    this.emit('committed', batch);
  }

  /** Starts writing the next generation (`from`: the one it replaces, whose kept trades it copies; null: the first). */
  private startBuild(from: Publisher | null): void {
    const pub = new Publisher({ machine: this.machine, layout: this.opts.layout, bookDepth: this.opts.bookDepth, tradesKept: this.opts.tradesKept });
    if (from !== null) pub.copyTrades(from);
    this.building = { pub, ids: this.machine.accountIdIterator(), done: false, startedMs: performance.now(), turns: 0, longestTurnMs: 0 };
    setImmediate(() => this.buildStep());
  }

  /** One slice of a compaction: accounts for up to BUILD_BUDGET_MS, then yield. */
  private buildStep(): void {
    const b = this.building;
    if (b === null || this.stopped || b.done) return;
    const t0 = performance.now();
    b.turns += 1;
    const ids: string[] = [];
    const budget = this.opts.compaction?.budgetMs ?? BUILD_BUDGET_MS;
    while (performance.now() - t0 < budget) {
      ids.length = 0;
      for (let i = 0; i < BUILD_SLICE; i++) {
        const next = b.ids.next();
        if (next.done === true) {
          b.done = true;
          break;
        }
        ids.push(next.value);
      }
      // The live machine, possibly ahead of the commit: those batches overwrite these views when they commit.
      b.pub.seedAccounts(ids, (id) => this.machine.account(id));
      if (b.done) break;
    }
    b.longestTurnMs = Math.max(b.longestTurnMs, performance.now() - t0);
    if (!b.done) {
      setImmediate(() => this.buildStep());
      return;
    }
    // Idle (nothing in flight): finish now; else the commit of the last batch in flight does.
    if (this.sequencer.batchesInFlight === 0) this.finishBuild(Date.now());
  }

  private finishBuild(tsMs: number): void {
    const b = this.building!;
    assert(this.hashed.lastSeq === this.committedSeq, `compaction finishing with the machine at ${this.hashed.lastSeq}, committed ${this.committedSeq}`);
    const t0 = performance.now();
    b.pub.finishBuild(this.hash, tsMs, this.epoch);
    const finishMs = performance.now() - t0;
    b.longestTurnMs = Math.max(b.longestTurnMs, finishMs);
    this.compactions.finishMs = Math.round(finishMs * 10) / 10;
    this.building = null;
    const old = this.pub;
    this.pub = b.pub;
    this.compactions.lastMs = Math.round(performance.now() - b.startedMs);
    this.compactions.lastTurns = b.turns;
    this.compactions.longestTurnMs = Math.round(b.longestTurnMs * 10) / 10;
    if (old === null) {
      this.emit('ready', this.pub);
      return;
    }
    this.compactions.count += 1;
    this.retiring.push(old);
    this.emit('generation', this.pub, old);
    // Batches held for the last step start again: finish() schedules the queue after this commit.
  }

  /** Stops publishing a generation replaced by a compaction (after the handover grace). */
  retire(old: Publisher): void {
    const i = this.retiring.indexOf(old);
    if (i < 0) return;
    this.retiring.splice(i, 1);
    old.destroy();
  }

  /** Stops sequencing and publishing; the log stays open (the node goes on as a follower). */
  stop(reason: string): void {
    this.stopped = true;
    this.sequencer.stop(reason);
    this.building?.pub.destroy();
    this.building = null;
    this.pub?.destroy();
    for (const old of this.retiring.splice(0)) old.destroy();
  }

  /** Stops and closes the log. */
  close(): void {
    this.stop('closed');
    this.log.close();
  }
}

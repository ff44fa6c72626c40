// A core node's leader role: the Core (sequencer + publisher) built on the node's replicated
// machine once its Raft node is a ready leader, the rooms serving its generations, and the
// compaction handover timers. Built by CoreNode when Raft reports the leader ready, stopped when
// the node stops leading or closes.
// Invariants: the rooms serve this role's current generation (committed state only); after a
// compaction both generations are served for publish.compactGraceMs, then the old one retires;
// nothing here publishes or serves after stop().
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { CommandLog } from '../log/command-log.js';
import type { Clock, SequencerObserver } from '../engine/sequencer.js';
import type { ReplicatedMachine } from '../replication/replicated-machine.js';
import type { Layout } from '../publish/layout.js';
import { Core } from '../publish/core.js';
import type { SyncServer } from '../rooms/room-server.js';

export interface LeaderRoleOptions {
  config: Config;
  log: CommandLog;
  nodeName: string;
  replicated: ReplicatedMachine;
  layout: Layout;
  sync: SyncServer;
  clock?: Clock;
  logger?: Logger;
  /** Commit timings (metrics). */
  sequencerObserver?: SequencerObserver;
}

export class LeaderRole {
  readonly core: Core;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: LeaderRoleOptions) {
    const { config } = opts;
    const core = new Core({
      domain: config.domain,
      layout: opts.layout,
      bookDepth: config.publish.bookDepth,
      tradesKept: config.publish.tradesKept,
      maxBatch: config.core.maxBatch,
      maxQueue: config.core.maxQueue,
      maxInFlightBatches: config.core.maxInFlightBatches,
      firstGenerationSyncMax: config.publish.firstGenerationSyncMax,
      log: opts.log,
      nodeName: opts.nodeName,
      replicated: opts.replicated,
      compaction: { tombstonesPerAccount: config.publish.compactTombstonesPerAccount, tombstonesMin: config.publish.compactTombstonesMin, maxOverhead: config.publish.compactMaxOverhead },
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
      ...(opts.sequencerObserver ? { sequencerObserver: opts.sequencerObserver } : {}),
    });
    this.core = core;
    // A large first generation is written over many turns: served once it is whole.
    if (core.publishing) opts.sync.serve({ generation: core.publisher.generation, docs: core.publisher.docs });
    else core.once('ready', (pub) => !this.stopped && opts.sync.serve({ generation: pub.generation, docs: pub.docs }));
    // Compaction: both generations are served for a grace period; readers discover the new one,
    // sync it in the background while the old keeps streaming, and swap. Then the old retires.
    core.on('generation', (next, old) => {
      if (this.stopped) return;
      opts.sync.serve({ generation: next.generation, docs: next.docs }, { keepPrevious: true });
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        opts.sync.retire(old.generation);
        core.retire(old);
      }, config.publish.compactGraceMs);
      timer.unref();
      this.timers.add(timer);
    });
  }

  /** Stops sequencing (queued writers get `reason`) and publishing; readers must find the new leader. */
  stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.core.stop(reason);
    this.opts.sync.serve({ generation: 'none', docs: new Map() });
  }
}

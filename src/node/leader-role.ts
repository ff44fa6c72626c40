// A core node's primary role: the replicator to the standby (if there is a peer), the Core
// (sequencer + publisher), the rooms serving its generations, the compaction handover timers and
// the peer probe that detects a newer primary. Built by CoreNode.becomePrimary, stopped when the
// node steps down or closes.
// Invariants: the rooms serve this role's current generation; after a compaction both generations
// are served for publish.compactGraceMs, then the old one retires; while the standby link is down
// the peer is probed every max(50, 2 × heartbeatMs) and a peer primary with a higher epoch fences
// this one (the replicator then emits 'fenced'); nothing here runs after stop().
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { CommandLog } from '../log/command-log.js';
import type { Clock } from '../engine/sequencer.js';
import type { HashedMachine } from '../engine/hashed-machine.js';
import { PrimaryReplicator } from '../replication/leader.js';
import type { PeerStatus } from '../replication/election.js';
import type { Layout } from '../publish/layout.js';
import { Core } from '../publish/core.js';
import type { SyncServer } from '../rooms/room-server.js';

export interface PrimaryRoleOptions {
  config: Config;
  log: CommandLog;
  epoch: number;
  nodeName: string;
  /** The peer core node's URL, or null for a single-node cluster (no replicator, no probe). */
  peerUrl: string | null;
  layout: Layout;
  sync: SyncServer;
  /** State already built from the log (a promoted standby hands its own over: no replay). */
  machine?: HashedMachine;
  peerStatus: () => Promise<PeerStatus | null>;
  /** True while this role is the node's current one (the probe stops when it turns false). */
  isCurrent: () => boolean;
  /** The replicator saw a newer epoch: the node must step down. */
  onFenced: () => void;
  clock?: Clock;
  logger?: Logger;
}

export class PrimaryRole {
  readonly core: Core;
  readonly replicator: PrimaryReplicator | null;
  private probeTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly opts: PrimaryRoleOptions) {
    const { config, log, epoch } = opts;
    if (log.currentEpoch() < epoch) log.setCurrentEpoch(epoch);
    const replicator = opts.peerUrl
      ? new PrimaryReplicator({
          log,
          epoch,
          nodeName: opts.nodeName,
          mode: config.replication.mode,
          clusterSecret: config.replication.clusterSecret,
          heartbeatMs: config.replication.heartbeatMs,
          soloAllowed: true,
          ...(opts.logger ? { logger: opts.logger } : {}),
        })
      : null;
    const core = new Core({
      domain: config.domain,
      layout: opts.layout,
      bookDepth: config.publish.bookDepth,
      tradesKept: config.publish.tradesKept,
      maxBatch: config.core.maxBatch,
      maxQueue: config.core.maxQueue,
      log,
      epoch,
      nodeName: opts.nodeName,
      compaction: { tombstonesPerAccount: config.publish.compactTombstonesPerAccount, tombstonesMin: config.publish.compactTombstonesMin },
      ...(opts.machine ? { machine: opts.machine } : {}),
      ...(replicator ? { replicate: (entries) => replicator.replicate(entries) } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    this.replicator = replicator;
    this.core = core;
  }

  /** Wires the rooms and the fencing, writes the epoch marker and starts probing the peer. */
  start(): void {
    const { core, replicator, opts } = this;
    replicator?.on('fenced', () => opts.onFenced());
    opts.sync.serve({ generation: core.publisher.generation, docs: core.publisher.docs });
    // Compaction: both generations are served for a grace period; readers discover the new one,
    // sync it in the background while the old keeps streaming, and swap. Then the old retires.
    core.on('generation', (next, old) => {
      if (this.stopped) return; // this role stepped down or closed: its core is no longer the node's
      opts.sync.serve({ generation: next.generation, docs: next.docs }, { keepPrevious: true });
      const timer = setTimeout(() => {
        opts.sync.retire(old.generation);
        core.retire(old);
      }, opts.config.publish.compactGraceMs);
      timer.unref();
    });
  }

  /** Marks the epoch in the log (see Core.startEpoch) and starts the peer probe. */
  begin(): void {
    this.core.startEpoch().catch((err: unknown) => this.opts.logger?.warn({ err: String(err) }, 'epoch start not committed'));
    if (this.replicator) this.probePeer();
  }

  /**
   * A primary whose standby is gone can't know whether it promoted; it asks the peer directly
   * and steps down if the peer leads a newer epoch.
   */
  private probePeer(): void {
    const every = Math.max(50, this.opts.config.replication.heartbeatMs * 2);
    const tick = async () => {
      this.probeTimer = null;
      if (this.stopped || !this.opts.isCurrent()) return;
      if (!this.replicator?.attached) {
        const peer = await this.opts.peerStatus();
        if (peer?.role === 'primary' && peer.epoch > this.core.epoch) this.replicator?.fence(peer.epoch);
      }
      if (!this.stopped && this.opts.isCurrent()) this.probeTimer = setTimeout(tick, every);
    };
    this.probeTimer = setTimeout(tick, every);
  }

  /** Fenced: stops sequencing (waiters get `reason`), then replication and the probe; the log stays open. */
  stepDown(reason: string): void {
    this.stopProbe();
    this.core.stop(reason);
    this.replicator?.close();
  }

  /** The node closes: stops replication, the probe and sequencing; the log stays open. */
  close(): void {
    this.stopProbe();
    this.replicator?.close();
    this.core.stop('closed');
  }

  private stopProbe(): void {
    this.stopped = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }
}

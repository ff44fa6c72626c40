// A core node: one process's worth of core. It owns the command log and an HTTP port (API, Yjs
// rooms, replication link) and plays one role at a time:
//   starting → primary | standby;  standby → primary (promotion);  primary → standby (fenced).
// Invariants: at most one role object (Core or Follower) is live; roles change only through
// becomePrimary/becomeStandby; a new primary always takes a new, persisted epoch above every epoch
// this log has seen, except the bootstrap of an empty cluster (epoch 1); a node that has not been
// in sync with the current primary never promotes itself (see Follower), and at start-up a node
// only becomes primary if its peer is unreachable AND the cluster is new, or if the peer is also
// starting and this node's log is the most advanced (ties: config order).
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { createCoreApp } from '../http/write-routes.js';
import { listen, type RunningServer } from '../http/server.js';
import { SqliteCommandLog } from '../log/sqlite-log.js';
import type { CommandLog } from '../log/command-log.js';
import { SyncServer } from '../rooms/room-server.js';
import { clusterGate } from '../auth/rules.js';
import type { Layout } from '../publish/layout.js';
import { Core } from '../publish/core.js';
import { Follower } from '../replication/follower.js';
import type { HashedMachine } from '../engine/hashed-machine.js';
import { PrimaryReplicator } from '../replication/leader.js';
import type { Clock } from '../engine/sequencer.js';

export type CoreRole = 'starting' | 'primary' | 'standby' | 'halted';

export interface CoreNodeOptions {
  /** Which of config.core.nodes this is (default: the first). */
  nodeName?: string;
  host?: string;
  port?: number;
  dataDir?: string;
  /** http://host:port of the other core node, overriding the config (e.g. through a LinkProxy). */
  peerUrl?: string | null;
  /** Become primary at start even if the peer can't be reached (operator override). */
  forcePrimary?: boolean;
  logger?: Logger;
  clock?: Clock;
}

interface PeerStatus {
  role: CoreRole;
  node: string;
  epoch: number;
  seq: number;
  lastEpoch: number;
  caughtUp?: boolean;
}

export class CoreNode extends EventEmitter<{ role: [CoreRole] }> {
  readonly name: string;
  readonly log: CommandLog;
  readonly sync: SyncServer;
  server!: RunningServer;
  core: Core | null = null;
  follower: Follower | null = null;
  replicator: PrimaryReplicator | null = null;
  private currentRole: CoreRole = 'starting';
  private peerUrl: string | null;
  private readonly layout: Layout;
  private closed = false;
  private probeTimer: NodeJS.Timeout | null = null;

  constructor(readonly config: Config, readonly opts: CoreNodeOptions = {}) {
    super();
    const nodes = config.core.nodes;
    const me = opts.nodeName ? nodes.find((n) => n.name === opts.nodeName) : nodes[0];
    if (!me) throw new Error(`no core node named ${opts.nodeName}; configured: ${nodes.map((n) => n.name).join(', ')}`);
    this.name = me.name;
    const peer = nodes.find((n) => n.name !== me.name);
    this.peerUrl = opts.peerUrl !== undefined ? opts.peerUrl : peer ? `http://${peer.host}:${peer.port}` : null;
    this.log = new SqliteCommandLog(join(opts.dataDir ?? me.dataDir, 'log.db'));
    this.layout = { accountShards: config.publish.accountShards, markets: config.domain.markets.map((m) => m.symbol) };
    this.sync = new SyncServer({
      maxConnections: config.readNode.maxConnections,
      authorize: clusterGate({ jwtSecret: config.auth.jwtSecret, clusterSecret: config.replication.clusterSecret }),
      onRefused: (info) => opts.logger?.warn(info, 'sync room refused'),
    });
  }

  get role(): CoreRole {
    return this.currentRole;
  }

  get url(): string {
    return this.server.url;
  }

  get port(): number {
    return this.server.port;
  }

  private setRole(role: CoreRole): void {
    this.currentRole = role;
    this.opts.logger?.info({ node: this.name, role, epoch: this.log.currentEpoch(), seq: this.log.lastSeq() }, 'core role');
    this.emit('role', role);
  }

  /** What /v1/status reports in every role; also what a peer reads during election. */
  describe() {
    const core = this.core;
    const machine = core?.hashed ?? this.follower?.machine;
    return {
      role: this.currentRole,
      node: this.name,
      epoch: core?.epoch ?? this.log.currentEpoch(),
      seq: core?.seq ?? this.log.lastSeq(),
      lastEpoch: this.log.lastEpoch(),
      stateHash: core?.stateHash ?? machine?.stateHash ?? '',
      replication: this.replicator?.status() ?? null,
      standby: this.follower?.status() ?? null,
      caughtUp: this.follower?.status().caughtUp ?? false,
    };
  }

  /** Listens, then decides the role (see elect). */
  async start(): Promise<this> {
    await this.listen();
    await this.elect();
    return this;
  }

  /** Points this node at its peer (e.g. a peer that bound an ephemeral port). Before elect(). */
  setPeerUrl(url: string): void {
    this.peerUrl = url;
  }

  async listen(): Promise<void> {
    const { config } = this;
    const me = config.core.nodes.find((n) => n.name === this.name)!;
    const app = createCoreApp({
      core: () => this.core,
      domain: config.domain,
      layout: this.layout,
      region: 'core',
      describe: () => this.describe(),
      commitTimeoutMs: config.replication.commitTimeoutMs,
      maxBodyBytes: config.core.maxBodyBytes,
      maxCommandsPerRequest: config.core.maxCommandsPerRequest,
      readLimits: config.readNode,
      secrets: { jwtSecret: config.auth.jwtSecret, clusterSecret: config.replication.clusterSecret },
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    this.server = await listen(app, this.opts.host ?? me.host, this.opts.port ?? me.port, {
      sync: this.sync,
      upgrades: () => (this.replicator ? [this.replicator] : []),
      maxConnections: config.core.maxConnections,
    });
  }

  /** Start-up role decision; resolves once this node is primary or standby. */
  async elect(): Promise<void> {
    const { log } = this;
    if (this.peerUrl === null) return this.becomePrimary(Math.max(1, log.currentEpoch()), undefined);
    const isFirst = this.config.core.nodes[0]!.name === this.name;
    let warned = false;
    while (!this.closed) {
      const peer = await this.peerStatus();
      if (peer?.role === 'primary') return this.becomeStandby();
      if (peer && (peer.role === 'starting' || (peer.role === 'standby' && !peer.caughtUp)) && this.outranks(peer)) {
        return this.becomePrimary(log.currentEpoch() + 1, undefined);
      }
      if (!peer && ((log.lastSeq() === 0 && log.currentEpoch() === 0 && isFirst) || this.opts.forcePrimary)) {
        return this.becomePrimary(log.currentEpoch() + 1, undefined);
      }
      if (!peer && !warned) {
        warned = true;
        this.opts.logger?.warn({ peer: this.peerUrl }, 'peer core unreachable: waiting for it (start with --force-primary if it is gone for good)');
      }
      await new Promise((r) => setTimeout(r, this.config.replication.heartbeatMs));
    }
  }

  /** Most advanced log wins; ties go to config order. */
  private outranks(peer: PeerStatus): boolean {
    const mine = [this.log.lastEpoch(), this.log.lastSeq()] as const;
    const theirs = [peer.lastEpoch, peer.seq] as const;
    if (mine[0] !== theirs[0]) return mine[0] > theirs[0];
    if (mine[1] !== theirs[1]) return mine[1] > theirs[1];
    const order = this.config.core.nodes.map((n) => n.name);
    return order.indexOf(this.name) < order.indexOf(peer.node);
  }

  private async peerStatus(): Promise<PeerStatus | null> {
    if (!this.peerUrl) return null;
    try {
      const res = await fetch(`${this.peerUrl}/v1/status`, { signal: AbortSignal.timeout(Math.max(250, this.config.replication.heartbeatMs * 3)) });
      return (await res.json()) as PeerStatus;
    } catch {
      return null;
    }
  }

  private becomePrimary(epoch: number, machine: HashedMachine | undefined): void {
    if (this.closed) return;
    const { config, log } = this;
    if (log.currentEpoch() < epoch) log.setCurrentEpoch(epoch);
    const replicator = this.peerUrl
      ? new PrimaryReplicator({
          log,
          epoch,
          nodeName: this.name,
          mode: config.replication.mode,
          clusterSecret: config.replication.clusterSecret,
          heartbeatMs: config.replication.heartbeatMs,
          soloAllowed: true,
          ...(this.opts.logger ? { logger: this.opts.logger } : {}),
        })
      : null;
    const core = new Core({
      domain: config.domain,
      layout: this.layout,
      bookDepth: config.publish.bookDepth,
      tradesKept: config.publish.tradesKept,
      maxBatch: config.core.maxBatch,
      maxQueue: config.core.maxQueue,
      log,
      epoch,
      nodeName: this.name,
      compaction: { tombstonesPerAccount: config.publish.compactTombstonesPerAccount, tombstonesMin: config.publish.compactTombstonesMin },
      ...(machine ? { machine } : {}),
      ...(replicator ? { replicate: (entries) => replicator.replicate(entries) } : {}),
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    this.replicator = replicator;
    this.core = core;
    replicator?.on('fenced', () => this.stepDown());
    this.sync.serve({ generation: core.publisher.generation, docs: core.publisher.docs });
    // Compaction: both generations are served for a grace period; readers discover the new one,
    // sync it in the background while the old keeps streaming, and swap. Then the old retires.
    core.on('generation', (next, old) => {
      if (this.core !== core) return;
      this.sync.serve({ generation: next.generation, docs: next.docs }, { keepPrevious: true });
      const timer = setTimeout(() => {
        this.sync.retire(old.generation);
        core.retire(old);
      }, config.publish.compactGraceMs);
      timer.unref();
    });
    this.setRole('primary');
    core.startEpoch().catch((err: unknown) => this.opts.logger?.warn({ err: String(err) }, 'epoch start not committed'));
    if (replicator) this.probePeer();
  }

  /**
   * A primary whose standby is gone can't know whether it promoted; it asks the peer directly
   * and steps down if the peer leads a newer epoch.
   */
  private probePeer(): void {
    const every = Math.max(50, this.config.replication.heartbeatMs * 2);
    const tick = async () => {
      this.probeTimer = null;
      if (this.closed || this.currentRole !== 'primary') return;
      if (!this.replicator?.attached) {
        const peer = await this.peerStatus();
        if (peer?.role === 'primary' && peer.epoch > (this.core?.epoch ?? 0)) this.replicator?.fence(peer.epoch);
      }
      if (!this.closed && this.currentRole === 'primary') this.probeTimer = setTimeout(tick, every);
    };
    this.probeTimer = setTimeout(tick, every);
  }

  /** Fenced by a newer epoch: stop acting as primary and follow the new one. */
  private stepDown(): void {
    if (this.currentRole !== 'primary') return;
    this.opts.logger?.warn({ node: this.name, epoch: this.core?.epoch }, 'stepping down: a newer primary exists');
    this.core?.stop('fenced by a newer primary');
    this.core = null;
    this.replicator?.close();
    this.replicator = null;
    // Readers of this node's rooms must go and find the new primary.
    this.sync.serve({ generation: 'none', docs: new Map() });
    this.becomeStandby();
  }

  private becomeStandby(): void {
    if (this.closed || !this.peerUrl) return;
    const { config } = this;
    const follower = new Follower({
      log: this.log,
      domain: config.domain,
      nodeName: this.name,
      peerUrl: this.peerUrl,
      clusterSecret: config.replication.clusterSecret,
      heartbeatMs: config.replication.heartbeatMs,
      heartbeatTimeoutMs: config.replication.heartbeatTimeoutMs,
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    this.follower = follower;
    follower.on('promote', () => {
      if (this.follower !== follower) return;
      this.follower = null;
      this.becomePrimary(this.log.currentEpoch() + 1, follower.machine);
    });
    follower.on('diverged', () => this.setRole('halted'));
    follower.start();
    this.setRole('standby');
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.follower?.stop();
    this.replicator?.close();
    this.core?.stop('closed');
    await this.server?.close();
    this.log.close();
  }
}

/** Starts a core node (single-node configs: the one core; else the named node). */
export async function startCoreNode(config: Config, opts: CoreNodeOptions = {}): Promise<CoreNode> {
  return new CoreNode(config, opts).start();
}

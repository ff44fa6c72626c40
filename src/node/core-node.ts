// A core node: one process's worth of core, and the place that wires http/ and rooms/ to the
// engine, replication and publisher. It owns the command log and an HTTP port (API, Yjs rooms,
// replication link) and plays one role at a time (the primary role: primary-role.ts; the start-up
// decision: replication/election.ts; the standby: replication/follower.ts):
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
import type { Core } from '../publish/core.js';
import { Follower } from '../replication/follower.js';
import { elect, fetchPeerStatus, type CoreRole, type PeerStatus } from '../replication/election.js';
import type { HashedMachine } from '../engine/hashed-machine.js';
import type { PrimaryReplicator } from '../replication/leader.js';
import type { Clock } from '../engine/sequencer.js';
import { PrimaryRole } from './primary-role.js';

export type { CoreRole };

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
  private primaryRole: PrimaryRole | null = null;

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

  /** Start-up role decision (replication/election.ts); resolves once this node is primary or standby. */
  async elect(): Promise<void> {
    const outcome = await elect({
      log: this.log,
      nodeName: this.name,
      nodeOrder: this.config.core.nodes.map((n) => n.name),
      peerUrl: () => this.peerUrl,
      peerStatus: () => this.peerStatus(),
      retryMs: this.config.replication.heartbeatMs,
      ...(this.opts.forcePrimary ? { forcePrimary: true } : {}),
      closed: () => this.closed,
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    if (outcome?.role === 'primary') this.becomePrimary(outcome.epoch, undefined);
    else if (outcome?.role === 'standby') this.becomeStandby();
  }

  private peerStatus(): Promise<PeerStatus | null> {
    return fetchPeerStatus(this.peerUrl, Math.max(250, this.config.replication.heartbeatMs * 3));
  }

  private becomePrimary(epoch: number, machine: HashedMachine | undefined): void {
    if (this.closed) return;
    const role: PrimaryRole = new PrimaryRole({
      config: this.config,
      log: this.log,
      epoch,
      nodeName: this.name,
      peerUrl: this.peerUrl,
      layout: this.layout,
      sync: this.sync,
      ...(machine ? { machine } : {}),
      peerStatus: () => this.peerStatus(),
      isCurrent: (): boolean => !this.closed && this.currentRole === 'primary' && this.primaryRole === role,
      onFenced: () => this.stepDown(),
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    this.primaryRole = role;
    this.replicator = role.replicator;
    this.core = role.core;
    role.start();
    this.setRole('primary');
    role.begin();
  }

  /** Fenced by a newer epoch: stop acting as primary and follow the new one. */
  private stepDown(): void {
    if (this.currentRole !== 'primary') return;
    this.opts.logger?.warn({ node: this.name, epoch: this.core?.epoch }, 'stepping down: a newer primary exists');
    this.primaryRole?.stepDown('fenced by a newer primary');
    this.primaryRole = null;
    this.core = null;
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
    this.follower?.stop();
    this.primaryRole?.close();
    await this.server?.close();
    this.log.close();
  }
}

/** Starts a core node (single-node configs: the one core; else the named node). */
export async function startCoreNode(config: Config, opts: CoreNodeOptions = {}): Promise<CoreNode> {
  return new CoreNode(config, opts).start();
}

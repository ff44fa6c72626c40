// A core node: one process's worth of core, and the place that wires http/ and rooms/ to the
// engine, replication and publisher. It owns the command log, an HTTP port (API, Yjs rooms, the
// cluster link at /v1/cluster), a Raft node (replication/raft.ts) with its replicated state
// machine, and — while Raft says it is the ready leader — a LeaderRole (Core + publishing).
// Roles, as /v1/status reports them: `primary` (ready leader: takes writes, publishes), `standby`
// (follower or learner), `starting` (joining a cluster, electing, or a leader committing its
// epoch_start), `halted` (a determinism bug: never acknowledges again).
// Invariants: at most one LeaderRole, and only while Raft is leader and the epoch is ready; it is
// stopped before the replicated machine rebuilds for a follower; timers and sockets are the only
// I/O the Raft node sees (through this file), so the simulator runs the same protocol code.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { nodeUrl, type Config } from '../config/schema.js';
import { createCoreApp } from '../http/write-routes.js';
import { OrderSessionServer } from '../http/order-session.js';
import { listen, type RunningServer } from '../http/server.js';
import { SqliteCommandLog } from '../log/sqlite-log.js';
import type { CommandLog, LogEntry } from '../log/command-log.js';
import { SyncServer } from '../rooms/room-server.js';
import { clusterGate } from '../auth/rules.js';
import type { Layout } from '../publish/layout.js';
import type { Core } from '../publish/core.js';
import { systemClock, type Clock } from '../engine/sequencer.js';
import { RaftNode, type RaftRole } from '../replication/raft.js';
import { ReplicatedMachine } from '../replication/replicated-machine.js';
import { ClusterTransport } from '../replication/transport.js';
import { LeaderRole } from './leader-role.js';
import { NodeSnapshots } from './snapshots.js';
import { processStats } from '../replica/replica.js';
import { OverviewAggregator, configTargets } from './cluster-view/overview.js';
import { mountClusterView } from './cluster-view/routes.js';
import { CoreMetrics, mountMetrics } from './metrics.js';
import { apiDocument } from '../http/api-doc.js';
import type { Hono } from 'hono';

export type CoreRole = 'starting' | 'primary' | 'standby' | 'halted';

export interface CoreNodeOptions {
  /** Which of config.core.nodes this is (default: the first). */
  nodeName?: string;
  host?: string;
  port?: number;
  dataDir?: string;
  /** Peer name → http://host:port, overriding the config (e.g. through link proxies). */
  peerUrls?: Record<string, string>;
  logger?: Logger;
  clock?: Clock;
}

export class CoreNode extends EventEmitter<{ role: [CoreRole] }> {
  readonly name: string;
  readonly log: CommandLog;
  readonly sync: SyncServer;
  readonly raft: RaftNode<LogEntry>;
  readonly replicated: ReplicatedMachine;
  readonly transport: ClusterTransport;
  /**
   * Snapshot files: writing them at positions (none when core.snapshots.everyEntries is 0), and
   * always restoring from and refilling with them — a log trimmed while snapshots were on still
   * needs them after they are turned off.
   */
  readonly snapshots: NodeSnapshots;
  /** The cluster view (GET /v1/overview, /cluster): polls every node's status while watched. */
  readonly overview: OverviewAggregator;
  /** Prometheus metrics (GET /metrics): this node's own registry. */
  readonly metrics: CoreMetrics;
  server!: RunningServer;
  /** The HTTP app (its routes are what /openapi.json documents; tests compare the two). */
  app!: Hono;
  /** Order-entry sessions (WS /v1/session), served while this node leads. */
  sessions: OrderSessionServer | null = null;
  private leaderRole: LeaderRole | null = null;
  /** The follower this node handed leadership to when it stopped gracefully (null: none). */
  handedOverTo: string | null = null;
  private currentRole: CoreRole = 'starting';
  private readonly layout: Layout;
  private readonly peerUrls: Map<string, string>;
  private closed = false;
  private tickTimer: NodeJS.Timeout | null = null;

  constructor(readonly config: Config, readonly opts: CoreNodeOptions = {}) {
    super();
    const nodes = config.core.nodes;
    const me = opts.nodeName ? nodes.find((n) => n.name === opts.nodeName) : nodes[0];
    if (!me) throw new Error(`no core node named ${opts.nodeName}; configured: ${nodes.map((n) => n.name).join(', ')}`);
    this.name = me.name;
    this.peerUrls = new Map(nodes.filter((n) => n.name !== me.name).map((n) => [n.name, opts.peerUrls?.[n.name] ?? nodeUrl(n)]));
    this.overview = new OverviewAggregator({ self: me.name, targets: configTargets(config).map((t) => ({ ...t, url: this.peerUrls.get(t.name) ?? t.url })) });
    const metrics = (this.metrics = new CoreMetrics(me.name));
    this.log = new SqliteCommandLog(join(opts.dataDir ?? me.dataDir, 'log.db'), {
      onAppend: metrics.onAppend,
      idempotencyWindow: config.core.idempotencyWindow,
      retention: config.core.retention === 'drop' ? 'drop' : 'archive',
    });
    this.layout = { accountShards: config.publish.accountShards, markets: config.domain.markets.map((m) => m.symbol) };
    this.sync = new SyncServer({
      maxConnections: config.readNode.maxConnections,
      maxPages: config.readNode.maxPages,
      maxSocketsPerPage: config.readNode.maxSocketsPerPage,
      authorize: clusterGate({ jwtSecret: config.auth.jwtSecret, clusterSecret: config.replication.clusterSecret }),
      onRefused: (info) => opts.logger?.warn(info, 'sync room refused'),
    });
    const clock = opts.clock ?? systemClock;
    const logger = opts.logger;
    const log = (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}) => logger?.[level](fields, msg);
    const snap = config.core.snapshots;
    this.snapshots = new NodeSnapshots({
      dir: join(opts.dataDir ?? me.dataDir, 'snapshots'),
      domain: config.domain,
      log: this.log,
      every: snap.everyEntries,
      keep: snap.keep,
      budgetMs: snap.budgetMs,
      peers: () => this.peerUrls,
      clusterSecret: config.replication.clusterSecret,
      currentMachine: () => this.replicated.machine,
      install: (machine) => this.guarded(() => this.replicated.installSnapshot(machine)),
      commit: () => this.raft.commit,
      retention: config.core.retention,
      halt: (why) => this.raft.halt(why),
      closed: () => this.closed,
      ...(logger ? { logger } : {}),
    });
    // Restart = the newest valid snapshot + the log after it (applied as commits are learned).
    const restored = this.snapshots.restore();
    this.replicated = new ReplicatedMachine({
      domain: config.domain,
      storage: this.log,
      nodeName: this.name,
      wallMs: () => clock.nowMs(),
      onReady: () => this.onReady(),
      defer: (fn) => setImmediate(() => this.guarded(fn)),
      ...(restored ? { initial: restored.machine } : {}),
      snapshots: this.snapshots.hooks(),
    });
    const { replication } = config;
    this.transport = new ClusterTransport({
      self: this.name,
      peers: this.peerUrls,
      clusterSecret: replication.clusterSecret,
      onMessage: (from, msg) => this.guarded(() => this.raft.receive(from, msg)),
      maxFrameBytes: 64 * 1024 * 1024,
      maxBufferedBytes: 32 * 1024 * 1024,
      log,
    });
    this.raft = new RaftNode<LogEntry>({
      id: this.name,
      nodes: nodes.map((n) => n.name),
      storage: this.log,
      now: () => performance.now(),
      random: Math.random,
      electionTimeoutMs: replication.electionTimeoutMs,
      heartbeatMs: replication.heartbeatMs,
      maxEntriesPerAppend: replication.maxEntriesPerAppend,
      maxInflightAppends: replication.maxInflightAppends,
      send: (to, msg) => this.transport.send(to, msg),
      onRole: (role, epoch, leader) => this.onRaftRole(role, epoch, leader),
      onCommit: (commit) => this.replicated.onCommit(commit),
      newClusterId: () => randomUUID(),
      log,
      // A snapshot's seq and the log's base are committed (only committed state is ever snapshotted or dropped).
      committedAtStart: Math.max(restored?.seq ?? 0, this.log.base().seq),
      mayLead: () => this.replicated.mayLead,
      onReset: (base) => this.replicated.onReset(base),
      onAppendAcked: metrics.onAppendAcked,
    });
    this.replicated.attach(this.raft);
    metrics.attach({ status: () => this.describe(), sequencer: () => this.core?.sequencer ?? null, rooms: this.sync });
    if (restored) this.snapshots.verifyRestored(restored.machine);
  }

  get role(): CoreRole {
    return this.currentRole;
  }

  /** The ready leader's Core (null on every other node). */
  get core(): Core | null {
    return this.leaderRole?.core ?? null;
  }

  get url(): string {
    return this.server.url;
  }

  get port(): number {
    return this.server.port;
  }

  /** What /v1/status reports in every role. */
  describe() {
    const core = this.core;
    const raft = this.raft;
    const leader = raft.leader;
    return {
      role: this.currentRole,
      node: this.name,
      epoch: raft.epoch,
      seq: core?.seq ?? this.replicated.applied,
      lastSeq: this.log.lastSeq(),
      commit: raft.commit,
      lastEpoch: this.log.epochAt(this.log.lastSeq()) ?? 0,
      stateHash: core?.stateHash ?? this.replicated.machine.stateHash,
      leader,
      leaderUrl: leader === null ? null : leader === this.name ? (this.config.core.nodes.find((n) => n.name === this.name)?.url ?? this.server?.url ?? null) : this.peerUrls.get(leader) ?? null,
      raft: {
        role: raft.role,
        clusterId: raft.clusterId,
        learner: this.log.hardState().learner,
        storageError: raft.storageError,
        haltReason: raft.haltReason,
        refusedPeers: raft.refusedPeers,
        /** Leader only: each follower's match index and lag (entries it lacks). */
        peers: raft.peerStatus().map((p) => ({ ...p, lag: this.log.lastSeq() - p.match })),
      },
      links: this.transport.status(),
      snapshots: this.snapshots.status(),
      /** Leader only: Yjs generation rebuilds (compactions), built a slice per event-loop turn. */
      compactions: core?.compactions ?? null,
      sessions: { open: this.sessions?.open ?? 0, ...this.sessions?.stats },
      process: processStats(),
    };
  }

  /** Listens, dials the peers and starts the Raft timers; elections do the rest. */
  async start(): Promise<this> {
    await this.listen();
    this.begin();
    return this;
  }

  /** Points this node at a peer (e.g. one that bound an ephemeral port). Before begin(). */
  setPeerUrl(peer: string, url: string): void {
    this.peerUrls.set(peer, url);
    this.transport.setPeerUrl(peer, url);
    this.overview.setTarget(peer, 'core', url);
  }

  /** Resolves once this node is `role` (or rejects after timeoutMs). */
  waitForRole(role: CoreRole, timeoutMs: number): Promise<void> {
    if (this.currentRole === role) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('role', on);
        reject(new Error(`${this.name} not ${role} within ${timeoutMs} ms (is ${this.currentRole})`));
      }, timeoutMs);
      const on = (r: CoreRole) => {
        if (r !== role) return;
        clearTimeout(timer);
        this.off('role', on);
        resolve();
      };
      this.on('role', on);
    });
  }

  /** Dials the peers and starts the Raft timers (after listen()). */
  begin(): void {
    this.transport.start();
    // Fine-grained: a tick only checks deadlines, and detection is never later than one tick.
    const tickMs = Math.max(2, Math.min(10, Math.floor(this.config.replication.heartbeatMs / 4)));
    this.tickTimer = setInterval(() => this.guarded(() => this.raft.tick()), tickMs);
    this.raft.start();
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
      snapshots: () => this.snapshots.store,
      countError: this.metrics.countError,
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    mountClusterView(app, this.overview, this.name);
    mountMetrics(app, this.metrics.registry, this.metrics.refresh);
    const doc = apiDocument({ kind: 'core', domain: config.domain, maxCommandsPerRequest: config.core.maxCommandsPerRequest, readLimits: config.readNode });
    app.get('/openapi.json', (c) => c.json(doc));
    this.app = app;
    this.sessions = new OrderSessionServer({
      core: () => this.core,
      domain: config.domain,
      limits: config.core.sessions,
      commitTimeoutMs: config.replication.commitTimeoutMs,
      secrets: { jwtSecret: config.auth.jwtSecret, clusterSecret: config.replication.clusterSecret },
      describe: () => this.describe(),
      countError: this.metrics.countError,
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    const sessions = this.sessions;
    // Sessions live on one leader: when this node stops leading, their clients go find the next.
    this.on('role', (role) => {
      if (role !== 'primary' && sessions.open > 0) sessions.endAll(`this node is ${role} now: retry unacknowledged commands with the same clientIds at the leader`);
    });
    this.server = await listen(app, this.opts.host ?? me.host, this.opts.port ?? me.port, {
      sync: this.sync,
      upgrades: () => [this.transport, sessions],
      maxConnections: config.core.maxConnections,
      countError: this.metrics.countError,
    });
    this.metrics.trackServer(this.server.server);
    this.overview.setTarget(this.name, 'core', this.server.url);
  }

  /**
   * Runs protocol code from a socket or timer callback. A throw there is a broken invariant (a
   * bug, never an input: inputs are validated at decode): halt loudly rather than crash or go on.
   */
  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.logger?.fatal({ err: err instanceof Error ? err.stack : String(err), node: this.name }, 'replication invariant broken: halting this node');
      this.raft.halt(err instanceof Error ? err.message : String(err));
    }
  }

  private onRaftRole(role: RaftRole, epoch: number, leader: string | null): void {
    // Stop publishing first: the replicated machine may rebuild below for a follower.
    if (role !== 'leader' && this.leaderRole) {
      this.opts.logger?.warn({ node: this.name, epoch, role, leader }, 'stepping down: no longer the leader');
      this.leaderRole.stop(`no longer the leader (now ${role} in epoch ${epoch}, leader ${leader ?? 'unknown'}): outcome unknown, retry with the same clientId`);
      this.leaderRole = null;
    }
    this.replicated.onRole(role, epoch);
    this.updateRole();
  }

  /** Raft's leader has committed its epoch_start (or had nothing to commit): take writes, publish. */
  private onReady(): void {
    if (this.closed || this.leaderRole) return;
    this.leaderRole = new LeaderRole({
      config: this.config,
      log: this.log,
      nodeName: this.name,
      replicated: this.replicated,
      layout: this.layout,
      sync: this.sync,
      sequencerObserver: this.metrics.sequencerObserver,
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    this.leaderRole.core.on('committed', this.metrics.onCommitted);
    this.updateRole();
  }

  private updateRole(): void {
    const r = this.raft.role;
    const role: CoreRole =
      r === 'halted' ? 'halted' : r === 'leader' && this.leaderRole ? 'primary' : r === 'follower' || r === 'learner' ? 'standby' : 'starting';
    if (role === this.currentRole) return;
    this.currentRole = role;
    this.opts.logger?.info({ node: this.name, role, raftRole: r, epoch: this.raft.epoch, seq: this.log.lastSeq(), commit: this.raft.commit }, 'core role');
    this.emit('role', role);
  }

  /**
   * A graceful stop of the leader: stop taking writes, hand leadership to the most up-to-date
   * follower (Raft's TIMEOUT_NOW) and give it up to an election timeout to take over, so a planned
   * restart costs a round trip or two instead of an election timeout.
   */
  private async handOver(): Promise<void> {
    if (!this.raft.isLeader) return;
    this.leaderRole?.stop('this node is shutting down: retry at the new leader');
    this.leaderRole = null;
    const target = this.raft.transferLeadership();
    if (target === null) return;
    this.handedOverTo = target;
    this.opts.logger?.info({ node: this.name, to: target }, 'shutting down: handing leadership over');
    // The node's role stays 'primary' until Raft steps down (the target's vote of a newer epoch).
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off('role', on);
        resolve();
      };
      const on = (role: CoreRole) => role !== 'primary' && done();
      const timer = setTimeout(done, this.config.replication.electionTimeoutMs);
      this.on('role', on);
    });
  }

  async close(): Promise<void> {
    if (!this.closed) await this.handOver().catch(() => {});
    this.closed = true;
    this.overview.stop();
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.transport.close();
    this.sessions?.close();
    this.leaderRole?.stop('closed');
    this.leaderRole = null;
    await this.server?.close();
    this.log.close();
  }
}

/** Starts a core node (single-node configs: the one core; else the named node). */
export async function startCoreNode(config: Config, opts: CoreNodeOptions = {}): Promise<CoreNode> {
  return new CoreNode(config, opts).start();
}

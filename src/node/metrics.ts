// Prometheus metrics of one node (`GET /metrics`, text format 0.0.4), with prom-client. Each node
// has its own Registry (tests run several nodes in one process, so never prom-client's global
// one); the process's own metrics (CPU, memory, event loop, GC) are shared by every node of the
// process and live in one registry of their own, appended to every node's answer.
// Two kinds of metric: state read from the node's status at scrape time (gauges, and counters that
// mirror a count kept elsewhere), and events observed as they happen through small hooks the lower
// layers offer (sequencer acks, log appends, APPEND round trips, committed batches, error answers).
// Names follow the Prometheus conventions: `statemirror_` prefix, base units in the name (seconds,
// bytes), `_total` on every counter; label values come from fixed sets (roles, reject codes,
// configured peers, limit reasons) so no series set grows without bound — the one exception, the
// read node's generation info, keeps a single series.
// Invariant: nothing here changes what a node does; a hook costs a histogram observation at most.
import type { Server } from 'node:http';
import type { Hono } from 'hono';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CommittedBatch, SequencerObserver } from '../engine/sequencer.js';

/** The prefix of every statemirror metric. */
export const PREFIX = 'statemirror_';

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const FSYNC_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

const CORE_ROLES = ['starting', 'primary', 'standby', 'halted'] as const;
const RAFT_ROLES = ['joining', 'learner', 'follower', 'precandidate', 'candidate', 'leader', 'halted'] as const;

let processRegistry: Registry | null = null;

/** This process's metrics (prom-client's defaults), registered once per process on first use. */
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** A node's metrics plus the process's, as one exposition. */
async function exposition(registry: Registry): Promise<string> {
  const [own, proc] = await Promise.all([registry.metrics(), processMetrics().metrics()]);
  return `${own.trimEnd()}\n\n${proc}`;
}

/** GET /metrics on `app`: public, like /v1/status. `refresh` sets the scrape-time values first. */
export function mountMetrics(app: Hono, registry: Registry, refresh: () => void): void {
  app.get('/metrics', async (c) => {
    refresh();
    c.header('content-type', registry.contentType);
    c.header('cache-control', 'no-store');
    return c.body(await exposition(registry));
  });
}

/** Sets a counter to a count kept elsewhere (monotonic there; a restart of the source is a counter reset). */
function mirror(counter: Counter<string>, values: Array<[Record<string, string>, number]> | number): void {
  counter.reset();
  if (typeof values === 'number') counter.inc(values);
  else for (const [labels, v] of values) counter.inc(labels, v);
}

/** A 0/1 gauge per value of a fixed set, 1 for the current one. */
function oneOf(gauge: Gauge<string>, label: string, all: readonly string[], current: string): void {
  for (const v of all) gauge.set({ [label]: v }, v === current ? 1 : 0);
}

/** What both kinds of node export: open HTTP connections, error answers by code, the rooms they serve. */
class NodeMetrics {
  readonly registry = new Registry();
  protected readonly rejects: Counter<'code'>;
  private readonly connectionsOpen: Gauge;
  private readonly connectionsTotal: Counter;
  private readonly roomConnections: Gauge;
  private readonly roomPages: Gauge;
  private readonly droppedClientMessages: Counter;
  private readonly refusedByLimit: Counter<'reason'>;
  private openSockets = 0;

  constructor(labels: Record<string, string>) {
    const registers = [this.registry];
    this.registry.setDefaultLabels(labels);
    processMetrics(); // started with the first node, so its first scrape has event-loop samples

    this.rejects = new Counter({
      name: `${PREFIX}rejects_total`,
      help: 'Commands and requests refused, by code: business rejects (stored in the log, counted once when committed) and request errors (HTTP answers and order-entry session answers)',
      labelNames: ['code'],
      registers,
    });
    this.connectionsOpen = new Gauge({ name: `${PREFIX}http_connections`, help: 'Open TCP connections to this node\'s HTTP port (API, rooms, cluster links, sessions)', registers });
    this.connectionsTotal = new Counter({ name: `${PREFIX}http_connections_total`, help: 'TCP connections accepted on this node\'s HTTP port', registers });
    this.roomConnections = new Gauge({ name: `${PREFIX}rooms_connections`, help: 'Open WebSocket connections to this node\'s read-only Yjs rooms', registers });
    this.roomPages = new Gauge({ name: `${PREFIX}rooms_pages`, help: 'Pages (browser tabs or downstream nodes) holding at least one room socket', registers });
    this.droppedClientMessages = new Counter({ name: `${PREFIX}rooms_dropped_client_messages_total`, help: 'Updates sent by room clients and dropped (rooms are read-only)', registers });
    this.refusedByLimit = new Counter({ name: `${PREFIX}rooms_refused_total`, help: 'Room connections refused by a limit, by reason', labelNames: ['reason'], registers });
  }

  /** Counts an answered error (request errors; business rejects come from committed batches). */
  readonly countError = (code: string): void => {
    this.rejects.inc({ code });
  };

  /** Counts the HTTP server's connections (open and accepted). */
  trackServer(server: Server): void {
    server.on('connection', (socket) => {
      this.openSockets += 1;
      this.connectionsTotal.inc();
      socket.once('close', () => (this.openSockets -= 1));
    });
  }

  protected refreshRooms(rooms: { connections: number; pageCount: number; droppedClientMessages: number; refusedByLimit: Record<string, number> }): void {
    this.connectionsOpen.set(this.openSockets);
    this.roomConnections.set(rooms.connections);
    this.roomPages.set(rooms.pageCount);
    mirror(this.droppedClientMessages, rooms.droppedClientMessages);
    mirror(this.refusedByLimit, Object.entries(rooms.refusedByLimit).map(([reason, n]) => [{ reason }, n]));
  }
}

/** The parts of a core node's status (CoreNode.describe()) the metrics read. */
export interface CoreStatusView {
  role: string;
  epoch: number;
  seq: number;
  lastSeq: number;
  commit: number;
  raft: {
    role: string;
    storageError: string | null;
    haltReason: string | null;
    peers: Array<{ node: string; match: number; lag: number; inflight: number }>;
  };
  links: Record<string, { connected: boolean; dropped: number; sent: number; received: number }>;
  snapshots: { taken: number; fetched: number; failed: number };
  compactions: { count: number } | null;
  sessions: { open: number; opened?: number; refused?: number; commands?: number; overloaded?: number; closedSlow?: number };
}

/** What a core node reads besides its status: the leader's sequencer and the rooms it serves. */
export interface CoreMetricsSource {
  status(): CoreStatusView;
  sequencer(): { queueDepth: number; batchesInFlight: number; isHalted: boolean } | null;
  rooms: { connections: number; pageCount: number; droppedClientMessages: number; refusedByLimit: Record<string, number> };
}

/** A core node's metrics. Build it first: the log and Raft node take its hooks. */
export class CoreMetrics extends NodeMetrics {
  private readonly commitLatency: Histogram;
  private readonly appendSeconds: Histogram;
  private readonly appendEntries: Histogram;
  private readonly appendBytes: Counter;
  private readonly roundTrip: Histogram<'peer'>;
  private readonly acknowledged: Counter;
  private readonly gauges: Record<string, Gauge<string>>;
  private readonly counters: Record<string, Counter<string>>;
  private source: CoreMetricsSource | null = null;

  constructor(node: string) {
    super({ node });
    const registers = [this.registry];
    this.commitLatency = new Histogram({
      name: `${PREFIX}commit_latency_seconds`,
      help: 'Leader: from a command queued at the sequencer to its acknowledgement (applied, durable on a majority, published)',
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    this.appendSeconds = new Histogram({ name: `${PREFIX}log_append_seconds`, help: 'One durable log append (one batch, one fsync), leader and followers', buckets: FSYNC_BUCKETS_S, registers });
    this.appendEntries = new Histogram({ name: `${PREFIX}log_append_entries`, help: 'Entries per durable log append (the leader: one sequencer batch)', buckets: BATCH_BUCKETS, registers });
    this.appendBytes = new Counter({ name: `${PREFIX}log_appended_bytes_total`, help: 'Bytes appended to the command log (encoded batches)', registers });
    this.roundTrip = new Histogram({
      name: `${PREFIX}replication_round_trip_seconds`,
      help: 'Leader: from an APPEND with entries sent to a follower until its ack (network both ways plus the follower\'s fsync)',
      labelNames: ['peer'],
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    this.acknowledged = new Counter({ name: `${PREFIX}commands_acknowledged_total`, help: 'Leader: commands committed and answered (accepted or rejected; retries answered from the log not counted)', registers });
    const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name: `${PREFIX}${name}`, help, labelNames, registers });
    const counter = (name: string, help: string, labelNames: string[] = []) => new Counter({ name: `${PREFIX}${name}_total`, help, labelNames, registers });
    this.gauges = {
      role: gauge('core_role', 'This node\'s role as /v1/status reports it: 1 for the current one', ['role']),
      raftRole: gauge('raft_role', 'This node\'s Raft role: 1 for the current one', ['role']),
      epoch: gauge('raft_epoch', 'Raft epoch (term) this node is in'),
      commit: gauge('raft_commit_seq', 'Highest seq this node knows committed'),
      lastSeq: gauge('log_last_seq', 'Last seq in this node\'s log (durable, maybe not yet committed)'),
      applied: gauge('applied_seq', 'Seq of the state this node serves: the leader\'s last committed batch, a follower\'s applied entries'),
      peerMatch: gauge('replication_peer_match_seq', 'Leader: the highest seq each follower is known to hold', ['peer']),
      peerLag: gauge('replication_peer_lag_entries', 'Leader: entries each follower lacks (last seq minus its match)', ['peer']),
      peerInflight: gauge('replication_peer_inflight_appends', 'Leader: APPENDs sent to each follower and not yet answered', ['peer']),
      linkUp: gauge('cluster_link_up', 'Our outbound cluster link to each peer is open (1) or not (0)', ['peer']),
      queue: gauge('sequencer_queue_depth', 'Leader: commands queued and not yet in a batch'),
      inflight: gauge('sequencer_batches_in_flight', 'Leader: batches sequenced and waiting for their majority'),
      halted: gauge('halted', '1 once this node halted (a broken invariant, or a leader\'s sequencer stopped by a log failure): it acknowledges nothing more'),
      storageError: gauge('storage_error', '1 while this node\'s log has failed (disk full, I/O error)'),
      sessionsOpen: gauge('sessions_open', 'Order-entry sessions open (or upgrading) on this node'),
    };
    this.counters = {
      sent: counter('cluster_messages_sent', 'Cluster messages sent to each peer', ['peer']),
      dropped: counter('cluster_messages_dropped', 'Cluster messages to each peer dropped (link down or over its buffer; Raft retransmits)', ['peer']),
      received: counter('cluster_messages_received', 'Cluster messages received from each peer', ['peer']),
      snapshotsTaken: counter('snapshots_taken', 'Snapshot files written by this node'),
      snapshotsFetched: counter('snapshots_fetched', 'Snapshot files fetched from a peer (a node refilled after a RESET)'),
      snapshotsFailed: counter('snapshots_failed', 'Snapshot writes or fetches that failed'),
      compactions: counter('compactions', 'Leader: Yjs generations rebuilt (compactions) since it became leader'),
      sessionsOpened: counter('sessions_opened', 'Order-entry sessions opened'),
      sessionsRefused: counter('sessions_refused', 'Order-entry session upgrades refused (limit, token, not the leader)'),
      sessionCommands: counter('session_commands', 'Commands submitted through order-entry sessions'),
      sessionsSlow: counter('sessions_closed_slow', 'Order-entry sessions closed as slow consumers'),
    };
  }

  /** Where the scrape-time values come from (set once the node is built). */
  attach(source: CoreMetricsSource): void {
    this.source = source;
  }

  /** Sequencer hook: each command's submit → ack time. */
  readonly sequencerObserver: SequencerObserver = {
    now: () => performance.now(),
    acknowledged: (ms) => this.commitLatency.observe(ms / 1000),
  };

  /** Command log hook: one observation per durable append. */
  readonly onAppend = (entries: number, bytes: number, ms: number): void => {
    this.appendSeconds.observe(ms / 1000);
    this.appendEntries.observe(entries);
    this.appendBytes.inc(bytes);
  };

  /** Raft hook: an APPEND's round trip to `peer`. */
  readonly onAppendAcked = (peer: string, ms: number): void => {
    this.roundTrip.observe({ peer }, ms / 1000);
  };

  /** Leader: a committed batch — its commands are acknowledged, its business rejects counted by code. */
  readonly onCommitted = (batch: CommittedBatch): void => {
    this.acknowledged.inc(batch.entries.length);
    for (const e of batch.entries) if (e.result.status === 'rejected') this.rejects.inc({ code: e.result.code });
  };

  /** Sets every scrape-time value from the node's status. */
  readonly refresh = (): void => {
    if (!this.source) return;
    const s = this.source.status();
    const g = this.gauges;
    const c = this.counters;
    oneOf(g.role!, 'role', CORE_ROLES, s.role);
    oneOf(g.raftRole!, 'role', RAFT_ROLES, s.raft.role);
    g.epoch!.set(s.epoch);
    g.commit!.set(s.commit);
    g.lastSeq!.set(s.lastSeq);
    g.applied!.set(s.seq);
    // Per-peer replication state exists on the leader only: other nodes export no series.
    for (const k of ['peerMatch', 'peerLag', 'peerInflight'] as const) g[k]!.reset();
    for (const p of s.raft.peers) {
      g.peerMatch!.set({ peer: p.node }, p.match);
      g.peerLag!.set({ peer: p.node }, p.lag);
      g.peerInflight!.set({ peer: p.node }, p.inflight);
    }
    const links = Object.entries(s.links);
    for (const [peer, l] of links) g.linkUp!.set({ peer }, l.connected ? 1 : 0);
    mirror(c.sent!, links.map(([peer, l]) => [{ peer }, l.sent]));
    mirror(c.dropped!, links.map(([peer, l]) => [{ peer }, l.dropped]));
    mirror(c.received!, links.map(([peer, l]) => [{ peer }, l.received]));
    const seq = this.source.sequencer();
    g.queue!.set(seq?.queueDepth ?? 0);
    g.inflight!.set(seq?.batchesInFlight ?? 0);
    g.halted!.set(s.role === 'halted' || s.raft.haltReason !== null || seq?.isHalted === true ? 1 : 0);
    g.storageError!.set(s.raft.storageError !== null ? 1 : 0);
    g.sessionsOpen!.set(s.sessions.open);
    mirror(c.snapshotsTaken!, s.snapshots.taken);
    mirror(c.snapshotsFetched!, s.snapshots.fetched);
    mirror(c.snapshotsFailed!, s.snapshots.failed);
    mirror(c.compactions!, s.compactions?.count ?? 0);
    mirror(c.sessionsOpened!, s.sessions.opened ?? 0);
    mirror(c.sessionsRefused!, s.sessions.refused ?? 0);
    mirror(c.sessionCommands!, s.sessions.commands ?? 0);
    mirror(c.sessionsSlow!, s.sessions.closedSlow ?? 0);
    this.refreshRooms(this.source.rooms);
  };
}

/** The parts of a read node's status (Replica.status() with its seq and generation) the metrics read. */
export interface ReadNodeStatusView {
  seq: number;
  generation: string | null;
  status: {
    epoch?: unknown;
    upstreamSeq?: unknown;
    lagMs?: unknown;
    lastCommitAgeMs?: unknown;
    accounts?: unknown;
    upstreamErrors?: unknown;
    syncingGeneration?: unknown;
  };
  rooms: { connections: number; pageCount: number; droppedClientMessages: number; refusedByLimit: Record<string, number> };
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** A read node's metrics. */
export class ReadNodeMetrics extends NodeMetrics {
  private readonly gauges: Record<string, Gauge<string>>;
  private readonly upstreamErrors: Counter;
  private readonly swaps: Counter;
  private source: (() => ReadNodeStatusView) | null = null;

  constructor(region: string) {
    super({ region });
    const registers = [this.registry];
    const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name: `${PREFIX}${name}`, help, labelNames, registers });
    this.gauges = {
      seq: gauge('replica_seq', 'Seq this read node serves (every doc of its generation complete up to it)'),
      upstreamSeq: gauge('replica_upstream_seq', 'Upstream\'s seq at the last discovery poll (a lower bound of what exists)'),
      lag: gauge('replica_lag_seconds', 'How far behind upstream, in time: 0 at upstream\'s seq, else the age of the newest commit held (NaN before any state)'),
      commitAge: gauge('replica_last_commit_age_seconds', 'Wall-clock age of the newest commit this node holds (grows while the core is idle; NaN before any commit)'),
      epoch: gauge('replica_epoch', 'Highest primary epoch this node has seen upstream'),
      generation: gauge('replica_generation_info', 'The generation this node serves (label), always 1', ['generation']),
      syncing: gauge('replica_syncing_generation', '1 while a newer generation is being synced in the background'),
      accounts: gauge('replica_accounts', 'Accounts in the state this node serves'),
    };
    this.upstreamErrors = new Counter({ name: `${PREFIX}replica_upstream_errors_total`, help: 'Upstream discovery polls that failed (no upstream serving a generation, fenced epoch, layout mismatch)', registers });
    this.swaps = new Counter({ name: `${PREFIX}replica_generation_swaps_total`, help: 'Generations this node switched to (first sync, failover, compaction)', registers });
  }

  attach(source: () => ReadNodeStatusView): void {
    this.source = source;
  }

  /** The node switched to a new generation. */
  readonly onSwapped = (): void => {
    this.swaps.inc();
  };

  readonly refresh = (): void => {
    if (!this.source) return;
    const v = this.source();
    const s = v.status;
    const g = this.gauges;
    g.seq!.set(v.seq);
    g.upstreamSeq!.set(num(s.upstreamSeq));
    // NaN (Prometheus' "no value") until there is state to measure.
    g.lag!.set(typeof s.lagMs === 'number' ? s.lagMs / 1000 : NaN);
    g.commitAge!.set(typeof s.lastCommitAgeMs === 'number' ? s.lastCommitAgeMs / 1000 : NaN);
    g.epoch!.set(num(s.epoch));
    g.generation!.reset();
    if (v.generation !== null) g.generation!.set({ generation: v.generation }, 1);
    g.syncing!.set(s.syncingGeneration ? 1 : 0);
    g.accounts!.set(num(s.accounts));
    mirror(this.upstreamErrors, num(s.upstreamErrors));
    this.refreshRooms(v.rooms);
  };
}

// The cluster view's memory, without I/O: each poll's statuses (core nodes' and read nodes' public
// /v1/status, or the error fetching one) go in; out come the rows of the cluster table, a bounded
// history of every region's seq and lag, and a bounded list of events — leader elections and
// failovers, generation changes per region, nodes becoming unreachable and back.
// Invariants: bounded — at most `maxSamples` polls of history (and none older than `historyMs`)
// and `maxEvents` events, oldest dropped first; time comes in with each poll (no clock read here),
// so tests feed fake statuses at chosen times. Statuses are untrusted JSON: every field is read
// defensively (a missing or mistyped one is null, never a throw).

export type NodeKind = 'core' | 'region';

export interface NodeTarget {
  name: string;
  kind: NodeKind;
  /** http(s)://host:port of the node's public API. */
  url: string;
}

/** One poll's answer for one node: its /v1/status JSON, or why it could not be had. */
export type PollResult = { ok: true; status: unknown } | { ok: false; error: string };

export interface FollowerRow {
  node: string;
  match: number | null;
  /** Entries the follower lacks (the leader's lastSeq − its match). */
  lag: number | null;
}

export interface CoreRow {
  name: string;
  url: string;
  reachable: boolean;
  error: string | null;
  /** primary | standby | starting | halted (null: unreachable). */
  role: string | null;
  epoch: number | null;
  seq: number | null;
  commit: number | null;
  lastSeq: number | null;
  leader: string | null;
  /** Reported by the leader only (empty elsewhere). */
  followers: FollowerRow[];
}

export interface RegionRow {
  name: string;
  url: string;
  reachable: boolean;
  error: string | null;
  /** The upstream the node follows now (a core node or a relay region). */
  upstream: string | null;
  epoch: number | null;
  generation: string | null;
  seq: number | null;
  upstreamSeq: number | null;
  /** Entries behind the newest committed seq this poll saw (its upstream's, or any core's). */
  lagSeq: number | null;
  /** How stale the region is: 0 when it holds everything seen committed, else the age of its newest commit. */
  lagMs: number | null;
  connections: number | null;
  pages: number | null;
}

export type EventKind = 'leader' | 'failover' | 'no_leader' | 'generation' | 'unreachable' | 'reachable';

export interface ClusterEvent {
  /** Wall-clock ms of the poll that saw it. */
  at: number;
  kind: EventKind;
  /** The node (core or region) the event is about. */
  node: string;
  epoch?: number;
  from?: string | null;
  to?: string | null;
  message: string;
}

/** Lag per region over time, column-wise (uPlot's aligned data: one shared time axis). */
export interface HistoryColumns {
  /** Poll times, wall-clock ms. */
  t: number[];
  regions: Record<string, { seq: Array<number | null>; lagMs: Array<number | null> }>;
}

export interface ClusterSnapshot {
  at: number | null;
  leader: { node: string; epoch: number } | null;
  nodes: CoreRow[];
  regions: RegionRow[];
  history: HistoryColumns;
  events: ClusterEvent[];
}

export interface ClusterHistoryOptions {
  /** History older than this is dropped (default 10 minutes). */
  historyMs?: number;
  /** At most this many polls kept (default 1200: 10 minutes at 2 Hz). */
  maxSamples?: number;
  /** At most this many events kept (default 200). */
  maxEvents?: number;
}

interface Sample {
  t: number;
  regions: Map<string, { seq: number | null; lagMs: number | null }>;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

export class ClusterHistory {
  private readonly historyMs: number;
  private readonly maxSamples: number;
  private readonly maxEvents: number;
  private samples: Sample[] = [];
  private events: ClusterEvent[] = [];
  private nodes: CoreRow[] = [];
  private regions: RegionRow[] = [];
  private at: number | null = null;
  private leader: { node: string; epoch: number } | null = null;
  /** The last leader ever seen: a leader after a leaderless gap is still a failover from it. */
  private lastLeader: { node: string; epoch: number } | null = null;
  private readonly reachable = new Map<string, boolean>();
  private readonly generations = new Map<string, string>();

  constructor(opts: ClusterHistoryOptions = {}) {
    this.historyMs = opts.historyMs ?? 10 * 60_000;
    this.maxSamples = opts.maxSamples ?? 1200;
    this.maxEvents = opts.maxEvents ?? 200;
  }

  /** Takes one poll of every target (a target missing from `results` counts as unreachable). */
  ingest(at: number, targets: NodeTarget[], results: Map<string, PollResult>): void {
    this.at = at;
    const result = (t: NodeTarget): PollResult => results.get(t.name) ?? { ok: false, error: 'not polled' };
    this.nodes = targets.filter((t) => t.kind === 'core').map((t) => coreRow(t, result(t)));
    // The newest committed seq anyone reported: a region below it is behind, even when its own
    // upstream (a dead leader, a stale relay) has nothing newer to tell it.
    const clusterSeq = Math.max(0, ...this.nodes.map((n) => n.seq ?? 0));
    this.regions = targets.filter((t) => t.kind === 'region').map((t) => regionRow(t, result(t), clusterSeq));
    for (const row of [...this.nodes, ...this.regions]) this.noteReachable(at, row.name, row.reachable, row.error);
    this.noteLeader(at);
    for (const r of this.regions) this.noteGeneration(at, r);
    this.samples.push({ t: at, regions: new Map(this.regions.map((r) => [r.name, { seq: r.seq, lagMs: r.lagMs }])) });
    const oldest = at - this.historyMs;
    let drop = Math.max(0, this.samples.length - this.maxSamples);
    while (drop < this.samples.length && this.samples[drop]!.t < oldest) drop++;
    if (drop > 0) this.samples.splice(0, drop);
  }

  snapshot(): ClusterSnapshot {
    const names = this.regions.map((r) => r.name);
    const history: HistoryColumns = { t: this.samples.map((s) => s.t), regions: {} };
    for (const name of names) {
      history.regions[name] = {
        seq: this.samples.map((s) => s.regions.get(name)?.seq ?? null),
        lagMs: this.samples.map((s) => s.regions.get(name)?.lagMs ?? null),
      };
    }
    return { at: this.at, leader: this.leader, nodes: this.nodes, regions: this.regions, history, events: [...this.events] };
  }

  private push(event: ClusterEvent): void {
    this.events.push(event);
    if (this.events.length > this.maxEvents) this.events.splice(0, this.events.length - this.maxEvents);
  }

  private noteReachable(at: number, node: string, reachable: boolean, error: string | null): void {
    const before = this.reachable.get(node);
    this.reachable.set(node, reachable);
    if (before === reachable || (before === undefined && reachable)) return;
    if (reachable) this.push({ at, kind: 'reachable', node, message: `${node} answers again` });
    else this.push({ at, kind: 'unreachable', node, message: `${node} unreachable: ${error ?? 'no answer'}` });
  }

  /**
   * The leader is the reachable core node that says it is primary, in the highest epoch (a
   * deposed leader cut off from the others may still say primary in an older epoch).
   */
  private noteLeader(at: number): void {
    let best: CoreRow | null = null;
    for (const n of this.nodes) if (n.role === 'primary' && n.epoch !== null && (best === null || n.epoch > best.epoch!)) best = n;
    const now = best ? { node: best.name, epoch: best.epoch! } : null;
    const before = this.leader;
    this.leader = now;
    if (now === null) {
      if (before !== null) this.push({ at, kind: 'no_leader', node: before.node, epoch: before.epoch, message: `no leader (${before.node} was, epoch ${before.epoch})` });
      return;
    }
    if (before !== null && before.node === now.node && before.epoch === now.epoch) return;
    const last = this.lastLeader;
    this.lastLeader = now;
    if (last !== null && last.node === now.node && last.epoch === now.epoch) return; // back after a blind spot
    if (last === null) {
      this.push({ at, kind: 'leader', node: now.node, epoch: now.epoch, from: null, to: now.node, message: `${now.node} leads (epoch ${now.epoch})` });
    } else {
      const how = last.node === now.node ? `${now.node} re-elected` : `${last.node} → ${now.node}`;
      this.push({ at, kind: 'failover', node: now.node, epoch: now.epoch, from: last.node, to: now.node, message: `failover: ${how} (epoch ${last.epoch} → ${now.epoch})` });
    }
  }

  private noteGeneration(at: number, r: RegionRow): void {
    if (r.generation === null) return;
    const before = this.generations.get(r.name);
    this.generations.set(r.name, r.generation);
    if (before === undefined || before === r.generation) return;
    this.push({ at, kind: 'generation', node: r.name, from: before, to: r.generation, message: `${r.name}: new generation ${short(r.generation)} (was ${short(before)})` });
  }
}

const short = (generation: string) => (generation.length > 12 ? `${generation.slice(0, 12)}…` : generation);

function coreRow(t: NodeTarget, r: PollResult): CoreRow {
  const empty: CoreRow = { name: t.name, url: t.url, reachable: false, error: null, role: null, epoch: null, seq: null, commit: null, lastSeq: null, leader: null, followers: [] };
  if (!r.ok) return { ...empty, error: r.error };
  const s = obj(r.status);
  const peers = obj(s.raft).peers;
  return {
    ...empty,
    reachable: true,
    role: str(s.role),
    epoch: num(s.epoch),
    seq: num(s.seq),
    commit: num(s.commit),
    lastSeq: num(s.lastSeq),
    leader: str(s.leader),
    followers: (Array.isArray(peers) ? peers.slice(0, 64) : []).map((p) => {
      const peer = obj(p);
      return { node: str(peer.node) ?? '?', match: num(peer.match), lag: num(peer.lag) };
    }),
  };
}

function regionRow(t: NodeTarget, r: PollResult, clusterSeq: number): RegionRow {
  const empty: RegionRow = {
    name: t.name, url: t.url, reachable: false, error: null, upstream: null, epoch: null, generation: null,
    seq: null, upstreamSeq: null, lagSeq: null, lagMs: null, connections: null, pages: null,
  };
  if (!r.ok) return { ...empty, error: r.error };
  const s = obj(r.status);
  const seq = num(s.seq);
  const upstreamSeq = num(s.upstreamSeq);
  const newest = Math.max(upstreamSeq ?? 0, clusterSeq);
  const commitAgeMs = num(s.lastCommitAgeMs);
  // The node's own lagMs (0 when it holds its upstream's seq) misses a region whose upstream is
  // itself behind or dead; the age of its newest commit bounds how stale it is when anyone has more.
  const behind = seq !== null && seq < newest;
  const reported = num(s.lagMs);
  const lagMs = seq === null ? null : Math.max(reported ?? 0, behind ? (commitAgeMs ?? 0) : 0);
  return {
    ...empty,
    reachable: true,
    upstream: str(s.upstream),
    epoch: num(s.epoch),
    generation: str(s.generation),
    seq,
    upstreamSeq,
    lagSeq: seq === null ? null : Math.max(0, newest - seq),
    lagMs,
    connections: num(s.connections),
    pages: num(s.pages),
  };
}

// Deterministic simulator for the core replication protocol (TigerBeetle's VOPR is the model): the
// production RaftNode and ReplicatedMachine run over a simulated network, clock and disk, with
// seeded faults — message drop, delay, duplication and reordering, symmetric and one-way
// partitions, crash and restart, pause, disk full, a torn (all-or-nothing) append at the log tail
// and disk loss — and invariant checkers after every event (docs/replication.md, "Invariants").
// Invariants of the simulator itself: everything derives from the seed (no Math.random, no real
// clock, no real timers), events at the same time run in the order they were scheduled, so a seed
// replays the same run exactly; a failure reports the seed and the event index.
import { mulberry32, mixSeed, type Rng } from '../prng.js';
import type { Command, DomainConfig, Amount, PriceTicks, QtyLots, OrderId } from '../../src/domain/types.js';
import type { LogEntry } from '../../src/log/command-log.js';
import type { NodeId, RaftMessage } from '../../src/replication/messages.js';
import { ELECTION_SPREAD, RaftNode, type RaftOptions } from '../../src/replication/raft.js';
import { ReplicatedMachine } from '../../src/replication/replicated-machine.js';
import { MemoryCommandLog } from '../../src/log/memory-log.js';
import { StorageError, type HardState, type LogBase } from '../../src/log/command-log.js';
import { StateMachine, type StateSnapshot } from '../../src/domain/state-machine.js';
import { HashedMachine } from '../../src/engine/hashed-machine.js';
import { putDigest } from '../../src/engine/state-hash.js';
import { agreesWithLog } from '../../src/log/snapshot-file.js';
import type { SnapshotHooks } from '../../src/replication/replicated-machine.js';

export interface SimOptions {
  seed: number;
  nodes?: number;
  /** Simulated ms of faults and load, before the heal phase. */
  durationMs?: number;
  /** Election timeout base T (timeouts drawn from [T, 2T)). */
  electionTimeoutMs?: number;
  heartbeatMs?: number;
  /** Build a RaftNode (the defect tests pass a subclass with one rule broken). */
  makeRaft?: (o: RaftOptions<LogEntry>) => RaftNode<LogEntry>;
  /** Scales every fault probability (0 = no faults). */
  faultRate?: number;
  /** Mean ms between client write batches (1–3 commands each). */
  clientIntervalMs?: number;
  /** Allow disk loss faults. */
  wipes?: boolean;
  /**
   * Snapshots every this many entries (docs/snapshots.md), with retention of the log below the
   * oldest kept one, so restarts start from a snapshot and lagging or wiped nodes are RESET and
   * refilled from a peer's. 0 or absent: off.
   */
  snapshotEvery?: number;
}

/** A node's snapshot (in memory: the file format is tested on its own; here the protocol is). */
interface SimSnap {
  seq: number;
  epoch: number;
  stateHash: string;
  state: StateSnapshot;
  digests: Array<[string, bigint]>;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  failure?: string;
  events: number;
  simMs: number;
  acked: number;
  committed: number;
  leaders: number;
  faults: Record<string, number>;
}

class SimCrash extends Error {}

/** The disk: survives crashes; can be made full, can tear its next append, can be wiped. */
class SimDisk extends MemoryCommandLog {
  full = false;
  /** Crash during the next append: it lands whole or not at all (one SQLite transaction). */
  tearNext: null | 'keep' | 'drop' = null;
  override setHardState(h: HardState): void {
    if (this.full) throw new StorageError('SQLITE_FULL: database or disk is full');
    super.setHardState(h);
  }
  override append(entries: readonly LogEntry[]): void {
    if (this.full) throw new StorageError('SQLITE_FULL: database or disk is full');
    if (this.tearNext !== null) {
      if (this.tearNext === 'keep') super.append(entries);
      this.tearNext = null;
      throw new SimCrash('crashed during an append');
    }
    super.append(entries);
  }
  override truncateAfter(seq: number): number {
    if (this.full) throw new StorageError('SQLITE_FULL: database or disk is full');
    return super.truncateAfter(seq);
  }
  override dropThrough(seq: number): number {
    if (this.full) throw new StorageError('SQLITE_FULL: database or disk is full');
    return super.dropThrough(seq);
  }
  override resetTo(base: LogBase): void {
    if (this.full) throw new StorageError('SQLITE_FULL: database or disk is full');
    super.resetTo(base);
  }
  /** Snapshots live beside the log: they survive crashes and go with a wiped disk. */
  readonly snaps = new Map<number, SimSnap>();
}

interface SimNode {
  id: NodeId;
  disk: SimDisk;
  up: boolean;
  pausedUntil: number;
  clockOffset: number;
  raft: RaftNode<LogEntry> | null;
  host: ReplicatedMachine | null;
  /** Commit index already checked against the reference log, this incarnation. */
  checked: number;
  pending: Array<{ seq: number; epoch: number; clientId: string }>;
  incarnation: number;
}

interface Event {
  at: number;
  order: number;
  run: () => void;
}

/** Binary min-heap on (at, order). */
class EventQueue {
  private heap: Event[] = [];
  get size(): number {
    return this.heap.length;
  }
  push(e: Event): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
const less = (a: Event, b: Event) => a.at < b.at || (a.at === b.at && a.order < b.order);

export const SIM_DOMAIN: DomainConfig = {
  markets: [{ symbol: 'BTC-USD' }, { symbol: 'ETH-USD' }],
  leverage: 10,
  limits: { maxOpenOrdersPerAccount: 20, maxPriceTicks: 1_000_000, maxQtyLots: 1_000, maxAmount: 1_000_000_000, maxAccounts: 1_000 },
};

class InvariantViolation extends Error {}

/**
 * The liveness allowance beyond two election timeouts: PreVote, Vote, the leader's epoch_start and
 * the probe write are four round trips of at most ~5 ms each after healing (the long-delay spikes
 * are a fault, off once healed), plus a stalled tick or two.
 */
const ROUND_TRIPS_MS = 60;

export class Simulator {
  private readonly rng: Rng;
  private readonly q = new EventQueue();
  private order = 0;
  now = 0;
  private events = 0;
  readonly nodes: SimNode[];
  private readonly T: number;
  private readonly hb: number;
  private readonly tickMs: number;
  /** Directed links cut: "a>b". */
  private cut = new Set<string>();
  private dropP = 0.02;
  private dupP = 0.02;
  private healed = false;
  private readonly faultRate: number;
  /** The committed log as first observed at each seq: every node must agree with it forever. */
  private readonly reference: LogEntry[] = [];
  private readonly acked = new Map<number, { clientId: string; stateHash: string }>();
  /** The state hash first computed at each committed seq (by any node): every other must match. */
  private readonly hashAt = new Map<number, string>();
  private readonly leaderOf = new Map<number, NodeId>();
  private readonly leaderLast = new Map<string, number>();
  private clientSeq = 0;
  private probeAcked = false;
  /** Nodes (id@incarnation) fetching a snapshot to refill from. */
  private readonly refilling = new Set<string>();
  private failure: string | null = null;
  readonly faults: Record<string, number> = {};

  constructor(private readonly o: SimOptions) {
    this.rng = mulberry32(mixSeed(o.seed, 0));
    this.T = o.electionTimeoutMs ?? 100;
    this.hb = o.heartbeatMs ?? 20;
    this.tickMs = 5;
    this.faultRate = o.faultRate ?? 1;
    const n = o.nodes ?? 3;
    this.nodes = Array.from({ length: n }, (_, i) => ({
      id: `n${i}`, disk: new SimDisk(), up: false, pausedUntil: 0, clockOffset: 0, raft: null, host: null, checked: 0, pending: [], incarnation: 0,
    }));
  }

  // ---- scheduling ----

  private at(delayMs: number, run: () => void): void {
    this.q.push({ at: this.now + delayMs, order: this.order++, run });
  }

  private chance(p: number): boolean {
    return this.rng() < p * this.faultRate;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rng() * xs.length)]!;
  }

  // ---- nodes ----

  private start(node: SimNode): void {
    node.up = true;
    node.incarnation += 1;
    node.checked = 0;
    node.pending = [];
    node.clockOffset = Math.floor(this.rng() * 1_000_000);
    const inc = node.incarnation;
    const nodeRng = mulberry32(mixSeed(this.o.seed, 1000 + this.nodes.indexOf(node) * 100 + inc));
    const every = this.o.snapshotEvery ?? 0;
    const restored = every > 0 ? this.restore(node, node.disk.lastSeq()) : null;
    let host: ReplicatedMachine | null = null;
    const hooks: SnapshotHooks | undefined = every > 0 ? this.snapshotHooks(node, inc, () => host!) : undefined;
    host = new ReplicatedMachine({
      domain: SIM_DOMAIN,
      storage: node.disk,
      nodeName: node.id,
      wallMs: () => 1_700_000_000_000 + this.now,
      onApplied: (commit) => this.onLeaderCommit(node, commit),
      ...(restored ? { initial: restored } : {}),
      ...(hooks ? { snapshots: hooks } : {}),
    });
    const h = host;
    const opts: RaftOptions<LogEntry> = {
      id: node.id,
      nodes: this.nodes.map((x) => x.id),
      storage: node.disk,
      now: () => this.now + node.clockOffset,
      random: nodeRng,
      electionTimeoutMs: this.T,
      heartbeatMs: this.hb,
      maxEntriesPerAppend: 8,
      maxInflightAppends: 4,
      send: (to, msg) => this.send(node, to, msg),
      onRole: (role, epoch) => h.onRole(role, epoch),
      onCommit: (commit) => h.onCommit(commit),
      newClusterId: () => `cluster-${this.o.seed}-${Math.floor(this.rng() * 1e9)}`,
      committedAtStart: Math.max(restored?.lastSeq ?? 0, node.disk.base().seq),
      mayLead: () => h.mayLead,
      onReset: (base) => h.onReset(base),
    };
    node.host = h;
    node.raft = null;
    const raft = this.o.makeRaft ? this.o.makeRaft(opts) : new RaftNode(opts);
    node.raft = raft;
    h.attach(raft);
    raft.start();
    const tick = () => {
      if (!node.up || node.incarnation !== inc) return;
      // Paused: skip, but keep the tick cadence so a heal (pausedUntil = 0) takes effect at once.
      if (this.now < node.pausedUntil) return this.at(this.tickMs, tick);
      this.guard(node, () => raft.tick());
      this.at(this.tickMs, tick);
    };
    this.at(this.tickMs * this.rng(), tick);
  }

  // ---- snapshots (snapshotEvery > 0) ----

  private machineOf(s: SimSnap): HashedMachine {
    const digests = Buffer.alloc(32 * s.digests.length);
    s.digests.forEach(([, d], i) => putDigest(d, digests, 32 * i));
    return new HashedMachine(SIM_DOMAIN, { machine: StateMachine.fromSnapshot(SIM_DOMAIN, structuredClone(s.state)), ids: s.digests.map(([id]) => id), digests });
  }

  /** The newest snapshot of `node` at or below maxSeq that its log agrees with, as a machine. */
  private restore(node: SimNode, maxSeq: number): HashedMachine | null {
    const seqs = [...node.disk.snaps.keys()].filter((q) => q <= maxSeq).sort((a, b) => b - a);
    for (const q of seqs) {
      const s = node.disk.snaps.get(q)!;
      if (!agreesWithLog(node.disk, s)) continue;
      const m = this.machineOf(s);
      if (m.stateHash !== s.stateHash) this.fail(`${node.id}: snapshot ${q} rebuilds to another state hash`);
      this.count('restoredFromSnapshot');
      return m;
    }
    return null;
  }

  private keep(node: SimNode, s: SimSnap): void {
    node.disk.snaps.set(s.seq, s);
    const seqs = [...node.disk.snaps.keys()].sort((a, b) => b - a);
    for (const q of seqs.slice(2)) node.disk.snaps.delete(q);
    // Retention: the log keeps what the oldest kept snapshot needs.
    const oldest = Math.min(...node.disk.snaps.keys());
    const upTo = Math.min(oldest, node.raft?.commit ?? 0);
    try {
      if (node.disk.dropThrough(upTo) > 0) this.count('logTrimmed');
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
    }
  }

  private snapshotHooks(node: SimNode, inc: number, host: () => ReplicatedMachine): SnapshotHooks {
    const alive = () => node.up && node.incarnation === inc;
    return {
      every: this.o.snapshotEvery!,
      take: (machine, seq, epoch) => {
        const hash = machine.stateHash;
        const state = machine.machine.exportState();
        const digests = state.accounts.map((a): [string, bigint] => [a.id, machine.digestOf(a.id)!]);
        this.keep(node, { seq, epoch, stateHash: hash, state, digests });
        this.count('snapshot');
        return Promise.resolve();
      },
      leaderPassed: (seq) => {
        // The leader copies a follower's (over the network in production): retried a few times.
        const attempt = (left: number) => {
          if (!alive() || node.disk.snaps.has(seq)) return;
          const peer = this.nodes.find((p) => p !== node && p.up && !this.cut.has(`${p.id}>${node.id}`) && p.disk.snaps.has(seq));
          const s = peer?.disk.snaps.get(seq);
          if (s !== undefined && seq <= node.disk.lastSeq() && agreesWithLog(node.disk, s)) {
            this.keep(node, s);
            this.count('snapshotFetched');
            return;
          }
          if (left > 0) this.at(this.hb * (1 + this.rng()), () => attempt(left - 1));
        };
        this.at(1 + this.rng() * 5, () => attempt(5));
      },
      restore: (maxSeq) => this.restore(node, maxSeq),
      needSnapshot: () => {
        const key = `${node.id}@${inc}`;
        if (this.refilling.has(key)) return;
        this.refilling.add(key);
        const attempt = () => {
          if (!alive()) return;
          const h = host();
          const raft = node.raft;
          if (raft === null || raft.isLeader || h.machine.lastSeq >= node.disk.base().seq) return void this.refilling.delete(key);
          const base = node.disk.base().seq;
          const limit = Math.min(node.disk.lastSeq(), raft.commit);
          let best: SimSnap | undefined;
          for (const p of this.nodes) {
            if (p === node || !p.up || this.cut.has(`${p.id}>${node.id}`)) continue;
            for (const s of p.disk.snaps.values()) if (s.seq >= base && s.seq <= limit && agreesWithLog(node.disk, s) && (best === undefined || s.seq > best.seq)) best = s;
          }
          if (best === undefined) return this.at(this.hb * (1 + this.rng()), attempt);
          this.count('refilled');
          this.refilling.delete(key);
          this.keep(node, best);
          this.guard(node, () => h.installSnapshot(this.machineOf(best)));
        };
        this.at(1 + this.rng() * 5, attempt);
      },
    };
  }

  private crash(node: SimNode): void {
    node.up = false;
    node.raft = null;
    node.host = null;
    node.pending = [];
  }

  /** Runs node code; a SimCrash inside it (torn append) takes the node down. */
  private guard(node: SimNode, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (err instanceof SimCrash) {
        this.count('tornAppend');
        this.crash(node);
        this.at(this.T * (0.5 + this.rng()), () => this.start(node));
        return;
      }
      throw err;
    }
  }

  // ---- network ----

  private send(from: SimNode, to: NodeId, msg: RaftMessage<LogEntry>): void {
    if (!from.up) return;
    if (this.cut.has(`${from.id}>${to}`)) return;
    if (!this.healed && this.chance(this.dropP)) return;
    const copies = !this.healed && this.chance(this.dupP) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      // Mostly short delays, sometimes a long one: reordering comes from the spread.
      const delay = 1 + this.rng() * 4 + (!this.healed && this.chance(0.05) ? this.rng() * 60 : 0);
      this.at(delay, () => this.deliver(to, from.id, msg));
    }
  }

  private deliver(toId: NodeId, from: NodeId, msg: RaftMessage<LogEntry>): void {
    const to = this.nodes.find((n) => n.id === toId)!;
    if (!to.up || !to.raft) return;
    if (this.now < to.pausedUntil) {
      // A paused process reads its socket later; the bytes wait in the kernel.
      this.at(Math.min(to.pausedUntil - this.now, this.tickMs) + this.rng(), () => this.deliver(toId, from, msg));
      return;
    }
    if (this.cut.has(`${from}>${toId}`)) return;
    const raft = to.raft;
    this.guard(to, () => raft.receive(from, msg));
  }

  // ---- clients ----

  private clientWrite(): void {
    const leaders = this.nodes.filter((n) => n.up && n.host?.ready && this.now >= n.pausedUntil);
    if (leaders.length === 0) return;
    const node = this.pick(leaders);
    const items = Array.from({ length: 1 + Math.floor(this.rng() * 3) }, () => ({ clientId: `c${++this.clientSeq}`, command: this.randomCommand() }));
    this.guard(node, () => {
      try {
        const entries = node.host!.sequence(items);
        for (const e of entries) node.pending.push({ seq: e.seq, epoch: e.epoch, clientId: e.clientId });
        // A single-node commit happens inside sequence(): settle at once.
        this.onLeaderCommit(node, node.raft!.commit);
      } catch (err) {
        if (!(err instanceof StorageError)) throw err;
      }
    });
  }

  private randomCommand(): Command {
    const account = `a${Math.floor(this.rng() * 6)}`;
    const r = this.rng();
    if (r < 0.25) return { type: 'deposit', account, amount: (1 + Math.floor(this.rng() * 100_000)) as Amount };
    if (r < 0.3) return { type: 'withdraw', account, amount: (1 + Math.floor(this.rng() * 50_000)) as Amount };
    if (r < 0.85) {
      return {
        type: 'place_order', account, market: this.rng() < 0.7 ? 'BTC-USD' : 'ETH-USD', side: this.rng() < 0.5 ? 'buy' : 'sell',
        price: (95 + Math.floor(this.rng() * 10)) as PriceTicks, qty: (1 + Math.floor(this.rng() * 20)) as QtyLots, tif: this.rng() < 0.2 ? 'IOC' : 'GTC',
      };
    }
    return { type: 'cancel_order', account, orderId: (1 + Math.floor(this.rng() * Math.max(1, this.reference.length))) as OrderId };
  }

  /** The leader acknowledges what it committed (what the sequencer does in production). */
  private onLeaderCommit(node: SimNode, commit: number): void {
    const raft = node.raft;
    if (!raft?.isLeader) return;
    const keep: SimNode['pending'] = [];
    for (const p of node.pending) {
      if (p.seq > commit || p.epoch !== raft.epoch) {
        keep.push(p);
        continue;
      }
      const e = node.disk.entryAt(p.seq) ?? this.reference[p.seq];
      if (e === undefined) this.fail(`leader ${node.id} acknowledges seq ${p.seq} that neither its log nor the cluster holds`);
      if (e.clientId !== p.clientId) this.fail(`leader ${node.id} acknowledges ${p.clientId} at seq ${p.seq} but its log holds ${e.clientId}`);
      this.acked.set(p.seq, { clientId: e.clientId, stateHash: e.stateHash });
      this.checkAcked(p.seq);
      if (e.clientId.startsWith('probe-')) this.probeAcked = true;
    }
    node.pending = keep;
  }

  // ---- faults ----

  private count(kind: string): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
  }

  private randomFault(): void {
    const r = this.rng();
    const node = this.pick(this.nodes);
    const peer = this.pick(this.nodes.filter((n) => n !== node));
    if (r < 0.2) {
      if (!node.up) return;
      this.count('crash');
      if (this.rng() < 0.3) node.disk.tearNext = this.rng() < 0.5 ? 'keep' : 'drop';
      else this.crash(node);
      if (node.up) return; // crashes on its next append instead
      this.at(this.T * (0.2 + 3 * this.rng()), () => !node.up && this.start(node));
    } else if (r < 0.26) {
      // A graceful handoff (what a leader does on SIGTERM), sometimes followed by its exit.
      const leader = this.nodes.find((n) => n.up && n.raft?.isLeader);
      if (!leader) return;
      this.count('handoff');
      this.guard(leader, () => leader.raft!.transferLeadership());
      if (this.rng() < 0.5) this.at(2 + this.rng() * 20, () => {
        if (!leader.up || this.healed) return; // no fault after the faults healed
        this.crash(leader);
        this.at(this.T * (0.2 + 2 * this.rng()), () => !leader.up && this.start(leader));
      });
    } else if (r < 0.35) {
      this.count('pause');
      node.pausedUntil = Math.max(node.pausedUntil, this.now + this.T * 3 * this.rng());
    } else if (r < 0.55) {
      this.count('partition');
      for (const other of this.nodes) if (other !== node) this.cut.add(`${node.id}>${other.id}`).add(`${other.id}>${node.id}`);
      this.at(this.T * (1 + 4 * this.rng()), () => this.healNode(node));
    } else if (r < 0.7) {
      this.count('oneWay');
      const key = `${node.id}>${peer.id}`;
      this.cut.add(key);
      this.at(this.T * (1 + 4 * this.rng()), () => this.cut.delete(key));
    } else if (r < 0.8) {
      this.count('diskFull');
      node.disk.full = true;
      this.at(this.T * (0.5 + 3 * this.rng()), () => (node.disk.full = false));
    } else if (r < 0.9 && this.o.wipes !== false) {
      // One disk loss at a time: Raft (and we) tolerate losing a minority's disks, not more.
      const recovering = this.nodes.some((n) => n.disk.hardState().learner || n.disk.hardState().clusterId === null);
      if (recovering || !node.up) return;
      this.count('wipe');
      this.crash(node);
      node.disk = new SimDisk();
      this.at(this.T * (0.2 + 2 * this.rng()), () => !node.up && this.start(node));
    } else {
      this.count('burst');
      this.dropP = 0.3;
      this.at(this.T * this.rng(), () => (this.dropP = 0.02));
    }
  }

  private healNode(node: SimNode): void {
    for (const key of [...this.cut]) if (key.startsWith(`${node.id}>`) || key.endsWith(`>${node.id}`)) this.cut.delete(key);
  }

  // ---- checkers ----

  private fail(why: string): never {
    throw new InvariantViolation(why);
  }

  private sameEntry(a: LogEntry, b: LogEntry): boolean {
    return a.epoch === b.epoch && a.clientId === b.clientId && a.stateHash === b.stateHash && a.tsMs === b.tsMs;
  }

  private check(): void {
    for (const node of this.nodes) {
      const raft = node.raft;
      if (!node.up || !raft) continue;
      // 1. At most one leader per epoch; 5. a leader's log only grows in its epoch.
      if (raft.isLeader) {
        const prev = this.leaderOf.get(raft.epoch);
        if (prev !== undefined && prev !== node.id) this.fail(`two leaders in epoch ${raft.epoch}: ${prev} and ${node.id}`);
        this.leaderOf.set(raft.epoch, node.id);
        const key = `${node.id}@${raft.epoch}`;
        const last = node.disk.lastSeq();
        if (last < (this.leaderLast.get(key) ?? 0)) this.fail(`leader ${key} truncated its log to ${last}`);
        this.leaderLast.set(key, last);
      }
      // 3. Committed prefixes agree with the reference; 2. acknowledged writes stay as acknowledged.
      const commit = raft.commit;
      if (commit > node.disk.lastSeq()) this.fail(`${node.id} commit ${commit} beyond its log ${node.disk.lastSeq()}`);
      if (commit > node.checked) {
        // Entries at or below the log's base were dropped or never held (a refill): checked before, or by others.
        for (const e of node.disk.entries(Math.max(node.checked, node.disk.base().seq) + 1, commit)) {
          const ref = this.reference[e.seq];
          if (ref === undefined) {
            this.reference[e.seq] = e;
            this.checkAcked(e.seq);
          } else if (!this.sameEntry(ref, e)) this.fail(`${node.id} committed ${e.clientId}@${e.epoch} at seq ${e.seq}; the cluster committed ${ref.clientId}@${ref.epoch}`);
        }
        node.checked = commit;
      }
      // 4. Same state: the machine's hash at its applied seq is the committed entry's.
      const host = node.host!;
      const applied = host.applied;
      if (!raft.isLeader && applied > commit) this.fail(`${node.id} applied ${applied} beyond commit ${commit}`);
      if (applied > 0 && applied <= commit && raft.role !== 'halted') {
        // Entries carry a hash only at the end of a sequenced batch; between those, every node's
        // hash at a seq is checked against the first one computed at that seq by any node.
        const ref = this.reference[applied];
        const hash = host.machine.stateHash;
        if (ref && ref.stateHash !== '' && hash !== ref.stateHash) this.fail(`${node.id} state hash at seq ${applied} differs from the committed one`);
        const seen = this.hashAt.get(applied);
        if (seen === undefined) this.hashAt.set(applied, hash);
        else if (seen !== hash) this.fail(`${node.id} state hash at seq ${applied} differs from another node's at that seq`);
      }
      if (raft.role === 'halted') this.fail(`${node.id} halted: ${raft.haltReason}`);
    }
  }

  /** 2. An acknowledged write is the committed entry at its seq (checked when either is first seen). */
  private checkAcked(seq: number): void {
    const a = this.acked.get(seq);
    const ref = this.reference[seq];
    if (a !== undefined && ref !== undefined && (ref.clientId !== a.clientId || ref.stateHash !== a.stateHash)) {
      this.fail(`acknowledged write ${a.clientId} at seq ${seq} lost: the cluster committed ${ref.clientId} there`);
    }
  }

  // ---- run ----

  private step(): boolean {
    const e = this.q.pop();
    if (!e) return false;
    this.now = Math.max(this.now, e.at);
    this.events += 1;
    e.run();
    this.check();
    return true;
  }

  run(): SimResult {
    const duration = this.o.durationMs ?? 3_000;
    try {
      for (const node of this.nodes) this.at(this.rng() * 20, () => this.start(node));
      const client = () => {
        if (this.healed) return;
        this.clientWrite();
        this.at(this.rng() * 2 * (this.o.clientIntervalMs ?? 8), client);
      };
      this.at(0, client);
      const fault = () => {
        if (this.healed) return;
        if (this.faultRate > 0) this.randomFault();
        this.at(this.T * (0.5 + 2 * this.rng()), fault);
      };
      this.at(this.T, fault);
      while (this.now < duration && this.step());
      // Heal: restart every node, resume, reconnect, free the disks, stop losing messages.
      this.healed = true;
      this.cut.clear();
      for (const node of this.nodes) {
        node.disk.full = false;
        node.disk.tearNext = null;
        node.pausedUntil = 0;
        if (!node.up) this.start(node);
      }
      // 6. Liveness: a leader commits a new write within two (maximum) election timeouts, plus
      // the round trips of an election and a commit.
      const healedAt = this.now;
      const bound = 2 * (1 + ELECTION_SPREAD) * this.T + ROUND_TRIPS_MS;
      let probes = 0;
      const probeAlive = () =>
        this.nodes.some((n) => n.up && n.raft?.isLeader && n.pending.some((p) => p.clientId.startsWith('probe-') && p.epoch === n.raft!.epoch));
      let done = false;
      while (!done && this.step()) {
        if (!probeAlive()) {
          const leader = this.nodes.find((n) => n.up && n.host?.ready);
          if (leader) {
            const clientId = `probe-${++probes}`;
            this.guard(leader, () => {
              const [e] = leader.host!.sequence([{ clientId, command: { type: 'deposit', account: 'probe', amount: 1 as Amount } }]);
              leader.pending.push({ seq: e!.seq, epoch: e!.epoch, clientId });
              this.onLeaderCommit(leader, leader.raft!.commit);
            });
          }
        }
        if (this.probeAcked) done = true;
        if (this.now - healedAt > bound) this.fail(`liveness: no write committed within ${bound} ms after the faults healed`);
      }
      if (!done) this.fail('liveness: the simulation ran out of events');
      // Let followers catch up, then every node's committed log is the reference.
      const settleUntil = this.now + 4 * this.T;
      while (this.now < settleUntil && this.step());
      // 7. Convergence: once healed, every node holds and applies what the leader committed (a
      // follower the leader stopped sending to, or one that cannot refill, would stay behind).
      const leader = this.nodes.find((n) => n.up && n.raft?.isLeader);
      const target = leader?.raft?.commit ?? 0;
      const catchUntil = this.now + 20 * this.T;
      const behind = () => this.nodes.filter((n) => n.up && n.raft?.role !== 'halted' && ((n.raft?.commit ?? 0) < target || (n.host?.applied ?? 0) < target));
      while (behind().length > 0 && this.now < catchUntil && this.step());
      const lagging = behind();
      if (leader && lagging.length > 0 && process.env.SIM_DEBUG) console.log(JSON.stringify({ leader: leader.id, epoch: leader.raft!.epoch, last: leader.disk.lastSeq(), peers: leader.raft!.peerStatus(), lagging: lagging.map((n) => ({ id: n.id, epoch: n.raft!.epoch, leaderId: n.raft!.leader, role: n.raft!.role, learner: n.disk.hardState().learner, storageError: n.raft!.storageError, full: n.disk.full })) }));
      if (leader && lagging.length > 0) this.fail(`convergence: ${lagging.map((n) => `${n.id} (${n.raft?.role}) commit ${n.raft?.commit} applied ${n.host?.applied} log ${n.disk.base().seq}..${n.disk.lastSeq()}`).join(', ')} behind the leader's commit ${target}`);
    } catch (err) {
      if (!(err instanceof InvariantViolation) && !(err instanceof Error)) throw err;
      this.failure = `${err instanceof InvariantViolation ? '' : `${(err as Error).name}: `}${(err as Error).message} (event ${this.events}, t=${this.now.toFixed(1)} ms)`;
    }
    return {
      seed: this.o.seed,
      ok: this.failure === null,
      ...(this.failure !== null ? { failure: this.failure } : {}),
      events: this.events,
      simMs: Math.round(this.now),
      acked: this.acked.size,
      committed: this.reference.length - 1,
      leaders: this.leaderOf.size,
      faults: this.faults,
    };
  }
}

export function simulate(o: SimOptions): SimResult {
  return new Simulator(o).run();
}

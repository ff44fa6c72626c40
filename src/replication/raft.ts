// Raft (§5 + PreVote + CheckQuorum) as a pure, event-driven state machine: the spec is
// docs/replication.md. No sockets, timers, clock or randomness of its own: the host calls
// receive(), tick() and propose(), and the node calls back send(), onRole() and onCommit(). The
// deterministic simulator (sim/vopr) and the production node run this same class.
// Invariants (asserted where cheap, checked by the simulator after every step): at most one leader
// per epoch; a node persists epoch and vote before answering; a follower answers ok only after the
// entries are durable; a leader never truncates its own log; the commit index never decreases and
// never passes an entry that a majority does not hold; learners never vote or campaign.
import { assert } from '../domain/assert.js';
import {
  MSG_APPEND, MSG_APPEND_REPLY, MSG_HELLO, MSG_HELLO_REPLY, MSG_RESET, MSG_TIMEOUT_NOW, MSG_VOTE, MSG_VOTE_REPLY,
  type NodeId, type RaftEntry, type RaftMessage,
} from './messages.js';
import { StorageError, type HardState, type RaftStorage } from './storage.js';

export type RaftRole = 'joining' | 'learner' | 'follower' | 'precandidate' | 'candidate' | 'leader' | 'halted';

export interface RaftOptions<E extends RaftEntry> {
  id: NodeId;
  /** Every node of the cluster, in config order (this node included). */
  nodes: readonly NodeId[];
  storage: RaftStorage<E>;
  /** Monotonic milliseconds. */
  now: () => number;
  /** Uniform in [0, 1): randomised election timeouts. */
  random: () => number;
  /** T: election timeouts are drawn from [T, 1.25T). */
  electionTimeoutMs: number;
  heartbeatMs: number;
  /** Entries per APPEND at most. */
  maxEntriesPerAppend: number;
  /** APPENDs in flight per follower in replicate state. */
  maxInflightAppends: number;
  send: (to: NodeId, msg: RaftMessage<E>) => void;
  /** Called after every role or leader change. */
  onRole?: (role: RaftRole, epoch: number, leader: NodeId | null) => void;
  /** The commit index advanced to `commit`. */
  onCommit?: (commit: number) => void;
  /** A fresh cluster id for a bootstrap (random in production, seeded in the simulator). */
  newClusterId: () => string;
  /**
   * Entries known committed at start: the seq of the snapshot the state machine was restored from
   * (snapshots hold committed state only, docs/snapshots.md). Default 0.
   */
  committedAtStart?: number;
  /**
   * False while this node could not lead: its state machine is behind its log's base (waiting for a
   * snapshot after a RESET) and could not be brought up to its log. It does not campaign then.
   */
  mayLead?: () => boolean;
  /** The log was reset to start after `base` (RESET from the leader): the state must come from a snapshot. */
  onReset?: (base: number) => void;
  /** Leader: `peer` acknowledged an APPEND with entries `ms` after it was sent (metrics only). */
  onAppendAcked?: (peer: NodeId, ms: number) => void;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

interface Progress {
  next: number;
  match: number;
  mode: 'probe' | 'replicate';
  /**
   * The follower told us (a rejection's hint) that it lacks entries at or below our log's base:
   * only a RESET helps. Without it, a `next` at or below the base just means "not known yet", and
   * the probe starts at the base.
   */
  behindBase: boolean;
  /** Last seq of each APPEND in flight, ascending. */
  inflight: number[];
  /** When each APPEND of `inflight` was sent (same order): its round trip, for onAppendAcked. */
  inflightSentMs: number[];
  /** When match last advanced or the follower last answered: both count as life. */
  lastHeardMs: number;
  lastProgressMs: number;
  /** In probe mode: an APPEND is out and unanswered (sent at this time). */
  probeSentMs: number | null;
}

/** Election timeouts are drawn from [T, (1 + ELECTION_SPREAD) T). */
export const ELECTION_SPREAD = 0.25;

/** votedFor value for "will not vote in this epoch" (a learner's recovered epoch). */
export const VOTE_NONE = '#none';

export class RaftNode<E extends RaftEntry> {
  private hard: HardState;
  private roleNow: RaftRole;
  private leaderId: NodeId | null = null;
  private commitIndex = 0;
  private readonly peers: NodeId[];
  /** A handoff in progress: TIMEOUT_NOW goes to this follower once it holds the whole log. */
  private transferTarget: NodeId | null = null;
  private readonly majority: number;
  private progress = new Map<NodeId, Progress>();
  private votes = new Set<NodeId>();
  private electionDeadline = 0;
  /** Last time a valid leader (or, for the leader itself, the quorum check) was heard. */
  private leaderHeardMs = -Infinity;
  private lastTickMs: number;
  private timerResetMs = -Infinity;
  private lastHeartbeatMs = -Infinity;
  private lastQuorumCheckMs: number;
  /** HELLO_REPLYs collected while joining or recovering: peer → its reply. */
  private hellos = new Map<NodeId, { cluster: string | null; epoch: number; history: boolean }>();
  private lastHelloMs = -Infinity;
  storageError: string | null = null;
  haltReason: string | null = null;
  /** Messages dropped because they came from another cluster. */
  refusedPeers = 0;

  constructor(private readonly o: RaftOptions<E>) {
    assert(o.nodes.includes(o.id), `node ${o.id} is not in the cluster ${o.nodes.join(',')}`);
    assert(new Set(o.nodes).size === o.nodes.length, 'duplicate node ids');
    this.peers = o.nodes.filter((n) => n !== o.id);
    this.majority = Math.floor(o.nodes.length / 2) + 1;
    this.hard = o.storage.hardState();
    const committed = o.committedAtStart ?? 0;
    assert(committed >= 0 && committed <= o.storage.lastSeq(), `committed at start ${committed} beyond the log (${o.storage.lastSeq()})`);
    this.commitIndex = committed;
    this.lastTickMs = o.now();
    this.lastQuorumCheckMs = this.lastTickMs;
    this.roleNow = this.hard.clusterId === null ? 'joining' : this.hard.learner ? 'learner' : 'follower';
    this.resetElectionTimer();
  }

  /**
   * Call once the host is wired to the callbacks. A single-node cluster has nobody to ask or wait
   * for: it bootstraps (if new) and leads at once.
   */
  start(): void {
    if (this.peers.length > 0 || this.roleNow === 'halted') return;
    if (this.hard.clusterId === null) this.adoptCluster(this.o.newClusterId(), false);
    if (this.roleNow === 'follower') this.startPreVote();
  }

  // ---- what the host reads ----

  get id(): NodeId {
    return this.o.id;
  }
  get role(): RaftRole {
    return this.roleNow;
  }
  get epoch(): number {
    return this.hard.epoch;
  }
  get leader(): NodeId | null {
    return this.leaderId;
  }
  get commit(): number {
    return this.commitIndex;
  }
  get clusterId(): string | null {
    return this.hard.clusterId;
  }
  get lastSeq(): number {
    return this.o.storage.lastSeq();
  }
  get isLeader(): boolean {
    return this.roleNow === 'leader';
  }

  /** Per-peer replication state, for /v1/status and metrics (leader only; else empty). */
  peerStatus(): Array<{ node: NodeId; match: number; next: number; mode: string; inflight: number; lastHeardAgoMs: number }> {
    const now = this.o.now();
    return [...this.progress].map(([node, p]) => ({
      node, match: p.match, next: p.next, mode: p.mode, inflight: p.inflight.length, lastHeardAgoMs: Math.round(now - p.lastHeardMs),
    }));
  }

  // ---- inputs ----

  /**
   * The leader appends a batch it sequenced (epoch = this epoch, seqs continuing the log) and
   * replicates it. Durable here when this returns. Throws StorageError (the node steps down).
   */
  propose(entries: readonly E[]): void {
    assert(this.roleNow === 'leader', `propose on a ${this.roleNow}`);
    if (entries.length === 0) return;
    let expect = this.o.storage.lastSeq() + 1;
    for (const e of entries) {
      assert(e.epoch === this.hard.epoch, `proposed entry of epoch ${e.epoch} in epoch ${this.hard.epoch}`);
      assert(e.seq === expect, `proposed seq ${e.seq}, expected ${expect}`);
      expect += 1;
    }
    try {
      this.o.storage.append(entries);
    } catch (err) {
      this.storageFailed(err);
      throw err;
    }
    for (const peer of this.peers) this.sendAppends(peer);
    this.maybeCommit();
  }

  /** Timers: election timeout, heartbeats, quorum check, hello retries. Call every few ms. */
  tick(): void {
    if (this.roleNow === 'halted') return;
    const now = this.o.now();
    // Our own stall (GC, a long synchronous task, SIGSTOP) is not the others' silence.
    const gap = now - this.lastTickMs;
    const stallMs = gap - this.o.heartbeatMs;
    if (stallMs > 0) {
      // Shift only what was measured before the stall: a message handled after it (before this
      // tick) already reset its timer to a fresh value. (Not leaderHeardMs: after our own stall we
      // should not be stickier to a leader that may be gone; a live one is heard within a heartbeat.)
      const before = this.lastTickMs;
      // The stall is (roughly) the last stallMs before now: a timer reset before it was measured
      // across it and is shifted; one reset after it (a message handled since) is fresh.
      if (this.timerResetMs < now - stallMs) this.electionDeadline += stallMs;
      if (this.lastQuorumCheckMs <= before) this.lastQuorumCheckMs += stallMs;
      for (const p of this.progress.values()) if (p.lastHeardMs <= before) p.lastHeardMs += stallMs;
    }
    this.lastTickMs = now;
    this.tickAt(now);
  }

  private tickAt(now: number): void {
    if (this.roleNow === 'joining' || (this.roleNow === 'learner' && this.hard.epoch === 0)) {
      if (now - this.lastHelloMs >= this.o.heartbeatMs * 2) this.sendHellos();
      return;
    }
    if (this.roleNow === 'leader') {
      if (now - this.lastHeartbeatMs >= this.o.heartbeatMs) {
        this.lastHeartbeatMs = now;
        for (const peer of this.peers) this.heartbeat(peer, now);
      }
      if (now - this.lastQuorumCheckMs >= this.o.electionTimeoutMs) {
        this.lastQuorumCheckMs = now;
        let alive = 1;
        for (const p of this.progress.values()) if (now - p.lastHeardMs < this.o.electionTimeoutMs) alive += 1;
        if (alive < this.majority) {
          this.log('warn', 'leader lost contact with a majority: stepping down', { alive, majority: this.majority });
          this.becomeFollower(this.hard.epoch, null);
        }
      }
      return;
    }
    if (now < this.electionDeadline) return;
    this.resetElectionTimer();
    if (this.storageError !== null) {
      // Probe the disk: a node that can't persist must not campaign.
      try {
        this.o.storage.setHardState(this.hard);
        this.log('info', 'storage writable again', { was: this.storageError });
        this.storageError = null;
      } catch (err) {
        this.storageFailed(err);
        return;
      }
    }
    if (this.roleNow === 'learner' || !this.mayCampaign() || this.o.mayLead?.() === false) return;
    this.startPreVote();
  }

  receive(from: NodeId, msg: RaftMessage<E>): void {
    if (this.roleNow === 'halted' || from === this.o.id || !this.peers.includes(from) || msg.from !== from) return;
    if (msg.t === MSG_HELLO) return this.onHello(from);
    if (msg.t === MSG_HELLO_REPLY) return this.onHelloReply(from, msg);
    if (this.hard.clusterId === null || msg.cluster !== this.hard.clusterId) {
      if (this.hard.clusterId !== null) {
        this.refusedPeers += 1;
        this.log('warn', 'message from another cluster dropped', { from, cluster: msg.cluster, ours: this.hard.clusterId });
      }
      return;
    }
    // A learner that has not learned the cluster's epoch yet adopts nothing from anyone (see
    // decideLearnerEpoch): it cannot tell a stale leader or candidate from a current one.
    if (this.roleNow === 'learner' && this.hard.epoch === 0) return;
    switch (msg.t) {
      case MSG_VOTE:
        return this.onVote(from, msg);
      case MSG_VOTE_REPLY:
        return this.onVoteReply(from, msg);
      case MSG_APPEND:
        return this.onAppend(from, msg);
      case MSG_APPEND_REPLY:
        return this.onAppendReply(from, msg);
      case MSG_TIMEOUT_NOW:
        return this.onTimeoutNow(from, msg);
      case MSG_RESET:
        return this.onReset(from, msg);
    }
  }

  /** A bug (e.g. a committed entry that does not replay to its stored hash): stop for good. */
  halt(reason: string): void {
    if (this.roleNow === 'halted') return;
    this.haltReason = reason;
    this.log('error', 'HALTED', { reason });
    this.setRole('halted', null);
  }

  // ---- cluster identity ----

  private sendHellos(): void {
    this.lastHelloMs = this.o.now();
    for (const peer of this.peers) {
      this.o.send(peer, {
        t: MSG_HELLO, cluster: this.hard.clusterId, from: this.o.id, epoch: this.hard.epoch,
        lastSeq: this.o.storage.lastSeq(), lastEpoch: this.lastEpoch(), learner: this.hard.learner,
      });
    }
  }

  /** Anyone may ask who we are (a joining or recovering peer decides from the reply). */
  private onHello(from: NodeId): void {
    this.o.send(from, {
      t: MSG_HELLO_REPLY, cluster: this.hard.clusterId, from: this.o.id, epoch: this.hard.epoch,
      lastSeq: this.o.storage.lastSeq(), lastEpoch: this.lastEpoch(), learner: this.hard.learner,
      genesis: this.hard.clusterId !== null && !this.hasHistory(),
    });
  }

  private onHelloReply(from: NodeId, msg: Extract<RaftMessage<E>, { t: typeof MSG_HELLO_REPLY }>): void {
    const history = msg.cluster !== null && !msg.genesis;
    if (this.hard.clusterId !== null && msg.cluster !== null && msg.cluster !== this.hard.clusterId) {
      this.refusedPeers += 1;
      this.log('warn', 'peer belongs to another cluster', { from, cluster: msg.cluster, ours: this.hard.clusterId });
      return;
    }
    this.hellos.set(from, { cluster: msg.cluster, epoch: msg.epoch, history });
    if (this.roleNow === 'joining') this.decideJoin();
    else if (this.roleNow === 'learner' && this.hard.epoch === 0) this.decideLearnerEpoch();
  }

  /** Joining (no cluster id): join a cluster with history as a learner, or take part in genesis. */
  private decideJoin(): void {
    const withHistory = [...this.hellos.values()].find((h) => h.history);
    if (withHistory && this.joinsAsLearner()) {
      this.log('warn', 'empty disk in an existing cluster: joining as a learner (no votes until caught up)', { cluster: withHistory.cluster });
      this.adoptCluster(withHistory.cluster!, true);
      this.decideLearnerEpoch();
      return;
    }
    if (this.hellos.size < this.peers.length) return; // genesis needs every node's word
    const ids = [...this.hellos.values()].map((h) => h.cluster).filter((c): c is string => c !== null);
    if (ids.length > 0) {
      const id = ids.sort()[0]!;
      this.adoptCluster(id, false);
    } else if (this.o.nodes[0] === this.o.id) {
      this.adoptCluster(this.o.newClusterId(), false);
      this.log('info', 'bootstrapped a new cluster: every node answered with an empty disk', { cluster: this.hard.clusterId });
    }
  }

  /**
   * A learner takes the highest epoch among N − majority + 1 other nodes, and never votes in it:
   * it heard from at least one member of any majority it may have voted with before its disk loss.
   */
  private decideLearnerEpoch(): void {
    const replies = [...this.hellos.values()].filter((h) => h.cluster === this.hard.clusterId);
    if (replies.length < this.o.nodes.length - this.majority + 1) return;
    const epoch = Math.max(1, ...replies.map((h) => h.epoch));
    if (!this.persist({ ...this.hard, epoch, votedFor: VOTE_NONE })) return;
    this.log('info', 'learner took the cluster epoch', { epoch });
    this.resetElectionTimer();
  }

  private adoptCluster(clusterId: string, learner: boolean): void {
    if (!this.persist({ ...this.hard, clusterId, learner })) return;
    this.setRole(learner ? 'learner' : 'follower', null);
    this.resetElectionTimer();
  }

  /** An empty disk in a cluster with history joins as a learner (overridden only by defect tests). */
  protected joinsAsLearner(): boolean {
    return true;
  }

  private hasHistory(): boolean {
    return this.hard.epoch > 0 || this.hard.learner || this.o.storage.lastSeq() > 0;
  }

  // ---- election ----

  /** Elections run whenever there is no leader (overridden only by the simulator's defect tests). */
  protected mayCampaign(): boolean {
    return true;
  }

  private startPreVote(): void {
    this.votes = new Set([this.o.id]);
    this.setRole('precandidate', null);
    this.broadcastVote(true, this.hard.epoch + 1);
    this.maybeWinPreVote();
  }

  private maybeWinPreVote(): void {
    if (this.roleNow !== 'precandidate' || this.votes.size < this.majority) return;
    const epoch = this.hard.epoch + 1;
    if (!this.persist({ ...this.hard, epoch, votedFor: this.o.id })) return;
    this.votes = new Set([this.o.id]);
    this.setRole('candidate', null);
    this.resetElectionTimer();
    this.broadcastVote(false, epoch);
    this.maybeWinElection();
  }

  private maybeWinElection(): void {
    if (this.roleNow !== 'candidate' || this.votes.size < this.majority) return;
    this.becomeLeader();
  }

  private broadcastVote(pre: boolean, epoch: number, transfer = false): void {
    for (const peer of this.peers) {
      this.o.send(peer, {
        t: MSG_VOTE, cluster: this.hard.clusterId!, from: this.o.id, epoch, pre,
        lastSeq: this.o.storage.lastSeq(), lastEpoch: this.lastEpoch(), ...(transfer ? { transfer } : {}),
      });
    }
  }

  // ---- leadership handoff (thesis §3.10) ----

  /**
   * A leader about to stop (a graceful shutdown) hands over: it picks the follower that holds the
   * most of its log, waits until that one holds all of it, and tells it to campaign at once
   * (TIMEOUT_NOW); the election that follows is an ordinary one (votes, log rule), so the handoff
   * needs no new safety argument, only skips the wait. The caller stops proposing first.
   * Returns the target, or null if this node does not lead or has no peer.
   */
  transferLeadership(): NodeId | null {
    if (this.roleNow !== 'leader' || this.progress.size === 0) return null;
    let target: NodeId | null = null;
    let best = -1;
    for (const [peer, p] of this.progress) if (p.match > best) [target, best] = [peer, p.match];
    this.transferTarget = target;
    this.maybeSendTimeoutNow();
    return target;
  }

  private maybeSendTimeoutNow(): void {
    const target = this.transferTarget;
    if (target === null || this.roleNow !== 'leader') return;
    if (this.progress.get(target)!.match < this.o.storage.lastSeq()) return; // still catching up: on its next ack
    this.transferTarget = null;
    this.log('info', 'handing leadership over', { to: target });
    this.o.send(target, { t: MSG_TIMEOUT_NOW, cluster: this.hard.clusterId!, from: this.o.id, epoch: this.hard.epoch });
  }

  private onTimeoutNow(from: NodeId, msg: Extract<RaftMessage<E>, { t: typeof MSG_TIMEOUT_NOW }>): void {
    // Only from the leader we follow, in its epoch; a learner or a node with a disk error stays out.
    if (msg.epoch !== this.hard.epoch || from !== this.leaderId || this.roleNow !== 'follower' || this.storageError !== null) return;
    if (this.o.mayLead?.() === false) return;
    const epoch = this.hard.epoch + 1;
    if (!this.persist({ ...this.hard, epoch, votedFor: this.o.id })) return;
    this.votes = new Set([this.o.id]);
    this.setRole('candidate', null);
    this.resetElectionTimer();
    this.broadcastVote(false, epoch, true);
    this.maybeWinElection();
  }

  /** Raft's up-to-date rule (§5.4.1): last epoch first, then length. */
  protected logUpToDate(lastEpoch: number, lastSeq: number): boolean {
    const mine = this.lastEpoch();
    return lastEpoch > mine || (lastEpoch === mine && lastSeq >= this.o.storage.lastSeq());
  }

  /**
   * Two pre-candidates at once with equal logs would both pass PreVote and split the real vote
   * (with one other voter, always). Pre-votes bind nothing, so a pre-candidate may refuse a rival
   * whose log is no better than its own and whose id sorts after its own: the lower id goes on.
   */
  private rivalYields(from: NodeId, lastEpoch: number, lastSeq: number): boolean {
    if (this.roleNow !== 'precandidate') return false;
    const sameLog = lastEpoch === this.lastEpoch() && lastSeq === this.o.storage.lastSeq();
    return sameLog && from > this.o.id;
  }

  /**
   * Heard from a live leader within T/2 (or we are it): ignore vote requests (leader stickiness).
   * A live leader is heard every heartbeat (≤ T/3), so T/2 never refuses while it lives; and it is
   * shorter than any election timeout, so a follower that timed out after the leader died is not
   * refused by a peer whose last heartbeat arrived a few ms later than its own.
   */
  private leaderRecentlyHeard(): boolean {
    if (this.roleNow === 'leader') return true;
    return this.leaderId !== null && this.o.now() - this.leaderHeardMs < this.o.electionTimeoutMs / 2;
  }

  private onVote(from: NodeId, msg: Extract<RaftMessage<E>, { t: typeof MSG_VOTE }>): void {
    const reply = (granted: boolean) =>
      this.o.send(from, { t: MSG_VOTE_REPLY, cluster: this.hard.clusterId!, from: this.o.id, epoch: msg.pre ? msg.epoch : this.hard.epoch, pre: msg.pre, granted });
    if (msg.pre) {
      const granted =
        !this.hard.learner && msg.epoch > this.hard.epoch && !this.leaderRecentlyHeard() && this.logUpToDate(msg.lastEpoch, msg.lastSeq) && !this.rivalYields(from, msg.lastEpoch, msg.lastSeq);
      // A grant echoes the epoch asked about; a refusal carries ours, so a pre-candidate that is
      // behind in epochs catches up (else it would keep asking for an epoch we already hold).
      this.o.send(from, { t: MSG_VOTE_REPLY, cluster: this.hard.clusterId!, from: this.o.id, epoch: granted ? msg.epoch : this.hard.epoch, pre: true, granted });
      return;
    }
    if (msg.epoch > this.hard.epoch) {
      // Stickiness: don't even adopt the epoch — unless the leader itself handed over (TIMEOUT_NOW).
      if (!msg.transfer && this.leaderRecentlyHeard()) return;
      if (!this.becomeFollower(msg.epoch, null)) return;
    }
    if (msg.epoch < this.hard.epoch || this.hard.learner) return reply(false);
    const canVote = this.hard.votedFor === null || this.hard.votedFor === from;
    if (!canVote || !this.logUpToDate(msg.lastEpoch, msg.lastSeq)) return reply(false);
    if (this.hard.votedFor !== from && !this.persist({ ...this.hard, votedFor: from })) return;
    this.resetElectionTimer();
    reply(true);
  }

  private onVoteReply(from: NodeId, msg: Extract<RaftMessage<E>, { t: typeof MSG_VOTE_REPLY }>): void {
    if (msg.pre) {
      if (!msg.granted && msg.epoch > this.hard.epoch) {
        // We were behind in epochs: catch up. Someone is campaigning at that epoch, so give its
        // election a moment to finish (its leader's first APPEND makes us a follower), but not a
        // whole timeout: we are already past ours. Asking at once would depose a fresh leader.
        const wasPre = this.roleNow === 'precandidate';
        if (this.becomeFollower(msg.epoch, null) && wasPre) {
          this.electionDeadline = this.o.now() + this.o.electionTimeoutMs * (0.25 + 0.25 * this.o.random());
        }
        return;
      }
      if (this.roleNow === 'precandidate' && msg.epoch === this.hard.epoch + 1 && msg.granted) {
        this.votes.add(from);
        this.maybeWinPreVote();
      }
      return;
    }
    if (msg.epoch > this.hard.epoch) {
      this.becomeFollower(msg.epoch, null);
      return;
    }
    if (this.roleNow === 'candidate' && msg.epoch === this.hard.epoch && msg.granted) {
      this.votes.add(from);
      this.maybeWinElection();
    }
  }

  private becomeLeader(): void {
    const now = this.o.now();
    const next = this.o.storage.lastSeq() + 1;
    this.progress = new Map(this.peers.map((p) => [p, { next, match: 0, mode: 'probe' as const, behindBase: false, inflight: [], inflightSentMs: [], lastHeardMs: now, lastProgressMs: now, probeSentMs: null }]));
    this.lastQuorumCheckMs = now;
    this.lastHeartbeatMs = now;
    this.leaderId = this.o.id;
    this.roleNow = 'leader';
    for (const peer of this.peers) this.heartbeat(peer, now);
    this.log('info', 'elected leader', { epoch: this.hard.epoch, lastSeq: this.o.storage.lastSeq() });
    // Alone in its cluster, a node's durable log is committed whatever its epochs: no other node
    // can ever overwrite it (the §5.4.2 restriction guards against exactly that).
    if (this.majority === 1 && this.o.storage.lastSeq() > this.commitIndex) this.advanceCommit(this.o.storage.lastSeq());
    // The host appends the epoch's first entry (Raft's no-op) from onRole unless all is committed.
    this.setRole('leader', this.o.id);
  }

  /** Steps down to follower at `epoch` (persisting it if newer). False if the disk refused. */
  private becomeFollower(epoch: number, leader: NodeId | null): boolean {
    if (epoch > this.hard.epoch) {
      if (!this.persist({ ...this.hard, epoch, votedFor: null })) return false;
    }
    const changed = this.roleNow !== (this.hard.learner ? 'learner' : 'follower') || this.leaderId !== leader;
    this.progress.clear();
    this.leaderId = leader;
    if (changed) this.setRole(this.hard.learner ? 'learner' : 'follower', leader);
    this.resetElectionTimer();
    return true;
  }

  // ---- replication, follower side ----

  /**
   * What every message from a leader does first: refuse a stale one (false), else follow it (a
   * higher epoch, a new leader) and reset the election timer.
   */
  private fromLeader(from: NodeId, epoch: number, refuse: () => void): boolean {
    if (epoch < this.hard.epoch) {
      refuse(); // a stale leader learns our epoch
      return false;
    }
    if (this.roleNow === 'leader') {
      assert(epoch > this.hard.epoch, `two leaders in epoch ${epoch}: ${this.o.id} and ${from}`);
    }
    if (epoch > this.hard.epoch || this.leaderId !== from || (this.roleNow !== 'follower' && this.roleNow !== 'learner')) {
      if (!this.becomeFollower(epoch, from)) return false;
      if (this.hard.votedFor === null || this.hard.votedFor === VOTE_NONE) {
        // Record the leader as this epoch's vote: a node never helps elect a second leader in it.
        if (!this.persist({ ...this.hard, votedFor: from })) return false;
      }
    }
    this.leaderHeardMs = this.o.now();
    this.resetElectionTimer();
    return true;
  }

  private onAppend(from: NodeId, msg: Extract<RaftMessage<E>, { t: typeof MSG_APPEND }>): void {
    const { storage } = this.o;
    const reply = (ok: boolean, match: number, hint: number) =>
      this.o.send(from, { t: MSG_APPEND_REPLY, cluster: this.hard.clusterId!, from: this.o.id, epoch: this.hard.epoch, ok, match, hint, lastSeq: storage.lastSeq() });
    if (!this.fromLeader(from, msg.epoch, () => reply(false, 0, storage.lastSeq()))) return;
    // Below our base everything is committed and agrees: answer from the base.
    const base = storage.base().seq;
    if (msg.prevSeq < base) return reply(false, 0, base);
    const last = storage.lastSeq();
    if (msg.prevSeq > last) return reply(false, 0, last);
    if (msg.prevSeq > 0 && storage.epochAt(msg.prevSeq) !== msg.prevEpoch) {
      const conflict = storage.epochAt(msg.prevSeq)!;
      // Retry from before the conflicting epoch, but never below what is committed (it agrees).
      return reply(false, 0, Math.max(this.commitIndex, Math.min(msg.prevSeq - 1, storage.lastSeqOfEpochAtMost(conflict - 1))));
    }
    // Skip what we already have; truncate at the first entry whose epoch differs.
    let i = 0;
    for (; i < msg.entries.length; i++) {
      const e = msg.entries[i]!;
      if (e.seq > storage.lastSeq()) break;
      if (storage.epochAt(e.seq) !== e.epoch) {
        if (e.seq <= this.commitIndex) {
          this.halt(`leader ${from} rewrites committed seq ${e.seq} (commit ${this.commitIndex})`);
          return;
        }
        try {
          storage.truncateAfter(e.seq - 1);
        } catch (err) {
          this.storageFailed(err);
          return;
        }
        this.log('warn', 'dropped a log tail that the leader does not hold', { from: e.seq });
        break;
      }
    }
    const fresh = msg.entries.slice(i);
    if (fresh.length > 0) {
      try {
        storage.append(fresh);
        if (this.storageError !== null) {
          this.log('info', 'storage writable again', { was: this.storageError });
          this.storageError = null;
        }
      } catch (err) {
        this.storageFailed(err);
        return;
      }
    }
    const match = msg.prevSeq + msg.entries.length;
    const commit = Math.min(msg.commit, match);
    if (commit > this.commitIndex) this.advanceCommit(commit);
    // Only the leader's own commit index proves we hold every committed entry (not min(commit, match)).
    if (match >= msg.commit) this.maybeGraduate(msg.epoch, msg.commit);
    reply(true, match, 0);
  }

  /**
   * RESET (docs/snapshots.md, "Refill"): the leader no longer holds the entries after our log's end.
   * Keep our log if it already holds the leader's base with the same epoch; else start it over after
   * the base (committed: only committed entries are ever dropped) and take the state from a snapshot.
   */
  private onReset(from: NodeId, msg: Extract<RaftMessage<E>, { t: typeof MSG_RESET }>): void {
    const { storage } = this.o;
    const reply = (ok: boolean, match: number, hint: number) =>
      this.o.send(from, { t: MSG_APPEND_REPLY, cluster: this.hard.clusterId!, from: this.o.id, epoch: this.hard.epoch, ok, match, hint, lastSeq: storage.lastSeq() });
    if (!this.fromLeader(from, msg.epoch, () => reply(false, 0, storage.lastSeq()))) return;
    assert(msg.base <= msg.commit, `leader ${from} resets to uncommitted base ${msg.base} (commit ${msg.commit})`);
    // Our own base is at or past the leader's: we hold (committed) all it could send up to there.
    if (storage.base().seq >= msg.base) return reply(false, 0, Math.max(this.commitIndex, storage.base().seq));
    if (storage.lastSeq() >= msg.base && storage.epochAt(msg.base) === msg.baseEpoch) return reply(true, msg.base, 0);
    if (this.commitIndex >= msg.base) {
      this.halt(`leader ${from} resets to base ${msg.base} (epoch ${msg.baseEpoch}) that disagrees with our committed log (commit ${this.commitIndex})`);
      return;
    }
    try {
      storage.resetTo({ seq: msg.base, epoch: msg.baseEpoch, stateHash: msg.baseHash });
    } catch (err) {
      this.storageFailed(err);
      return;
    }
    this.log('warn', 'log reset after the leader\'s base: refilling from a snapshot', { base: msg.base, epoch: msg.baseEpoch });
    // Before the commit moves: the state machine must know it cannot apply from its log.
    this.o.onReset?.(msg.base);
    this.advanceCommit(msg.base);
    if (msg.base >= msg.commit) this.maybeGraduate(msg.epoch, msg.commit);
    reply(true, msg.base, 0);
  }

  /** A learner holding a leader's commit index in that leader's epoch holds every committed entry. */
  private maybeGraduate(leaderEpoch: number, commit: number): void {
    if (!this.hard.learner || this.hard.epoch === 0 || commit === 0) return;
    if (this.o.storage.epochAt(commit) !== leaderEpoch) return;
    if (!this.persist({ ...this.hard, learner: false })) return;
    this.log('info', 'learner caught up: voting member again', { commit, epoch: leaderEpoch });
    this.setRole('follower', this.leaderId);
  }

  // ---- replication, leader side ----

  private heartbeat(peer: NodeId, now: number): void {
    const p = this.progress.get(peer)!;
    // Lost APPENDs or replies: a pipeline that has not advanced for two heartbeats restarts from match.
    if (p.mode === 'replicate' && p.inflight.length > 0 && now - p.lastProgressMs > 2 * this.o.heartbeatMs) this.toProbe(p);
    if (p.mode === 'probe' && p.probeSentMs !== null && now - p.probeSentMs > 2 * this.o.heartbeatMs) p.probeSentMs = null;
    // Entries if the window allows, else an empty APPEND at match: it never races the pipeline.
    // Never below our base (we hold no epoch there): at the base, which a follower that lacks it
    // rejects, so it learns it needs a RESET.
    // With nothing in flight the heartbeat checks where we believe the follower is (next − 1): a
    // follower that lacks that entry rejects it and is repaired, even if no write ever comes
    // (at `match` it would always succeed, and a follower that missed the last entries before the
    // cluster went idle would stay behind).
    if (this.sendAppends(peer) === 0) {
      const base = this.o.storage.base().seq;
      const at = p.inflight.length === 0 ? p.next - 1 : p.match;
      if (at >= base) this.sendAppend(peer, at, []);
      else if (!p.behindBase) this.sendAppend(peer, base, []);
    }
  }

  private toProbe(p: Progress): void {
    p.mode = 'probe';
    p.inflight = [];
    p.inflightSentMs = [];
    p.next = p.match + 1;
    p.probeSentMs = null;
  }

  /** Sends what the follower lacks: a window of APPENDs in replicate mode, one in probe mode. */
  private sendAppends(peer: NodeId): number {
    if (this.roleNow !== 'leader') return 0;
    const p = this.progress.get(peer)!;
    const last = this.o.storage.lastSeq();
    const base = this.o.storage.base();
    let sent = 0;
    if (p.next <= base.seq && !p.behindBase) {
      // Not known to lack anything below our base (a new leader, a stalled pipeline): probe at the base.
      if (p.mode === 'replicate') this.toProbe(p);
      p.next = base.seq + 1;
    }
    if (p.next <= base.seq) {
      // It said it lacks what we no longer hold: it starts its log after our base, its state from a snapshot.
      if (p.mode === 'replicate') this.toProbe(p);
      if (p.probeSentMs !== null) return 0;
      this.o.send(peer, {
        t: MSG_RESET, cluster: this.hard.clusterId!, from: this.o.id, epoch: this.hard.epoch,
        base: base.seq, baseEpoch: base.epoch, baseHash: base.stateHash, commit: this.commitIndex,
      });
      p.probeSentMs = this.o.now();
      return 1;
    }
    while (p.next <= last) {
      if (p.mode === 'probe' && p.probeSentMs !== null) break;
      if (p.mode === 'replicate' && p.inflight.length >= this.o.maxInflightAppends) break;
      const to = Math.min(last, p.next + this.o.maxEntriesPerAppend - 1);
      const entries = this.o.storage.entries(p.next, to);
      this.sendAppend(peer, p.next - 1, entries);
      sent += 1;
      if (p.mode === 'probe') {
        p.probeSentMs = this.o.now();
        break;
      }
      p.inflight.push(to);
      p.inflightSentMs.push(this.o.now());
      p.next = to + 1;
    }
    return sent;
  }

  private sendAppend(peer: NodeId, prevSeq: number, entries: E[]): void {
    const prevEpoch = prevSeq === 0 ? 0 : this.o.storage.epochAt(prevSeq)!;
    this.o.send(peer, {
      t: MSG_APPEND, cluster: this.hard.clusterId!, from: this.o.id, epoch: this.hard.epoch,
      prevSeq, prevEpoch, entries, commit: this.commitIndex,
    });
  }

  private onAppendReply(from: NodeId, msg: Extract<RaftMessage<E>, { t: typeof MSG_APPEND_REPLY }>): void {
    if (msg.epoch > this.hard.epoch) {
      this.becomeFollower(msg.epoch, null);
      return;
    }
    if (this.roleNow !== 'leader' || msg.epoch < this.hard.epoch) return;
    const p = this.progress.get(from)!;
    const now = this.o.now();
    p.lastHeardMs = now;
    if (msg.ok) {
      p.behindBase = false;
      if (msg.match > p.match) {
        p.match = msg.match;
        p.lastProgressMs = now;
      }
      while (p.inflight.length > 0 && p.inflight[0]! <= p.match) {
        p.inflight.shift();
        const sentMs = p.inflightSentMs.shift()!;
        this.o.onAppendAcked?.(from, now - sentMs);
      }
      if (p.mode === 'probe') {
        // A probe carrying entries is a round trip too (an empty one is only a heartbeat's).
        if (p.probeSentMs !== null && p.next <= msg.match) this.o.onAppendAcked?.(from, now - p.probeSentMs);
        p.mode = 'replicate';
        p.probeSentMs = null;
        p.next = Math.max(p.next, p.match + 1);
      }
      p.next = Math.max(p.next, p.match + 1);
      this.maybeCommit();
      if (from === this.transferTarget) this.maybeSendTimeoutNow();
    } else {
      if (msg.lastSeq < p.match) {
        // The follower lost entries it had acknowledged (a wiped disk): its old acks no longer count.
        this.log('warn', 'follower lost acknowledged entries (disk loss?)', { from, match: p.match, lastSeq: msg.lastSeq });
        p.match = msg.lastSeq;
      }
      this.toProbe(p);
      p.next = Math.max(p.match + 1, Math.min(msg.hint + 1, msg.lastSeq + 1));
      p.behindBase = p.next <= this.o.storage.base().seq;
      p.lastProgressMs = now;
    }
    this.sendAppends(from);
  }

  /** How many nodes (the leader included) must hold an entry to commit it: a majority. */
  protected commitQuorum(): number {
    return this.majority;
  }

  /** Commit rule (§5.3, §5.4.2): a majority holds it, and it is from this epoch. */
  private maybeCommit(): void {
    if (this.roleNow !== 'leader') return;
    const matches = [this.o.storage.lastSeq(), ...[...this.progress.values()].map((p) => p.match)].sort((a, b) => b - a);
    const n = matches[this.commitQuorum() - 1]!;
    if (n > this.commitIndex && this.o.storage.epochAt(n) === this.hard.epoch) this.advanceCommit(n);
  }

  private advanceCommit(commit: number): void {
    assert(commit > this.commitIndex, 'commit index goes back');
    assert(commit <= this.o.storage.lastSeq(), `commit ${commit} beyond the log (${this.o.storage.lastSeq()})`);
    this.commitIndex = commit;
    this.o.onCommit?.(commit);
  }

  // ---- helpers ----

  private lastEpoch(): number {
    const last = this.o.storage.lastSeq();
    return last === 0 ? 0 : this.o.storage.epochAt(last)!;
  }

  private resetElectionTimer(): void {
    this.timerResetMs = this.o.now();
    // A spread of T/4 separates candidates by far more than a vote round trip (so split votes are
    // rare), while keeping the worst-case failover close to T.
    this.electionDeadline = this.o.now() + this.o.electionTimeoutMs * (1 + ELECTION_SPREAD * this.o.random());
  }

  private setRole(role: RaftRole, leader: NodeId | null): void {
    if (role !== 'leader') this.transferTarget = null;
    this.roleNow = role;
    this.leaderId = leader;
    this.o.onRole?.(role, this.hard.epoch, leader);
  }

  /** Writes the hard state; on a storage error, records it (and a leader steps down). */
  private persist(next: HardState): boolean {
    try {
      this.o.storage.setHardState(next);
    } catch (err) {
      this.storageFailed(err);
      return false;
    }
    this.hard = next;
    return true;
  }

  private storageFailed(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (!(err instanceof StorageError)) throw err;
    if (this.storageError === null) this.log('error', 'storage error: not acknowledging until the disk accepts writes', { err: message });
    this.storageError = message;
    if (this.roleNow === 'leader' || this.roleNow === 'candidate' || this.roleNow === 'precandidate') {
      this.progress.clear();
      this.setRole(this.hard.learner ? 'learner' : 'follower', null);
      this.resetElectionTimer();
    }
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
    this.o.log?.(level, msg, { node: this.o.id, epoch: this.hard.epoch, ...fields });
  }
}

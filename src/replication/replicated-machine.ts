// The state machine driven by Raft (docs/replication.md, "The state machine on each node"): the
// leader applies what it sequences (the result and state hash go into the entry), followers apply
// committed entries only and check each stored result and hash. Used unchanged by the production
// core node and by the deterministic simulator.
// Invariants: on a non-leader, machine.lastSeq <= commit (it holds exactly a committed prefix);
// on a leader, machine.lastSeq === log lastSeq before it sequences (it applies its whole log first, APPLY_CHUNK per turn);
// a leader takes client commands only once its epoch_start entry is committed (`ready`), so every
// entry in its log is committed by then; a mismatch between a stored result/hash and a fresh
// apply halts the node (a determinism bug), and is never confused with a storage error.
import type { DomainConfig, Result, Seq } from '../domain/types.js';
import type { LogEntry } from '../log/command-log.js';
import { HashedMachine } from '../engine/hashed-machine.js';
import { applyChecked } from '../engine/replay.js';
import { LeadershipLostError, type SequencerTarget, type Submission } from '../engine/sequencer.js';
import type { RaftNode, RaftRole } from './raft.js';
import { StorageError, type RaftStorage } from './storage.js';
import { assert } from '../domain/assert.js';

export type Sequenced = Submission;

/** Entries read from storage per step while applying or rebuilding. */
const APPLY_CHUNK = 1024;
const MAX_WAITERS = 1024;


export interface ReplicatedMachineOptions {
  domain: DomainConfig;
  storage: RaftStorage<LogEntry>;
  nodeName: string;
  /** Wall clock for entry timestamps (the state machine itself reads no clock). */
  wallMs: () => number;
  /** The leader's epoch is ready (its epoch_start committed): it may take client commands. */
  onReady?: (epoch: number) => void;
  /** Committed through `commit`; the machine holds exactly that (on followers, and on a leader with nothing in flight). */
  onApplied?: (commit: number) => void;
  /**
   * Runs `fn` on a later turn (setImmediate). With it, a follower applies committed entries at most
   * APPLY_CHUNK per turn, so a burst of commits (pipelined batches of thousands of orders) never
   * stalls its event loop long enough to miss heartbeats or starve the leader's quorum check. Its
   * acks never wait for apply (they follow the durable append). Without it (the deterministic
   * simulator), entries are applied at once.
   */
  defer?: (fn: () => void) => void;
  /** The machine restored from a snapshot at start (its seq is committed); default: empty. */
  initial?: HashedMachine;
  /** Snapshots at deterministic log positions (docs/snapshots.md). Off without it. */
  snapshots?: SnapshotHooks;
}

/**
 * Positions: the first checkpoint entry (one carrying a state hash) at or after each multiple of
 * `every`. A function of the log alone, so every node takes its snapshots at the same seqs.
 */
export interface SnapshotHooks {
  every: number;
  /**
   * A follower's machine is at a position: write it. Applying pauses until the promise settles
   * (a follower's apply is off the commit path: its acks follow the durable append).
   */
  take: (machine: HashedMachine, seq: number, epoch: number) => Promise<void>;
  /** A leader committed a position it passed while sequencing (it fetches the snapshot from a follower). */
  leaderPassed?: (seq: number, epoch: number) => void;
  /** The machine of the newest snapshot at or below `maxSeq`, to rebuild from instead of seq 1. */
  restore?: (maxSeq: number) => HashedMachine | null;
  /**
   * The machine is behind the log's base (the log was reset by the leader, or restarted without a
   * usable snapshot): fetch a snapshot at or after `base` and hand it to installSnapshot().
   */
  needSnapshot?: (base: number) => void;
}

export class ReplicatedMachine implements SequencerTarget {
  machine: HashedMachine;
  private raftNode: RaftNode<LogEntry> | null = null;
  private epochStartSeq = 0;
  private readyEpoch = 0;
  private lastTsMs = 0;
  private wasLeader = false;
  private waiters: Array<{ seq: number; resolve: () => void; reject: (err: unknown) => void }> = [];
  /** Follower: committed entries are applied up to here, a chunk per turn (see `defer`). */
  private applyTarget = 0;
  private applyScheduled = false;
  /** The last checkpoint entry the machine applied (positions are counted from it). */
  private lastCheckpoint: number;
  /** A follower's snapshot is being written: applying waits. */
  private snapshotting = false;
  /** Positions this leader sequenced past, waiting for their commit. */
  private leaderPositions: Array<{ seq: number; epoch: number }> = [];

  constructor(private readonly o: ReplicatedMachineOptions) {
    this.machine = o.initial ?? new HashedMachine(o.domain);
    this.lastCheckpoint = this.machine.lastSeq;
    const last = o.storage.lastSeq();
    if (last > o.storage.base().seq) this.lastTsMs = o.storage.entries(last, last)[0]!.tsMs;
  }

  /** The machine can be brought up to the log (it is not behind the log's base): it may lead. */
  get mayLead(): boolean {
    return this.machine.lastSeq >= this.o.storage.base().seq;
  }

  /**
   * A follower's machine, behind its log's base, is replaced by a snapshot's: committed state at a
   * seq the log holds or at its base. Applying goes on from there.
   */
  installSnapshot(machine: HashedMachine): void {
    const base = this.o.storage.base().seq;
    assert(!this.raft.isLeader, 'installSnapshot on a leader');
    assert(machine.lastSeq >= base && machine.lastSeq <= this.o.storage.lastSeq() && machine.lastSeq <= this.raft.commit, `snapshot at ${machine.lastSeq} outside the log's committed ${base}..${Math.min(this.o.storage.lastSeq(), this.raft.commit)}`);
    if (this.machine.lastSeq >= machine.lastSeq) return;
    this.machine = machine;
    this.lastCheckpoint = machine.lastSeq;
    this.applyTarget = Math.max(this.applyTarget, this.raft.commit);
    this.o.onApplied?.(machine.lastSeq);
    if (!this.o.defer) {
      this.onCommit(this.raft.commit);
      return;
    }
    if (!this.applyScheduled) {
      this.applyScheduled = true;
      this.o.defer(() => this.applyStep());
    }
  }

  /** Raft's onReset: the log now starts after `base`; the state waits for a snapshot. */
  onReset(base: number): void {
    if (this.machine.lastSeq < base) this.o.snapshots?.needSnapshot?.(base);
  }

  /** Notes a checkpoint entry; true if it is a snapshot position. */
  private passed(e: LogEntry): boolean {
    if (e.stateHash === '') return false;
    const every = this.o.snapshots?.every ?? 0;
    const position = every > 0 && Math.floor(e.seq / every) > Math.floor(this.lastCheckpoint / every);
    this.lastCheckpoint = e.seq;
    return position;
  }

  /** Wires the Raft node (created with this machine's onRole/onCommit as its callbacks). */
  attach(raft: RaftNode<LogEntry>): void {
    this.raftNode = raft;
  }

  /** The attached Raft node's current epoch. */
  get epoch(): number {
    return this.raft.epoch;
  }

  private get raft(): RaftNode<LogEntry> {
    return this.raftNode!;
  }

  get applied(): number {
    return this.machine.lastSeq;
  }

  /** Leader whose epoch_start has committed: client commands may be sequenced. */
  get ready(): boolean {
    return this.raftNode !== null && this.raft.isLeader && this.readyEpoch === this.raft.epoch;
  }

  /** Raft's onRole callback. */
  onRole(role: RaftRole, epoch: number): void {
    if (role === 'leader') {
      this.wasLeader = true;
      this.leaderCatchUp(epoch);
      return;
    }
    if (this.wasLeader) {
      this.wasLeader = false;
      this.readyEpoch = 0;
      this.epochStartSeq = 0;
      const lost = new LeadershipLostError(`no longer the leader (now ${role} in epoch ${epoch}) before the write committed: its outcome is unknown, retry with the same clientId`);
      for (const w of this.waiters.splice(0)) w.reject(lost);
      // Positions not committed under this leadership: the next leader fetches its own.
      this.leaderPositions = [];
      // Applied entries beyond the commit index may be truncated by the next leader.
      if (this.machine.lastSeq > this.raft.commit) this.rebuild(this.raft.commit);
    }
  }

  /**
   * A new leader applies the entries of earlier epochs that its log holds (they commit with its
   * first entry), so its machine matches the whole log before it sequences. With `defer`, at most
   * APPLY_CHUNK per turn: a node restarted on a long log (no snapshot) would otherwise block its
   * event loop for seconds right after winning, miss its heartbeats and lose the next election,
   * again and again. Then it commits an epoch_start (or is ready at once if nothing waits).
   */
  private leaderCatchUp(epoch: number): void {
    if (!this.raft.isLeader || this.raft.epoch !== epoch) return;
    const last = this.o.storage.lastSeq();
    const upTo = this.o.defer ? Math.min(last, this.machine.lastSeq + APPLY_CHUNK) : last;
    if (this.applyThrough(upTo) === false) return;
    if (upTo < last) {
      this.o.defer!(() => this.leaderCatchUp(epoch));
      return;
    }
    if (this.raft.commit >= last) {
      // Nothing of earlier epochs waits for a commit (an empty log, or a single node): ready now,
      // and the first client entry carries the epoch.
      this.becomeReady();
      return;
    }
    this.epochStartSeq = last + 1;
    try {
      this.propose([{ clientId: `#epoch-${epoch}`, command: { type: 'epoch_start', epoch, node: this.o.nodeName } }]);
    } catch (err) {
      // The disk refused: Raft has stepped down (and onRole rebuilt the machine); nothing to do.
      if (!(err instanceof StorageError)) throw err;
    }
  }

  /** Raft's onCommit callback. */
  onCommit(commit: number): void {
    if (this.raft.isLeader) {
      if (this.readyEpoch !== this.raft.epoch && commit >= this.epochStartSeq && this.epochStartSeq > 0) this.becomeReady();
      let i = 0;
      while (i < this.waiters.length && this.waiters[i]!.seq <= commit) i += 1;
      for (const w of this.waiters.splice(0, i)) w.resolve();
      while (this.leaderPositions.length > 0 && this.leaderPositions[0]!.seq <= commit) {
        const p = this.leaderPositions.shift()!;
        this.o.snapshots?.leaderPassed?.(p.seq, p.epoch);
      }
      this.o.onApplied?.(commit);
      return;
    }
    this.applyTarget = Math.max(this.applyTarget, commit);
    if (!this.o.defer) {
      // The simulator: apply at once; a snapshot position is captured synchronously on the way.
      if (this.machine.lastSeq < this.o.storage.base().seq) {
        this.o.snapshots?.needSnapshot?.(this.o.storage.base().seq);
        return;
      }
      for (;;) {
        const position = this.applyThrough(commit, this.o.snapshots !== undefined);
        if (position === false) return;
        if (position === null) break;
        void this.o.snapshots!.take(this.machine, position.seq, position.epoch);
      }
      this.o.onApplied?.(commit);
      return;
    }
    if (!this.applyScheduled) this.applyStep();
  }

  /** Applies the next chunk of committed entries; schedules the rest for a later turn. */
  private applyStep(): void {
    this.applyScheduled = false;
    // A node that became leader applied its whole log when it did (onRole).
    if (this.raft.isLeader || this.snapshotting) return;
    const target = Math.min(this.applyTarget, this.raft.commit);
    if (this.machine.lastSeq >= target) return;
    const base = this.o.storage.base().seq;
    if (this.machine.lastSeq < base) {
      // The entries after the machine are gone from the log: only a snapshot brings it forward.
      this.o.snapshots?.needSnapshot?.(base);
      return;
    }
    const upTo = Math.min(target, this.machine.lastSeq + APPLY_CHUNK);
    const position = this.applyThrough(upTo, true);
    if (position === false) return;
    const at = this.machine.lastSeq;
    this.o.onApplied?.(at);
    if (position !== null && this.o.snapshots) {
      // Stopped at a position: write it while applying waits, then go on.
      this.snapshotting = true;
      const machine = this.machine;
      void this.o.snapshots
        .take(machine, position.seq, position.epoch)
        .catch(() => {
          // The hook reports its own failures (status, log); a missed snapshot waits for the next position.
        })
        .finally(() => {
          this.snapshotting = false;
          if (!this.applyScheduled) {
            this.applyScheduled = true;
            this.o.defer!(() => this.applyStep());
          }
        });
      return;
    }
    if (at < target) {
      this.applyScheduled = true;
      this.o.defer!(() => this.applyStep());
    }
  }

  private becomeReady(): void {
    this.readyEpoch = this.raft.epoch;
    this.o.onReady?.(this.readyEpoch);
  }

  /**
   * Resolves once `seq` (sequenced by this leader) is committed; rejects with LeadershipLostError
   * if this node stops leading first. At most MAX_WAITERS at once (the sequencer keeps one batch
   * in flight, so one is the norm).
   */
  committed(seq: number): Promise<void> {
    if (this.raft.isLeader && this.raft.commit >= seq) return Promise.resolve();
    if (!this.raft.isLeader) return Promise.reject(new LeadershipLostError('not the leader: the write\'s outcome is unknown, retry with the same clientId'));
    assert(this.waiters.length < MAX_WAITERS, `more than ${MAX_WAITERS} batches waiting for a commit`);
    assert(this.waiters.length === 0 || this.waiters.at(-1)!.seq < seq, 'commit waiters out of seq order');
    return new Promise((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }

  /**
   * Leader only, once ready (or for its epoch_start): applies the commands in order, appends them
   * durably and ships them. Returns the entries (committed later: see onCommit). Throws
   * StorageError if the disk refused (the node has stepped down and rebuilt its state).
   */
  sequence(items: readonly Sequenced[]): LogEntry[] {
    assert(this.ready, 'sequence() on a node that is not a ready leader');
    return this.propose(items);
  }

  private propose(items: readonly Sequenced[]): LogEntry[] {
    const epoch = this.raft.epoch;
    const entries: LogEntry[] = [];
    for (const [i, item] of items.entries()) {
      const seq = (this.machine.lastSeq + 1) as Seq;
      // Wall clocks step back; the log's timestamps never do.
      const tsMs = Math.max(this.o.wallMs(), this.lastTsMs);
      this.lastTsMs = tsMs;
      // The batch's last entry carries the state hash (a checkpoint followers and replay verify).
      const { result, stateHash } = this.machine.apply({ seq, tsMs, command: item.command }, i === items.length - 1);
      const entry: LogEntry = { epoch, seq, clientId: item.clientId, tsMs, command: item.command, result: result as Result, stateHash };
      entries.push(entry);
      if (this.passed(entry)) this.leaderPositions.push({ seq, epoch });
    }
    this.raft.propose(entries); // on a storage error Raft steps down first, and onRole rebuilds
    return entries;
  }

  /**
   * Applies stored entries up to `seq`, checking each; halts the node on a mismatch (false). With
   * `stopAtPosition`, stops right after a snapshot position and returns it; else null. A leader
   * (onRole) passes positions without stopping: they are noted for its commit.
   */
  private applyThrough(seq: number, stopAtPosition = false): { seq: number; epoch: number } | null | false {
    try {
      while (this.machine.lastSeq < seq) {
        const from = this.machine.lastSeq + 1;
        for (const e of this.o.storage.entries(from, Math.min(seq, from + APPLY_CHUNK - 1))) {
          applyChecked(this.machine, e);
          this.lastTsMs = Math.max(this.lastTsMs, e.tsMs);
          if (this.passed(e)) {
            if (stopAtPosition) return { seq: e.seq, epoch: e.epoch };
            if (this.raft.isLeader) this.leaderPositions.push({ seq: e.seq, epoch: e.epoch });
          }
        }
      }
      return null;
    } catch (err) {
      this.raft.halt(err instanceof Error ? err.message : String(err));
      return false;
    }
  }

  /**
   * Throws away applied state past `seq`: from the newest snapshot at or below it (if any), else
   * by replaying the log from the start, then up to `seq`.
   */
  private rebuild(seq: number): void {
    this.machine = this.o.snapshots?.restore?.(seq) ?? new HashedMachine(this.o.domain);
    this.lastCheckpoint = this.machine.lastSeq;
    this.leaderPositions = [];
    const base = this.o.storage.base().seq;
    if (this.machine.lastSeq < base) {
      // No local snapshot covers the dropped prefix: fetch one (applying waits for it).
      this.o.snapshots?.needSnapshot?.(base);
      return;
    }
    if (this.applyThrough(seq) !== false) this.machine.drainEffects();
  }
}

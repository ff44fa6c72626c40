// The sequencer: the single writer's front door. It queues submissions (bounded: a full queue is
// OverloadedError, answered 429), answers retries of a client id from the log or from the batch in
// flight, hands each batch to the replicated log (apply to the state machine, append durably, ship
// to the followers) and, once the batch is committed (a majority holds it), publishes it and
// resolves the callers. Batches are pipelined: up to maxInFlightBatches are sequenced and shipped
// while earlier ones wait for their majority, so the leader applies the next batch while the
// followers write the previous one. Invariants: batches commit, publish and answer in sequence
// order; each batch is published from what it touched, captured right after it was applied (the
// machine may be batches ahead); nothing is acknowledged or published before it is committed; a
// client id is applied at most once (a retry gets the stored result); every waiter belongs to a
// queued or in-flight command, and a command has at most MAX_WAITERS (its first caller and
// concurrent retries), so waiters are bounded by maxQueue × MAX_WAITERS. If the batch cannot
// be sequenced (a disk error) or this node loses its leadership before the commit, the sequencer
// stops for good: its callers get HaltedError, or LeadershipLostError (outcome unknown, retry).
import { assert } from '../domain/assert.js';
import { canonicalJson } from '../domain/canonical.js';
import type { HashedMachine } from './hashed-machine.js';
import type { Command, Effects, Result, Seq } from '../domain/types.js';
import type { CommandLog, LogEntry } from '../log/command-log.js';

export interface Clock {
  nowMs(): number;
}
export const systemClock: Clock = { nowMs: () => Date.now() };

/** This node stopped leading before the write committed: its outcome is unknown (retry it). */
export class LeadershipLostError extends Error {
  override name = 'LeadershipLostError';
}

/** The replicated log the sequencer writes through (replication/replicated-machine.ts). */
export interface SequencerTarget {
  /** The state machine the batches are applied to (its effects are drained per batch). */
  readonly machine: HashedMachine;
  /** Applies, appends durably and ships a batch; returns its entries. Throws if it cannot. */
  sequence(items: readonly Submission[]): LogEntry[];
  /** Resolves once `seq` is committed; rejects (LeadershipLostError) if it may never be here. */
  committed(seq: number): Promise<void>;
}

export interface Submission {
  clientId: string;
  command: Command;
}

export type Outcome =
  | { kind: 'committed' | 'duplicate'; clientId: string; seq: Seq; tsMs: number; result: Result }
  /** The client id was already used for a different command: nothing applied. */
  | { kind: 'conflict'; clientId: string; seq: Seq | null };

export interface CommittedBatch {
  entries: readonly LogEntry[];
  effects: Effects;
  lastSeq: Seq;
  /** What `capture` returned for this batch right after it was applied (publishing reads it). */
  captured?: unknown;
}

export class OverloadedError extends Error {
  override name = 'OverloadedError';
  constructor(readonly queued: number, readonly maxQueue: number, message?: string) {
    super(message ?? `sequencer queue full (${queued}/${maxQueue})`);
  }
}

/** Callers one queued or in-flight command may have (the first and its concurrent retries). */
export const MAX_WAITERS = 16;

export class HaltedError extends Error {
  override name = 'HaltedError';
}

interface Pending {
  submission: Submission;
  /** observer.now() when it was queued (0 without an observer): its commit latency starts here. */
  queuedAtMs: number;
  /** canonicalJson(submission.command), computed only if a retry of the client id needs it. */
  canonical?: string;
  waiters: Array<{ resolve: (o: Outcome) => void; reject: (err: unknown) => void }>;
}

export interface SequencerOptions {
  /** Where retries are looked up (the whole log is committed once this leader is ready). */
  log: Pick<CommandLog, 'findByClientId'>;
  target: SequencerTarget;
  maxQueue: number;
  maxBatch: number;
  /** Called synchronously after each committed batch, before callers are answered. */
  onCommitted: (batch: CommittedBatch) => void;
  onHalt?: (err: unknown) => void;
  /** Batches sequenced and not yet committed, at most (default 1: no pipelining). */
  maxInFlightBatches?: number;
  /**
   * With a batch already in flight, another starts only once this many commands are queued
   * (default 1). Each batch costs an fsync and an APPEND round on every node, so waiting for a
   * bigger one looked cheaper; measured (bench:writes, sessions, A/B in one window), a minimum of
   * 256 cut the order mix from ~8.1k to ~6.3k acked/s and raised leader CPU per command, so the
   * default does not wait.
   */
  minPipelinedBatch?: number;
  /** Called right after a batch is applied, with its effects; the value rides to onCommitted. */
  capture?: (effects: Effects) => unknown;
  /** While this answers true no new batch starts (e.g. a compaction waiting for the pipeline to drain). */
  hold?: () => boolean;
  /** Timings for metrics (node/metrics.ts); nothing here depends on them. */
  observer?: SequencerObserver;
}

/** Commit timings, reported as they happen (metrics). Called synchronously: keep them cheap. */
export interface SequencerObserver {
  /** A monotonic clock in ms (performance.now in production). */
  now(): number;
  /** One command was acknowledged (committed, its callers answered) `ms` after it was queued. */
  acknowledged(ms: number): void;
}

export class Sequencer {
  private readonly queue: Pending[] = [];
  /** Client ids queued or in the batch being written, so a concurrent retry joins the first. */
  private readonly inFlight = new Map<string, Pending>();
  private scheduled = false;
  /** Batches sequenced and waiting for their commit. */
  private inFlightBatches = 0;
  /** Resolves when every batch sequenced so far has finished (committed and answered, or failed). */
  private ordered: Promise<void> = Promise.resolve();
  private halted: unknown = null;

  constructor(private readonly opts: SequencerOptions) {}

  get queueDepth(): number {
    return this.queue.length;
  }

  /** Batches sequenced and not yet committed. */
  get batchesInFlight(): number {
    return this.inFlightBatches;
  }

  get isHalted(): boolean {
    return this.halted !== null;
  }

  /**
   * Submits commands; resolves (in the given order) once every one of them is durable, or is a
   * duplicate/conflict. Throws OverloadedError before queueing anything if they don't all fit.
   */
  submit(submissions: readonly Submission[]): Promise<Outcome[]> {
    if (this.halted !== null) {
      const why = this.halted instanceof Error ? this.halted.message : String(this.halted);
      return Promise.reject(new HaltedError(`sequencer halted: ${why}`));
    }
    if (this.queue.length + submissions.length > this.opts.maxQueue) {
      return Promise.reject(new OverloadedError(this.queue.length, this.opts.maxQueue));
    }
    for (const s of submissions) {
      const pending = this.inFlight.get(s.clientId);
      if (pending !== undefined && pending.waiters.length >= MAX_WAITERS) {
        // Retries of one command pile up only while it is in flight: refuse them, don't hold them.
        return Promise.reject(new OverloadedError(this.queue.length, this.opts.maxQueue, `client id ${s.clientId} already has ${MAX_WAITERS} callers waiting for it; retry after it commits`));
      }
    }
    return Promise.all(submissions.map((s) => this.submitOne(s)));
  }

  private submitOne(submission: Submission): Promise<Outcome> {
    // In flight first: an entry can be in the log but not yet replicated, and must not be
    // acknowledged (as a duplicate) before it is committed.
    const pending = this.inFlight.get(submission.clientId);
    if (pending !== undefined) {
      if ((pending.canonical ??= canonicalJson(pending.submission.command)) !== canonicalJson(submission.command)) return Promise.resolve({ kind: 'conflict', clientId: submission.clientId, seq: null });
      // Same command retried while the first is still in flight: answer both with the first's entry.
      return new Promise((resolve, reject) =>
        pending.waiters.push({ resolve: (o) => resolve(o.kind === 'committed' ? { ...o, kind: 'duplicate' } : o), reject }),
      );
    }
    const stored = this.opts.log.findByClientId(submission.clientId);
    if (stored !== undefined) {
      if (canonicalJson(stored.command) !== canonicalJson(submission.command)) {
        return Promise.resolve({ kind: 'conflict', clientId: submission.clientId, seq: stored.seq });
      }
      return Promise.resolve({ kind: 'duplicate', clientId: stored.clientId, seq: stored.seq, tsMs: stored.tsMs, result: stored.result });
    }
    return new Promise((resolve, reject) => {
      const p: Pending = { submission, queuedAtMs: this.opts.observer?.now() ?? 0, waiters: [{ resolve, reject }] };
      this.queue.push(p);
      this.inFlight.set(submission.clientId, p);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate lets every request that arrived during the previous fsync join this batch.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const max = this.opts.maxInFlightBatches ?? 1;
    const { target } = this.opts;
    // One batch per event-loop turn: a batch of orders can take tens of ms to apply, and several in
    // one turn would starve the heartbeats (followers would start an election under load).
    const minPipelined = this.inFlightBatches > 0 ? (this.opts.minPipelinedBatch ?? 1) : 1;
    if (this.halted === null && this.queue.length >= minPipelined && this.inFlightBatches < max && !this.opts.hold?.()) {
      const batch = this.queue.splice(0, this.opts.maxBatch);
      let entries: LogEntry[];
      try {
        const before = target.machine.lastSeq;
        entries = target.sequence(batch.map((p) => p.submission));
        assert(entries.length === batch.length && entries[0]!.seq === before + 1, 'the replicated log did not sequence the batch in order');
      } catch (err) {
        this.halt(err, batch);
        return;
      }
      const effects = target.machine.drainEffects();
      const captured = this.opts.capture?.(effects);
      const lastSeq = entries[entries.length - 1]!.seq;
      this.inFlightBatches++;
      const committed = target.committed(lastSeq);
      // In sequence order, whatever order the commit promises settle in.
      this.ordered = this.ordered.then(() => committed).then(
        () => this.finish(batch, entries, { entries, effects, lastSeq, captured }),
        (err: unknown) => {
          this.inFlightBatches--;
          this.halt(err, batch);
        },
      );
      if (this.queue.length > 0) this.schedule();
    }
  }

  private finish(batch: Pending[], entries: LogEntry[], committed: CommittedBatch): void {
    this.inFlightBatches--;
    try {
      this.opts.onCommitted(committed);
    } catch (err) {
      // The batch is committed; a publishing failure must not lose the acks, but nothing after it
      // can be trusted to publish either, so stop taking writes.
      this.halt(err, []);
    }
    const observer = this.opts.observer;
    const nowMs = observer?.now() ?? 0;
    batch.forEach((p, i) => {
      this.inFlight.delete(p.submission.clientId);
      const e = entries[i]!;
      const outcome: Outcome = { kind: 'committed', clientId: e.clientId, seq: e.seq, tsMs: e.tsMs, result: e.result };
      for (const w of p.waiters) w.resolve(outcome);
      observer?.acknowledged(nowMs - p.queuedAtMs);
    });
    if (this.queue.length > 0) this.schedule();
  }

  /** Stops taking writes (this node is no longer the leader); queued callers get LeadershipLostError. */
  stop(reason: string): void {
    if (this.halted === null) this.halt(new LeadershipLostError(reason), []);
  }

  private halt(err: unknown, batch: Pending[]): void {
    // With batches in flight, each one that fails after the first halt lands here too: the first
    // error is the sequencer's, each batch's callers get their own.
    const first = this.halted === null;
    if (first) this.halted = err;
    const failed = [...batch, ...this.queue.splice(0)];
    this.inFlight.clear();
    // The callers never get an ack: their commands may or may not be in the log; a retry with the
    // same client id after restart answers which.
    const reason = err instanceof LeadershipLostError ? err : new HaltedError(`sequencer halted: ${err instanceof Error ? err.message : String(err)}`);
    for (const p of failed) for (const w of p.waiters) w.reject(reason);
    if (first) this.opts.onHalt?.(err);
  }
}

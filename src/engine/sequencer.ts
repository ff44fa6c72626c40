// The sequencer: the single writer. It queues submissions, assigns gap-free seqs, applies each
// command to the state machine, group-commits the batch to the command log (one transaction, one
// fsync), waits until the batch is replicated (the standby's ack, in synchronous mode), and only
// then publishes and resolves the callers. Invariants: only this class assigns seq, and asserts
// seq === last + 1; one batch is in flight at a time, so the state machine is never ahead of the
// batch being published; nothing is acknowledged or published before it is committed; a client id
// is applied at most once (a retry gets the stored result); the queue is bounded (a full queue is
// OverloadedError, answered 429). If the log write fails after the state machine applied the
// batch, memory is ahead of disk: the sequencer halts for good (restart replays the log). If
// replication reports that this node was fenced, it halts too: its unreplicated tail may be
// truncated when it rejoins as a standby.
import { assert } from '../domain/assert.js';
import { canonicalJson } from '../domain/canonical.js';
import type { HashedMachine } from './hashed-machine.js';
import type { Command, Effects, Result, Seq } from '../domain/types.js';
import type { CommandLog, LogEntry } from '../log/command-log.js';

export interface Clock {
  nowMs(): number;
}
export const systemClock: Clock = { nowMs: () => Date.now() };

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
}

export class OverloadedError extends Error {
  override name = 'OverloadedError';
  constructor(readonly queued: number, readonly maxQueue: number) {
    super(`sequencer queue full (${queued}/${maxQueue})`);
  }
}

export class HaltedError extends Error {
  override name = 'HaltedError';
}

interface Pending {
  submission: Submission;
  canonical: string;
  waiters: Array<{ resolve: (o: Outcome) => void; reject: (err: unknown) => void }>;
}

export interface SequencerOptions {
  log: CommandLog;
  machine: HashedMachine;
  /** Epoch stamped on every entry: this primary's epoch. */
  epoch: number;
  /**
   * Resolves once `entries` (already durable locally) may be acknowledged and published: at once
   * for a solo primary, on the standby's ack in synchronous mode. Rejecting halts the sequencer.
   */
  replicate?: (entries: readonly LogEntry[]) => Promise<void>;
  clock?: Clock;
  maxQueue: number;
  maxBatch: number;
  /** Called synchronously after each durable batch, before callers are answered. */
  onCommitted: (batch: CommittedBatch) => void;
  onHalt?: (err: unknown) => void;
}

export class Sequencer {
  private readonly queue: Pending[] = [];
  /** Client ids queued or in the batch being written, so a concurrent retry joins the first. */
  private readonly inFlight = new Map<string, Pending>();
  private scheduled = false;
  private busy = false;
  private halted: unknown = null;
  private lastTsMs = 0;
  private readonly clock: Clock;

  constructor(private readonly opts: SequencerOptions) {
    this.clock = opts.clock ?? systemClock;
    assert(opts.machine.lastSeq === opts.log.lastSeq(), 'state machine and log disagree on lastSeq at start');
    // Continue from the log's last timestamp, so a restart on a clock that is behind never steps back.
    // (Iterated to completion: a half-consumed SQLite iterator would leave its statement busy.)
    const lastSeq = opts.log.lastSeq();
    if (lastSeq > 0) for (const e of opts.log.entriesFrom(lastSeq)) this.lastTsMs = e.tsMs;
  }

  get queueDepth(): number {
    return this.queue.length;
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
    return Promise.all(submissions.map((s) => this.submitOne(s)));
  }

  private submitOne(submission: Submission): Promise<Outcome> {
    const canonical = canonicalJson(submission.command);
    // In flight first: an entry can be in the log but not yet replicated, and must not be
    // acknowledged (as a duplicate) before it is committed.
    const pending = this.inFlight.get(submission.clientId);
    if (pending !== undefined) {
      if (pending.canonical !== canonical) return Promise.resolve({ kind: 'conflict', clientId: submission.clientId, seq: null });
      // Same command retried while the first is still in flight: answer both with the first's entry.
      return new Promise((resolve, reject) =>
        pending.waiters.push({ resolve: (o) => resolve(o.kind === 'committed' ? { ...o, kind: 'duplicate' } : o), reject }),
      );
    }
    const stored = this.opts.log.findByClientId(submission.clientId);
    if (stored !== undefined) {
      if (canonicalJson(stored.command) !== canonical) {
        return Promise.resolve({ kind: 'conflict', clientId: submission.clientId, seq: stored.seq });
      }
      return Promise.resolve({ kind: 'duplicate', clientId: stored.clientId, seq: stored.seq, tsMs: stored.tsMs, result: stored.result });
    }
    return new Promise((resolve, reject) => {
      const p: Pending = { submission, canonical, waiters: [{ resolve, reject }] };
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
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.busy || this.halted !== null || this.queue.length === 0) return;
    this.busy = true;
    const batch = this.queue.splice(0, this.opts.maxBatch);
    const { machine, log } = this.opts;
    const entries: LogEntry[] = [];
    try {
      for (const p of batch) {
        const seq = (machine.lastSeq + 1) as Seq;
        // Wall clocks can step back; the log's timestamps never do.
        const tsMs = Math.max(this.clock.nowMs(), this.lastTsMs);
        this.lastTsMs = tsMs;
        const { result, stateHash } = machine.apply({ seq, tsMs, command: p.submission.command });
        assert(machine.lastSeq === seq, `state machine did not advance to seq ${seq}`);
        entries.push({ epoch: this.opts.epoch, seq, clientId: p.submission.clientId, tsMs, command: p.submission.command, result, stateHash });
      }
      log.appendBatch(entries);
      if (this.opts.replicate) await this.opts.replicate(entries);
    } catch (err) {
      this.busy = false;
      this.halt(err, batch);
      return;
    }
    const effects = machine.drainEffects();
    try {
      this.opts.onCommitted({ entries, effects, lastSeq: machine.lastSeq });
    } catch (err) {
      // The batch is durable; a publishing failure must not lose the acks, but nothing after it
      // can be trusted to publish either, so stop taking writes.
      this.halt(err, []);
    }
    batch.forEach((p, i) => {
      this.inFlight.delete(p.submission.clientId);
      const e = entries[i]!;
      const outcome: Outcome = { kind: 'committed', clientId: e.clientId, seq: e.seq, tsMs: e.tsMs, result: e.result };
      for (const w of p.waiters) w.resolve(outcome);
    });
    this.busy = false;
    if (this.queue.length > 0) this.schedule();
  }

  /** Stops taking writes (this node is no longer primary); queued callers get HaltedError. */
  stop(reason: string): void {
    if (this.halted === null) this.halt(new HaltedError(reason), []);
  }

  private halt(err: unknown, batch: Pending[]): void {
    this.halted = err;
    const failed = [...batch, ...this.queue.splice(0)];
    this.inFlight.clear();
    // The callers never get an ack: their commands may or may not be in the log; a retry with the
    // same client id after restart answers which.
    const reason = new HaltedError(`sequencer halted: ${err instanceof Error ? err.message : String(err)}`);
    for (const p of failed) for (const w of p.waiters) w.reject(reason);
    this.opts.onHalt?.(err);
  }
}

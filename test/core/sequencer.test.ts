// Covers the Sequencer: group commit (gap-free seqs, batching, maxBatch, ack only after the log append), log-failure halting, in-flight idempotency and monotonic timestamps.
import { describe, expect, it } from 'vitest';
import { HaltedError, MAX_WAITERS, OverloadedError, Sequencer, systemClock, type Clock, type CommittedBatch, type Outcome } from '../../src/engine/sequencer.js';
import { openSingleNode } from '../../src/replication/single-node.js';
import type { LogEntry } from '../../src/log/command-log.js';
import { MemoryCommandLog } from '../../src/log/memory-log.js';
import { cmd, makeCore, testConfig, within } from './helpers.js';

/** A MemoryCommandLog that records every append call and can be told to fail. */
class RecordingLog extends MemoryCommandLog {
  readonly batchSizes: number[] = [];
  failWith: Error | null = null;

  override append(batch: readonly LogEntry[]): void {
    if (this.failWith) throw this.failWith;
    this.batchSizes.push(batch.length);
    super.append(batch);
  }
}

function setup(opts: { maxBatch?: number; maxQueue?: number; clock?: Clock; onCommitted?: (b: CommittedBatch) => void } = {}) {
  const log = new RecordingLog();
  // The sequencer writes through a single-node replicated log (what Core does without a cluster).
  const target = openSingleNode({ domain: testConfig(), log, nodeName: 'core', clock: opts.clock ?? systemClock });
  const machine = target.machine.machine;
  const committed: CommittedBatch[] = [];
  const halts: unknown[] = [];
  const sequencer = new Sequencer({
    log,
    target,
    maxBatch: opts.maxBatch ?? 64,
    maxQueue: opts.maxQueue ?? 1000,
    onCommitted: (b) => {
      committed.push(b);
      opts.onCommitted?.(b);
    },
    onHalt: (err) => halts.push(err),
  });
  return { log, machine, sequencer, committed, halts };
}

const committedOutcome = (o: Outcome) => {
  if (o.kind === 'conflict') throw new Error(`unexpected conflict for ${o.clientId}`);
  return o;
};

describe('group commit', () => {
  it('200 concurrent submits get seqs 1..200 in submission order, in few appends, each acked only once durable', async () => {
    const { log, sequencer, committed } = setup({ maxBatch: 64 });
    const ackedBeforeDurable: string[] = [];
    const promises = Array.from({ length: 200 }, (_, i) =>
      sequencer.submit([{ clientId: `c-${i}`, command: cmd.deposit(`acct-${i % 7}`, i + 1) }]).then(([o]) => {
        const out = committedOutcome(o!);
        // At resolution time the entry must already be in the log, with this seq.
        if (log.lastSeq() < out.seq || log.findByClientId(out.clientId)?.seq !== out.seq) ackedBeforeDurable.push(out.clientId);
        return out;
      }),
    );
    const outcomes = await within(Promise.all(promises), 5000, '200 submits');
    expect(ackedBeforeDurable).toEqual([]);
    expect(outcomes.map((o) => o.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(outcomes.every((o) => o.kind === 'committed')).toBe(true);
    expect(log.lastSeq()).toBe(200);
    expect(log.batchSizes.reduce((a, b) => a + b, 0)).toBe(200);
    expect(log.batchSizes.length).toBeLessThanOrEqual(10);
    expect(Math.max(...log.batchSizes)).toBeLessThanOrEqual(64);
    // One onCommitted per append, covering exactly the appended entries.
    expect(committed.map((b) => b.entries.length)).toEqual(log.batchSizes);
    expect(committed.map((b) => b.lastSeq)).toEqual(committed.map((b) => b.entries[b.entries.length - 1]!.seq));
  });

  it('respects maxBatch: no append larger than maxBatch', async () => {
    const { log, sequencer } = setup({ maxBatch: 7 });
    const subs = Array.from({ length: 50 }, (_, i) => ({ clientId: `m-${i}`, command: cmd.deposit('alice', 1) }));
    const outs = await within(sequencer.submit(subs), 5000, 'batch submit');
    expect(outs.map((o) => committedOutcome(o).seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(log.batchSizes.every((n) => n >= 1 && n <= 7)).toBe(true);
    expect(log.batchSizes.length).toBe(Math.ceil(50 / 7));
  });

  it('onCommitted runs after the append and before any caller is answered', async () => {
    const events: string[] = [];
    const { log, sequencer } = setup({
      onCommitted: (b) => {
        events.push(`committed:${b.lastSeq}:log=${log.lastSeq()}`);
      },
    });
    const p = sequencer.submit([{ clientId: 'x', command: cmd.deposit('alice', 5) }]).then(() => events.push('resolved'));
    await within(p, 2000, 'submit');
    expect(events).toEqual(['committed:1:log=1', 'resolved']);
  });

  it('a retry of an in-flight clientId joins the first submission; a different command conflicts', async () => {
    const { log, sequencer } = setup();
    const a = sequencer.submit([{ clientId: 'same', command: cmd.deposit('alice', 5) }]);
    const b = sequencer.submit([{ clientId: 'same', command: cmd.deposit('alice', 5) }]);
    const c = sequencer.submit([{ clientId: 'same', command: cmd.deposit('alice', 6) }]);
    const [[oa], [ob], [oc]] = await within(Promise.all([a, b, c]), 2000, 'submits');
    expect(oa).toMatchObject({ kind: 'committed', seq: 1 });
    expect(ob).toMatchObject({ kind: 'duplicate', seq: 1 });
    expect(oc).toEqual({ kind: 'conflict', clientId: 'same', seq: null });
    expect(log.lastSeq()).toBe(1);
    // After it is durable, the log answers.
    const [od] = await sequencer.submit([{ clientId: 'same', command: cmd.deposit('alice', 5) }]);
    expect(od).toMatchObject({ kind: 'duplicate', seq: 1, result: { status: 'accepted', collateral: 5 } });
    const [oe] = await sequencer.submit([{ clientId: 'same', command: cmd.deposit('alice', 6) }]);
    expect(oe).toEqual({ kind: 'conflict', clientId: 'same', seq: 1 });
  });

  it('retries of one in-flight command are bounded: beyond MAX_WAITERS they get OverloadedError, the rest one answer', async () => {
    const { log, sequencer } = setup();
    const joined = Array.from({ length: MAX_WAITERS }, () => sequencer.submit([{ clientId: 'hot', command: cmd.deposit('alice', 5) }]));
    const refused = await Promise.allSettled(Array.from({ length: 1000 }, () => sequencer.submit([{ clientId: 'hot', command: cmd.deposit('alice', 5) }])));
    expect(refused.every((r) => r.status === 'rejected' && r.reason instanceof OverloadedError)).toBe(true);
    const outcomes = (await within(Promise.all(joined), 2000, 'joined')).map(([o]) => o!);
    expect(outcomes.filter((o) => o.kind === 'committed')).toHaveLength(1);
    expect(outcomes.every((o) => o.kind !== 'conflict' && o.seq === 1)).toBe(true);
    expect(log.lastSeq()).toBe(1);
  });

  it('rejects with OverloadedError before queueing anything when the submission does not fit', async () => {
    const { log, sequencer } = setup({ maxQueue: 5 });
    const first = sequencer.submit(Array.from({ length: 4 }, (_, i) => ({ clientId: `q-${i}`, command: cmd.deposit('a', 1) })));
    // 4 queued (not yet flushed: flush is scheduled), 2 more do not fit.
    await expect(sequencer.submit([{ clientId: 'q-4', command: cmd.deposit('a', 1) }, { clientId: 'q-5', command: cmd.deposit('a', 1) }])).rejects.toBeInstanceOf(OverloadedError);
    expect(sequencer.queueDepth).toBe(4);
    await within(first, 2000, 'first batch');
    expect(log.lastSeq()).toBe(4);
    expect(log.findByClientId('q-4')).toBeUndefined();
  });
});

describe('log failure halts the sequencer', () => {
  it('a throwing appendBatch rejects the batch and everything queued with HaltedError; later submits reject; nothing acked', async () => {
    const { log, sequencer, committed, halts } = setup({ maxBatch: 2 });
    log.failWith = new Error('disk on fire');
    const resolved: string[] = [];
    const track = (id: string) =>
      sequencer.submit([{ clientId: id, command: cmd.deposit('alice', 1) }]).then(
        () => {
          resolved.push(id);
        },
        (err: unknown) => err,
      );
    // Two batches' worth: the first batch fails, the rest is still queued.
    const results = await within(Promise.all(['h1', 'h2', 'h3', 'h4', 'h5'].map(track)), 2000, 'halted submits');
    expect(resolved).toEqual([]);
    for (const r of results) expect(r).toBeInstanceOf(HaltedError);
    expect(String((results[0] as Error).message)).toContain('disk on fire');
    expect(sequencer.isHalted).toBe(true);
    expect(halts).toHaveLength(1);
    expect(committed).toEqual([]);
    expect(log.lastSeq()).toBe(0);
    // Even once the log would work again, a halted sequencer refuses everything.
    log.failWith = null;
    await expect(sequencer.submit([{ clientId: 'later', command: cmd.deposit('alice', 1) }])).rejects.toBeInstanceOf(HaltedError);
    expect(log.lastSeq()).toBe(0);
    expect(sequencer.queueDepth).toBe(0);
  });

  it('an in-flight retry waiting on a failed batch is rejected too', async () => {
    const { log, sequencer } = setup();
    log.failWith = new Error('io');
    const a = sequencer.submit([{ clientId: 'w', command: cmd.deposit('alice', 1) }]);
    const b = sequencer.submit([{ clientId: 'w', command: cmd.deposit('alice', 1) }]);
    await expect(within(a, 2000, 'a')).rejects.toBeInstanceOf(HaltedError);
    await expect(within(b, 2000, 'b')).rejects.toBeInstanceOf(HaltedError);
  });

  it('a Core whose log fails rejects the submit with HaltedError and publishes nothing', async () => {
    const log = new RecordingLog();
    const core = makeCore({ log });
    try {
      await within(core.sequencer.submit([{ clientId: 'ok', command: cmd.deposit('alice', 10) }]), 2000, 'first');
      const hash = core.stateHash;
      const publishedSeq = core.publisher.seq;
      let committedEvents = 0;
      core.on('committed', () => committedEvents++);
      log.failWith = new Error('EIO');
      await expect(within(core.sequencer.submit([{ clientId: 'bad', command: cmd.deposit('alice', 5) }]), 2000, 'bad')).rejects.toBeInstanceOf(HaltedError);
      await expect(core.sequencer.submit([{ clientId: 'after', command: cmd.deposit('alice', 5) }])).rejects.toBeInstanceOf(HaltedError);
      expect(committedEvents).toBe(0);
      expect(core.stateHash).toBe(hash);
      expect(core.publisher.seq).toBe(publishedSeq);
      expect(log.lastSeq()).toBe(1);
    } finally {
      core.close();
    }
  });

  it('a throwing onCommitted still acks the durable batch, then halts', async () => {
    const { log, sequencer, halts } = setup({
      onCommitted: () => {
        throw new Error('publish failed');
      },
    });
    const [o] = await within(sequencer.submit([{ clientId: 'p', command: cmd.deposit('alice', 1) }]), 2000, 'submit');
    expect(o).toMatchObject({ kind: 'committed', seq: 1 });
    expect(log.lastSeq()).toBe(1);
    expect(sequencer.isHalted).toBe(true);
    expect(halts).toHaveLength(1);
    await expect(sequencer.submit([{ clientId: 'q', command: cmd.deposit('alice', 1) }])).rejects.toBeInstanceOf(HaltedError);
  });
});

describe('timestamps', () => {
  it('a clock going backwards never makes tsMs decrease', async () => {
    const readings = [5000, 4000, 6000, 1000, 1000, 7000, 6999, 0];
    let i = 0;
    const clock: Clock = { nowMs: () => readings[Math.min(i++, readings.length - 1)]! };
    const { log, sequencer } = setup({ clock, maxBatch: 3 });
    // Several separate batches, so the guard must hold across batches, not only within one.
    for (let b = 0; b < 3; b++) {
      await within(
        sequencer.submit(Array.from({ length: 3 }, (_, k) => ({ clientId: `t-${b}-${k}`, command: cmd.deposit('alice', 1) }))),
        2000,
        'batch',
      );
    }
    const ts = [...log.entriesFrom(1)].map((e) => e.tsMs);
    expect(ts).toHaveLength(9);
    for (let k = 1; k < ts.length; k++) expect(ts[k]!).toBeGreaterThanOrEqual(ts[k - 1]!);
    expect(ts).toEqual([5000, 5000, 6000, 6000, 6000, 7000, 7000, 7000, 7000]);
  });
});

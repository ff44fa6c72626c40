// Covers the Publisher through a Core: replica Y.Docs fed only by the core docs' update events mirror account/book/trade state exactly, with one update per touched doc per batch, bounded trades and exact completeSeq.
import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import type { Core } from '../../src/publish/core.js';
import type { StateMachine } from '../../src/domain/state-machine.js';
import { HashedMachine } from '../../src/engine/hashed-machine.js';
import { applyChecked } from '../../src/engine/replay.js';
import type { CommittedBatch, Submission } from '../../src/engine/sequencer.js';
import type { Command, TradeView } from '../../src/domain/types.js';
import { MemoryCommandLog } from '../../src/log/memory-log.js';
import {
  ACCOUNTS, BOOK, CHANGED_AT, META, META_DOC, TRADES,
  bookSide, decodeValue,
  accountShardDoc, completeSeq, docNames, marketDoc, shardOf, stampSeq,
} from '../../src/publish/layout.js';
import { mulberry32 } from '../domain/helpers.js';
import { BTC, MARKETS, cmd, commandStream, makeCore, seedFromEnv, testConfig, within } from '../core/helpers.js';
import { openSingleNode } from '../../src/replication/single-node.js';
import { systemClock } from '../../src/engine/sequencer.js';

const SEED = seedFromEnv();
console.log(`publisher.test SIM_SEED=${SEED}`);
const SHARDS = 4;
const TRADES_KEPT = 20;

const cores: Core[] = [];
afterEach(() => {
  for (const c of cores.splice(0)) c.close();
});

/**
 * Replica docs fed only by the core docs' 'update' events. Updates of a doc can be held back
 * (buffered) and released later, as a slow or partitioned connection would.
 */
class Mirror {
  readonly replicas = new Map<string, Y.Doc>();
  /** 'update' events per core doc since the last reset. */
  readonly updates = new Map<string, number>();
  private readonly held = new Map<string, Uint8Array[]>();
  private readonly withheld = new Set<string>();

  constructor(readonly core: Core) {
    for (const [name, doc] of core.publisher.docs) {
      const replica = new Y.Doc();
      Y.applyUpdate(replica, Y.encodeStateAsUpdate(doc));
      this.replicas.set(name, replica);
      this.updates.set(name, 0);
      doc.on('update', (u: Uint8Array) => {
        this.updates.set(name, (this.updates.get(name) ?? 0) + 1);
        if (this.withheld.has(name)) this.held.set(name, [...(this.held.get(name) ?? []), u]);
        else Y.applyUpdate(replica, u);
      });
    }
  }

  replica(name: string): Y.Doc {
    const d = this.replicas.get(name);
    if (!d) throw new Error(`no replica ${name}`);
    return d;
  }

  withhold(name: string): void {
    this.withheld.add(name);
  }

  release(name: string): void {
    this.withheld.delete(name);
    for (const u of this.held.get(name) ?? []) Y.applyUpdate(this.replica(name), u);
    this.held.delete(name);
  }

  resetCounts(): void {
    for (const k of this.updates.keys()) this.updates.set(k, 0);
  }

  completeSeq(name: string): number {
    return completeSeq(name, this.replica(name), this.replica(META_DOC));
  }

  destroy(): void {
    for (const d of this.replicas.values()) d.destroy();
  }
}

/** Asserts the replica docs hold exactly the machine's views. */
/** `m`: the state the mirror must show (default the core's machine, when nothing is in flight). */
function expectMirrors(core: Core, mirror: Mirror, m: StateMachine = core.machine): void {
  const ids = m.accountIds();
  for (let shard = 0; shard < SHARDS; shard++) {
    const accounts = mirror.replica(accountShardDoc(shard)).getMap(ACCOUNTS);
    const expected = ids.filter((id) => shardOf(id, SHARDS) === shard);
    expect([...accounts.keys()].sort()).toEqual(expected);
    for (const id of expected) expect(decodeValue(accounts.get(id))).toEqual(m.account(id));
  }
  for (const symbol of MARKETS) {
    const doc = mirror.replica(marketDoc(symbol));
    const view = m.book(symbol, 50)!;
    expect(bookSide(doc, 'bids')).toEqual(view.bids);
    expect(bookSide(doc, 'asks')).toEqual(view.asks);
    expect(doc.getMap(BOOK).get('mark') ?? undefined).toBe(m.mark(symbol));
  }
  const meta = mirror.replica(META_DOC).getMap(META);
  expect(meta.get('seq')).toBe(core.seq);
  expect(meta.get('stateHash')).toBe(core.stateHash);
  expect(meta.get('accounts')).toBe(ids.length);
  expect(meta.get('generation')).toBe(core.publisher.generation);
}

function docsTouchedBy(batch: CommittedBatch): Set<string> {
  const names = new Set<string>([META_DOC]);
  for (const id of batch.effects.accounts) names.add(accountShardDoc(shardOf(id, SHARDS)));
  for (const s of batch.effects.markets) names.add(marketDoc(s));
  return names;
}

async function submitAll(core: Core, commands: readonly Command[], prefix: string) {
  const subs: Submission[] = commands.map((command, i) => ({ clientId: `${prefix}-${i}`, command }));
  return within(core.sequencer.submit(subs), 5000, 'submit');
}

describe('mirror equivalence', () => {
  it('replicas fed only by update events equal the committed state after every batch (batches pipelined); one update per touched doc, none elsewhere', async () => {
    // A commit that takes a couple of ms (as a majority's acks do), so batches overlap: a single
    // node in memory would commit each batch before the next one starts.
    const log = new MemoryCommandLog();
    const single = openSingleNode({ domain: testConfig(), log, nodeName: 'core', clock: systemClock });
    const slow = new Proxy(single, {
      get(target, prop) {
        if (prop === 'committed') return (seq: number) => target.committed(seq).then(() => new Promise<void>((r) => setTimeout(r, 2)));
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const core = makeCore({ maxBatch: 16, tradesKept: TRADES_KEPT, maxInFlightBatches: 4, log, replicated: slow });
    cores.push(core);
    // The committed state after each batch, rebuilt from the batch's own entries: with batches in
    // flight the core's machine is already ahead of the batch being published.
    const reference = new HashedMachine(core.opts.domain);
    let pipelined = 0;
    const mirror = new Mirror(core);
    const allTrades = new Map<string, TradeView[]>(MARKETS.map((s) => [s, []]));
    const violations: string[] = [];
    let batches = 0;
    core.on('committed', (batch) => {
      batches++;
      const touched = docsTouchedBy(batch);
      for (const [name, n] of mirror.updates) {
        if (n > 1) violations.push(`batch ${batch.lastSeq}: ${name} emitted ${n} updates`);
        if (n > 0 && !touched.has(name)) violations.push(`batch ${batch.lastSeq}: untouched ${name} emitted ${n}`);
      }
      if (mirror.updates.get(META_DOC) !== 1) violations.push(`batch ${batch.lastSeq}: meta emitted ${mirror.updates.get(META_DOC)}`);
      for (const t of batch.effects.trades) allTrades.get(t.market)!.push(t);
      mirror.resetCounts();
      for (const e of batch.entries) applyChecked(reference, e);
      if (core.sequencer.batchesInFlight > 0) pipelined++;
      try {
        expectMirrors(core, mirror, reference.machine);
        for (const name of docNames(core.opts.layout)) {
          if (mirror.completeSeq(name) !== core.seq) violations.push(`batch ${batch.lastSeq}: completeSeq(${name}) = ${mirror.completeSeq(name)}`);
        }
      } catch (err) {
        violations.push(`batch ${batch.lastSeq}: ${String(err)}`);
      }
    });
    const commands = commandStream(mulberry32(SEED), 600);
    for (let i = 0; i < commands.length; i += 50) await submitAll(core, commands.slice(i, i + 50), `m${i}`);
    expect(violations).toEqual([]);
    expect(core.seq).toBe(600);
    expect(batches).toBeGreaterThanOrEqual(600 / 16);
    expect(pipelined).toBeGreaterThan(0); // the case this test is about did happen
    expectMirrors(core, mirror);

    // Trades: bounded by tradesKept, and exactly the newest ones, in order.
    let totalTrades = 0;
    for (const symbol of MARKETS) {
      const kept = mirror.replica(marketDoc(symbol)).getArray<TradeView>(TRADES).toArray();
      const all = allTrades.get(symbol)!;
      totalTrades += all.length;
      expect(kept.length).toBe(Math.min(all.length, TRADES_KEPT));
      expect(kept).toEqual(all.slice(-TRADES_KEPT));
      // The core docs themselves obey the bound too.
      expect(core.publisher.doc(marketDoc(symbol)).getArray(TRADES).length).toBeLessThanOrEqual(TRADES_KEPT);
    }
    expect(totalTrades).toBeGreaterThan(2 * TRADES_KEPT);
    mirror.destroy();
  });

  it('a batch of only rejected commands updates meta and nothing else', async () => {
    const core = makeCore();
    cores.push(core);
    await submitAll(core, [cmd.deposit('alice', 100)], 'a');
    const mirror = new Mirror(core);
    await submitAll(core, [cmd.withdraw('alice', 1000), cmd.withdraw('ghost', 1), cmd.cancel('alice', 99)], 'r');
    expect(Object.fromEntries(mirror.updates)).toEqual(Object.fromEntries(docNames(core.opts.layout).map((n) => [n, n === META_DOC ? 1 : 0])));
    for (const name of docNames(core.opts.layout)) expect(mirror.completeSeq(name)).toBe(4);
    mirror.destroy();
  });

  it('a trade burst larger than tradesKept in one batch keeps only the newest tradesKept', async () => {
    const core = makeCore({ tradesKept: 5 });
    cores.push(core);
    const mirror = new Mirror(core);
    const makers = Array.from({ length: 12 }, (_, i) => cmd.order('maker', MARKETS[0], 'sell', 1000 + i, 1));
    await submitAll(core, [cmd.deposit('maker', 10_000_000), cmd.deposit('taker', 10_000_000), ...makers], 'setup');
    await submitAll(core, [cmd.order('taker', MARKETS[0], 'buy', 2000, 12, 'IOC')], 'sweep');
    const kept = mirror.replica(marketDoc(MARKETS[0])).getArray<TradeView>(TRADES).toArray();
    expect(kept.map((t) => t.price)).toEqual([1007, 1008, 1009, 1010, 1011]);
    expect(kept.every((t) => t.seq === 15 && t.takerOrderId === 15)).toBe(true);
    expect(mirror.replica(marketDoc(MARKETS[1])).getArray(TRADES).length).toBe(0);
    expectMirrors(core, mirror);
    mirror.destroy();
  });

  it('a core restarted from its log publishes the whole state into a new generation', async () => {
    const log = new MemoryCommandLog();
    const first = makeCore({ log });
    cores.push(first);
    await submitAll(first, commandStream(mulberry32(SEED ^ 7), 120), 'g');
    const second = makeCore({ log });
    cores.push(second);
    expect(second.publisher.generation).not.toBe(first.publisher.generation);
    const mirror = new Mirror(second);
    expectMirrors(second, mirror);
    for (const name of docNames(second.opts.layout)) {
      expect(mirror.completeSeq(name)).toBe(120);
      expect(second.publisher.doc(name).getMap('stamp').get('generation')).toBe(second.publisher.generation);
    }
    mirror.destroy();
  });
});

describe('completeSeq with docs arriving separately', () => {
  it('a shard doc whose updates are withheld stays at its old stamp while untouched docs report the meta seq', async () => {
    const core = makeCore();
    cores.push(core);
    const mirror = new Mirror(core);
    await submitAll(core, [cmd.deposit('alice', 100), cmd.deposit('bob', 100), cmd.deposit('carol', 100), cmd.deposit('dave', 100)], 'init');
    expect(core.seq).toBe(4);
    for (const name of docNames(core.opts.layout)) expect(mirror.completeSeq(name)).toBe(4);

    const target = accountShardDoc(shardOf('alice', SHARDS));
    mirror.withhold(target);
    await submitAll(core, [cmd.deposit('alice', 5)], 'w1');
    await submitAll(core, [cmd.deposit('alice', 6)], 'w2');
    expect(core.seq).toBe(6);
    const meta = mirror.replica(META_DOC);
    expect(stampSeq(meta)).toBe(6);
    expect(meta.getMap(CHANGED_AT).get(target)).toBe(6);
    // The withheld shard: complete only up to its own old stamp, and it still shows the old value.
    expect(mirror.completeSeq(target)).toBe(4);
    expect(mirror.completeSeq(target)).toBeLessThan(core.seq);
    expect(decodeValue<{ collateral: number }>(mirror.replica(target).getMap(ACCOUNTS).get('alice'))!.collateral).toBe(100);
    // Every other doc was not changed since its stamp, so it is complete up to meta's seq.
    for (const name of docNames(core.opts.layout)) {
      if (name !== target) expect(mirror.completeSeq(name)).toBe(6);
    }
    // Once the held updates arrive, the shard catches up exactly.
    mirror.release(target);
    expect(mirror.completeSeq(target)).toBe(6);
    expectMirrors(core, mirror);
    mirror.destroy();
  });

  it('a shard doc that is ahead of a withheld meta reports its own stamp, not more', async () => {
    const core = makeCore();
    cores.push(core);
    const mirror = new Mirror(core);
    await submitAll(core, [cmd.deposit('alice', 100)], 'a');
    mirror.withhold(META_DOC);
    await submitAll(core, [cmd.deposit('alice', 1)], 'b');
    const target = accountShardDoc(shardOf('alice', SHARDS));
    expect(stampSeq(mirror.replica(target))).toBe(2);
    expect(mirror.completeSeq(META_DOC)).toBe(1);
    expect(mirror.completeSeq(target)).toBe(2);
    // Untouched docs can only vouch for what meta vouches for.
    for (const name of docNames(core.opts.layout)) if (name !== target && name !== META_DOC) expect(mirror.completeSeq(name)).toBe(1);
    mirror.release(META_DOC);
    for (const name of docNames(core.opts.layout)) expect(mirror.completeSeq(name)).toBe(2);
    mirror.destroy();
  });
});

describe('book updates are diffs', () => {
  it('a commit that changes one level sends that level, not the book', async () => {
    const core = makeCore({ tradesKept: 5 });
    try {
      await core.sequencer.submit([{ clientId: 'd', command: cmd.deposit('alice', 1_000_000_000) }]);
      await core.sequencer.submit(Array.from({ length: 40 }, (_, i) => ({ clientId: `b${i}`, command: cmd.order('alice', BTC, 'buy', 1000 + i, 1) })));
      const doc = core.publisher.doc(marketDoc(BTC));
      const sizes: number[] = [];
      doc.on('update', (u: Uint8Array) => sizes.push(u.byteLength));
      await core.sequencer.submit([{ clientId: 'one', command: cmd.order('alice', BTC, 'buy', 1020, 2) }]);
      expect(bookSide(doc, 'bids')).toHaveLength(40);
      expect(bookSide(doc, 'bids').find((l) => l.price === 1020)).toEqual({ price: 1020, qty: 3, orders: 2 });
      // One level (plus the stamp) changed: well under what 40 levels would take (~600 bytes).
      expect(sizes).toHaveLength(1);
      expect(sizes[0]).toBeLessThan(150);
    } finally {
      core.close();
    }
  });
});

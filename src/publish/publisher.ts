// Publishes committed state into Yjs docs: one Yjs transaction per doc per commit batch, touching
// only the docs whose content changed, plus the meta doc (seq, state hash, changedAt). Values are
// plain JSON objects overwritten whole (no nested Y types), which keeps tombstones to one small
// item per overwrite. Invariants: called only with durable batches, in seq order; a doc's stamp
// is written in the same transaction as its content; docs belong to one generation, a fresh id per
// publisher instance, so readers never merge two independently built histories.
import * as Y from 'yjs';
import { randomUUID } from 'node:crypto';
import { assert } from '../domain/assert.js';
import type { StateMachine } from '../domain/state-machine.js';
import { INSURANCE_ACCOUNT, type AccountView, type BookLevel, type Effects, type LiquidationView, type TradeView } from '../domain/types.js';
import {
  ACCOUNTS, ASKS, BIDS, BOOK, CHANGED_AT, LIQUIDATIONS, META, META_DOC, STAMP, TRADES, encodeValue,
  accountShardDoc, docNames, marketDoc, shardOf, type Layout,
} from './layout.js';

export interface PublisherOptions {
  machine: StateMachine;
  layout: Layout;
  bookDepth: number;
  tradesKept: number;
  /** Origin passed to Y.transact, so listeners can tell publisher writes apart. */
  origin?: unknown;
}

/**
 * What the publisher reads of the state: the machine itself (when it is exactly at the published
 * seq), or a batch's capture taken right after the batch was applied (captureView) — with several
 * batches in flight the machine is already ahead of the batch being published.
 */
export type StateView = Pick<StateMachine, 'account' | 'book' | 'mark' | 'accountCount'>;

/** The part of the state a batch's publishing reads, copied right after the batch was applied. */
export function captureView(machine: StateMachine, effects: Effects, bookDepth: number, accountView: (id: string) => AccountView | undefined = (id) => machine.account(id)): StateView {
  const accounts = new Map<string, AccountView | undefined>();
  for (const id of effects.accounts) accounts.set(id, accountView(id));
  accounts.set(INSURANCE_ACCOUNT, accountView(INSURANCE_ACCOUNT));
  const books = new Map<string, ReturnType<StateMachine['book']>>();
  const marks = new Map<string, number | undefined>();
  for (const m of effects.markets) {
    books.set(m, machine.book(m, bookDepth));
    marks.set(m, machine.mark(m));
  }
  const count = machine.accountCount();
  return {
    account: (id) => {
      assert(accounts.has(id), `captured view has no account ${id}`);
      return accounts.get(id);
    },
    book: (m, depth) => {
      assert(books.has(m) && depth === bookDepth, `captured view has no book ${m} at depth ${depth}`);
      return books.get(m);
    },
    mark: (m) => {
      assert(marks.has(m), `captured view has no mark for ${m}`);
      return marks.get(m);
    },
    accountCount: () => count,
  };
}

/** A book of 50 levels a side and a few hundred kept trades encode to roughly this many bytes. */
const LIVE_BYTES_PER_DOC = 4096;

export const PUBLISHER_ORIGIN = Symbol('publisher');

export class Publisher {
  readonly generation: string = randomUUID();
  readonly docs = new Map<string, Y.Doc>();
  private publishedSeq = 0;
  /**
   * Values overwritten or deleted in this generation. Each leaves a tombstone item in its doc for
   * good (~11 v1 bytes: gc drops the content, not the item), so the Core compacts into a new
   * generation when this outgrows the live data.
   */
  tombstones = 0;
  /** UTF-16 length of every published account view: the bulk of the live data (see liveBytes). */
  private accountBytes = 0;
  private readonly origin: unknown;

  constructor(private readonly opts: PublisherOptions) {
    this.origin = opts.origin ?? PUBLISHER_ORIGIN;
    for (const name of docNames(opts.layout)) {
      // gc on: overwritten map values collapse to small GC structs instead of keeping content.
      this.docs.set(name, new Y.Doc({ gc: true }));
    }
  }

  get seq(): number {
    return this.publishedSeq;
  }

  /**
   * An estimate of the live (rebuilt) state's size: the account views, plus a fixed allowance per
   * doc for books, stamps and kept trades. Only compared against tombstone bytes (Core compaction).
   */
  get liveBytes(): number {
    return this.accountBytes + LIVE_BYTES_PER_DOC * this.docs.size;
  }

  doc(name: string): Y.Doc {
    const d = this.docs.get(name);
    assert(d !== undefined, `unknown doc ${name}`);
    return d;
  }

  /** Writes the machine's whole current state (start of a generation). */
  publishAll(stateHash: string, tsMs: number, epoch: number): void {
    const m = this.opts.machine;
    const effects: Effects = { accounts: new Set(m.accountIds()), markets: new Set(m.marketSymbols()), trades: [], liquidations: [] };
    this.write(m.lastSeq, effects, stateHash, tsMs, epoch, true);
  }

  /**
   * Part of a generation built over many turns (Core's compaction): writes the current views of
   * `ids` into their shard docs, unstamped. Until finishBuild the docs are not served, and every
   * committed batch is also published here, so a view written ahead of a commit is overwritten by
   * that batch's own capture once it commits.
   */
  seedAccounts(ids: readonly string[], view: (id: string) => AccountView | undefined): void {
    const byDoc = new Map<string, string[]>();
    for (const id of ids) {
      const name = accountShardDoc(shardOf(id, this.opts.layout.accountShards));
      const list = byDoc.get(name);
      if (list) list.push(id);
      else byDoc.set(name, [id]);
    }
    for (const [name, list] of byDoc) {
      const map = this.doc(name).getMap<string>(ACCOUNTS);
      this.doc(name).transact(() => {
        for (const id of list) {
          const v = view(id);
          assert(v !== undefined, `seeded account ${id} does not exist`);
          const old = map.get(id);
          if (old !== undefined) this.tombstones++;
          const json = encodeValue(v);
          this.accountBytes += json.length - (old?.length ?? 0);
          map.set(id, json);
        }
      }, this.origin);
    }
  }

  /**
   * Ends a generation built with seedAccounts: books, marks, meta and every doc's stamp at the
   * machine's seq, which must be exactly the committed state (nothing in flight).
   */
  finishBuild(stateHash: string, tsMs: number, epoch: number): void {
    const m = this.opts.machine;
    this.write(m.lastSeq, { accounts: new Set(), markets: new Set(m.marketSymbols()), trades: [], liquidations: [] }, stateHash, tsMs, epoch, true);
  }

  /** Starts this generation with another's kept trades, so compaction keeps the trade history. */
  copyTrades(from: Publisher): void {
    for (const symbol of this.opts.layout.markets) {
      const trades = from.doc(marketDoc(symbol)).getArray<TradeView>(TRADES).toArray();
      if (trades.length > 0) this.doc(marketDoc(symbol)).transact(() => this.doc(marketDoc(symbol)).getArray<TradeView>(TRADES).push(trades), this.origin);
      const liquidations = from.doc(marketDoc(symbol)).getArray<LiquidationView>(LIQUIDATIONS).toArray();
      if (liquidations.length > 0) this.doc(marketDoc(symbol)).transact(() => this.doc(marketDoc(symbol)).getArray<LiquidationView>(LIQUIDATIONS).push(liquidations), this.origin);
    }
  }

  /** Mirrors one durable commit batch, reading `view` (the batch's capture; default the machine). */
  publishBatch(lastSeq: number, effects: Effects, stateHash: string, tsMs: number, epoch: number, view?: StateView): void {
    assert(lastSeq > this.publishedSeq, `publish out of order: ${lastSeq} after ${this.publishedSeq}`);
    this.write(lastSeq, effects, stateHash, tsMs, epoch, false, view);
  }

  private write(seq: number, effects: Effects, stateHash: string, tsMs: number, epoch: number, all: boolean, view?: StateView): void {
    const { layout } = this.opts;
    const machine: StateView = view ?? this.opts.machine;
    const changed = new Map<string, Array<() => void>>();
    const at = (name: string, fn: () => void) => {
      const list = changed.get(name);
      if (list) list.push(fn);
      else changed.set(name, [fn]);
    };
    for (const id of effects.accounts) {
      const view = machine.account(id);
      assert(view !== undefined, `touched account ${id} does not exist`);
      const name = accountShardDoc(shardOf(id, layout.accountShards));
      at(name, () => {
        const map = this.doc(name).getMap<string>(ACCOUNTS);
        const old = map.get(id);
        if (old !== undefined) this.tombstones++;
        const json = encodeValue(view);
        this.accountBytes += json.length - (old?.length ?? 0);
        map.set(id, json);
      });
    }
    const tradesBy = groupBy(effects.trades);
    const liquidationsBy = groupBy(effects.liquidations);
    for (const symbol of effects.markets) {
      const name = marketDoc(symbol);
      at(name, () => {
        const book = machine.book(symbol, this.opts.bookDepth);
        assert(book !== undefined, `touched market ${symbol} does not exist`);
        const d = this.doc(name);
        const map = d.getMap(BOOK);
        this.writeSide(d.getMap<[number, number]>(BIDS), book.bids);
        this.writeSide(d.getMap<[number, number]>(ASKS), book.asks);
        const mark = machine.mark(symbol) ?? null;
        if (map.get('mark') !== mark) {
          if (map.has('mark')) this.tombstones++;
          map.set('mark', mark);
        }
        this.pushBounded(d.getArray<TradeView>(TRADES), tradesBy.get(symbol));
        this.pushBounded(d.getArray<LiquidationView>(LIQUIDATIONS), liquidationsBy.get(symbol));
      });
    }
    if (all) for (const name of this.docs.keys()) if (!changed.has(name)) at(name, () => {});
    const stamp = (d: Y.Doc) => {
      const s = d.getMap(STAMP);
      if (s.has('seq')) this.tombstones++;
      s.set('seq', seq);
      if (s.get('generation') !== this.generation) s.set('generation', this.generation);
    };
    for (const [name, fns] of changed) {
      if (name === META_DOC) continue;
      const d = this.doc(name);
      d.transact(() => {
        for (const fn of fns) fn();
        stamp(d);
      }, this.origin);
    }
    // changedAt tells a reader which docs must have reached which seq (see layout.completeSeq):
    // docs travel over separate connections, so arrival order between them is not guaranteed.
    const meta = this.doc(META_DOC);
    meta.transact(() => {
      const changedAt = meta.getMap(CHANGED_AT);
      for (const name of changed.keys()) if (name !== META_DOC) changedAt.set(name, seq);
      const m = meta.getMap(META);
      if (m.has('seq')) this.tombstones += 5 + changed.size; // seq, stateHash, tsMs, generation, accounts, changedAt
      m.set('seq', seq);
      m.set('stateHash', stateHash);
      m.set('tsMs', tsMs);
      m.set('generation', this.generation);
      if (m.get('epoch') !== epoch) m.set('epoch', epoch);
      m.set('accounts', machine.accountCount());
      // The insurance fund, public: its collateral (fees in, deficits out) and positions.
      const fund = machine.account(INSURANCE_ACCOUNT);
      if (fund !== undefined && (all || effects.accounts.has(INSURANCE_ACCOUNT))) {
        if (m.has('insurance')) this.tombstones++;
        m.set('insurance', { collateral: fund.collateral, positions: fund.positions.map((p) => ({ market: p.market, qty: p.qty, costBasis: p.costBasis })) });
      }
      stamp(meta);
    }, this.origin);
    this.publishedSeq = seq;
  }

  /** Brings a side's price → [qty, orders] map to `levels`: only changed levels are written. */
  private writeSide(side: Y.Map<[number, number]>, levels: readonly BookLevel[]): void {
    const keep = new Set<string>();
    for (const l of levels) {
      const key = String(l.price);
      keep.add(key);
      const cur = side.get(key);
      if (cur !== undefined && cur[0] === l.qty && cur[1] === l.orders) continue;
      if (cur !== undefined) this.tombstones++;
      side.set(key, [l.qty, l.orders]);
    }
    for (const key of [...side.keys()]) {
      if (keep.has(key)) continue;
      side.delete(key);
      this.tombstones++;
    }
  }

  /** Appends to a kept-last-N list (trades, liquidations), dropping the oldest beyond tradesKept. */
  private pushBounded<T>(arr: Y.Array<T>, items: T[] | undefined): void {
    if (!items || this.opts.tradesKept === 0) return;
    arr.push(items.slice(-this.opts.tradesKept));
    const excess = arr.length - this.opts.tradesKept;
    if (excess > 0) {
      arr.delete(0, excess);
      this.tombstones++;
    }
  }

  destroy(): void {
    for (const d of this.docs.values()) d.destroy();
  }
}

function groupBy<T extends { market: string }>(items: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const t of items) {
    const list = out.get(t.market);
    if (list) list.push(t);
    else out.set(t.market, [t]);
  }
  return out;
}

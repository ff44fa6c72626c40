// The exchange's deterministic state machine: accounts, positions, order books, matching.
// Invariants:
// - Single writer: apply() asserts env.seq === lastSeq + 1 (first seq is 1); one command per call.
// - Pure: no I/O, no clock (time comes from Envelope.tsMs), no randomness, no iteration over
//   anything whose order is not defined by the commands themselves — so replaying the same log
//   yields the same state, results and snapshot on every machine.
// - Business problems are returned as reject codes and change NOTHING except lastSeq. All reject
//   checks run before the first mutation, so no rollback is needed.
// - Integers only; every value that can grow is asserted to be a safe integer.
// - Bounded: orders rest only up to accounts × maxOpenOrdersPerAccount; accounts ≤ maxAccounts;
//   positions ≤ accounts × markets.
// - If apply() ever throws (a broken invariant), the machine may be half-updated, so it refuses
//   all further use: the caller must rebuild from the log.
// Position and margin arithmetic lives in positions.ts, the order book in book.ts. This file stays
// one unit (~400 lines) on purpose: the command handlers share the machine's private state, and the
// "every reject check before the first mutation" invariant is checked by reading them side by side.

import { assert } from './assert.js';
import { OrderBook, ordersOf, type BookSide, type RestingOrder } from './book.js';
import {
  ceilDiv, fillPosition, floorDiv, isReducing, marginRequired as initialMargin, safe,
  type AccountState,
} from './positions.js';
import type {
  AccountId,
  AccountView,
  Amount,
  BookLevel,
  BookView,
  Command,
  DomainConfig,
  DomainLimits,
  Effects,
  Envelope,
  Fill,
  OrderId,
  OrderView,
  PositionView,
  QtyLots,
  RejectCode,
  Result,
  Seq,
  Side,
  TradeView,
} from './types.js';

export { ceilDiv, floorDiv };

type PlaceOrder = Extract<Command, { type: 'place_order' }>;

function reject(code: RejectCode, detail?: string): Result {
  return detail === undefined ? { status: 'rejected', code } : { status: 'rejected', code, detail };
}

function inRange(n: number, min: number, max: number): boolean {
  return Number.isSafeInteger(n) && n >= min && n <= max;
}

function emptyEffects(): Effects {
  return { accounts: new Set(), markets: new Set(), trades: [] };
}

export class StateMachine {
  private readonly leverage: number;
  private readonly limits: DomainLimits;
  /** Config order; also the order marketSymbols() reports. */
  private readonly symbols: string[];
  private seqLast = 0;
  private broken = false;
  private readonly accounts = new Map<AccountId, AccountState>();
  private readonly books = new Map<string, OrderBook>();
  /** Every resting order, across markets. */
  private readonly orders = new Map<OrderId, RestingOrder>();
  private pending: Effects = emptyEffects();

  constructor(config: DomainConfig) {
    assert(Number.isSafeInteger(config.leverage) && config.leverage >= 1, 'config: leverage must be an integer >= 1');
    const l = config.limits;
    for (const [name, v] of Object.entries(l)) {
      assert(Number.isSafeInteger(v) && v >= 1, `config: limits.${name} must be an integer >= 1`);
    }
    // price*qty must stay exact; everything else (margin, book totals) is asserted as it grows.
    safe(l.maxPriceTicks * l.maxQtyLots, 'config: maxPriceTicks * maxQtyLots');
    assert(config.markets.length > 0, 'config: at least one market');
    this.leverage = config.leverage;
    this.limits = { ...l };
    this.symbols = [];
    for (const m of config.markets) {
      assert(typeof m.symbol === 'string' && m.symbol.length > 0, 'config: market symbol must be non-empty');
      assert(!this.books.has(m.symbol), `config: duplicate market ${m.symbol}`);
      this.books.set(m.symbol, new OrderBook(m.symbol));
      this.symbols.push(m.symbol);
    }
  }

  get lastSeq(): Seq {
    return this.seqLast as Seq;
  }

  apply(env: Envelope): Result {
    assert(!this.broken, 'state machine is broken by an earlier assertion; rebuild it from the log');
    assert(
      Number.isSafeInteger(env.seq) && env.seq === this.seqLast + 1,
      `non-consecutive seq: expected ${this.seqLast + 1}, got ${env.seq}`,
    );
    let result: Result;
    try {
      result = this.dispatch(env);
    } catch (err) {
      this.broken = true;
      throw err;
    }
    this.seqLast = env.seq;
    return result;
  }

  /** What changed since the last drain; the publisher calls this once per commit batch. */
  drainEffects(): Effects {
    const out = this.pending;
    this.pending = emptyEffects();
    return out;
  }

  account(id: AccountId): AccountView | undefined {
    const a = this.accounts.get(id);
    if (a === undefined) return undefined;
    const marginRequired = initialMargin(a, this.leverage);
    const positions: PositionView[] = [...a.positions.values()]
      .sort((x, y) => compareStr(x.market, y.market))
      .map((p) => ({
        market: p.market,
        qty: p.qty,
        costBasis: p.costBasis,
        avgEntryPrice: p.qty === 0 ? 0 : floorDiv(p.costBasis, Math.abs(p.qty)),
        realizedPnl: p.realizedPnl,
      }));
    const openOrders: OrderView[] = [...a.orders.values()].sort((x, y) => x.orderId - y.orderId).map(orderView);
    return {
      id: a.id,
      collateral: a.collateral,
      marginRequired,
      available: safe(a.collateral - marginRequired, 'available'),
      positions,
      openOrders,
    };
  }

  book(market: string, depthMax: number): BookView | undefined {
    const b = this.books.get(market);
    if (b === undefined) return undefined;
    const levels = (side: BookSide): BookLevel[] => {
      const out: BookLevel[] = [];
      for (const l of side.bestFirst(depthMax)) out.push({ price: l.price, qty: l.qty, orders: l.count });
      return out;
    };
    return { market, bids: levels(b.bids), asks: levels(b.asks) };
  }

  marketSymbols(): string[] {
    return [...this.symbols];
  }

  accountIds(): string[] {
    return [...this.accounts.keys()].sort(compareStr);
  }

  accountCount(): number {
    return this.accounts.size;
  }

  /**
   * Complete, canonical description of the state (for canonicalJson + a hash). Everything is
   * sorted by a key defined by the data (account id, market symbol, price priority, FIFO), never
   * by Map insertion order alone, so two machines with equal state give equal snapshots.
   */
  snapshot(): unknown {
    const accounts = this.accountIds().map((id) => {
      const a = this.accounts.get(id);
      assert(a !== undefined, 'snapshot: account vanished');
      return {
        id,
        collateral: a.collateral,
        positions: [...a.positions.values()]
          .sort((x, y) => compareStr(x.market, y.market))
          .map((p) => ({ market: p.market, qty: p.qty, costBasis: p.costBasis, realizedPnl: p.realizedPnl })),
        openOrderIds: [...a.orders.keys()].sort((x, y) => x - y),
      };
    });
    const side = (s: BookSide) =>
      [...s.bestFirst()].map((l) => ({
        price: l.price,
        qty: l.qty,
        orders: [...ordersOf(l)].map((o) => ({
          orderId: o.orderId,
          account: o.account,
          side: o.side,
          price: o.price,
          qty: o.qty,
          remaining: o.remaining,
          tif: o.tif,
          seq: o.seq,
        })),
      }));
    const books = [...this.symbols].sort(compareStr).map((m) => {
      const b = this.books.get(m);
      assert(b !== undefined, 'snapshot: book vanished');
      return { market: m, bids: side(b.bids), asks: side(b.asks) };
    });
    return {
      lastSeq: this.seqLast,
      // Order ids are command seqs, so the next id is implied — stated here so readers need not know.
      nextOrderId: this.seqLast + 1,
      accounts,
      books,
    };
  }

  // ---------------------------------------------------------------- commands

  private dispatch(env: Envelope): Result {
    const c = env.command;
    switch (c.type) {
      case 'deposit':
        return this.deposit(c.account, c.amount);
      case 'withdraw':
        return this.withdraw(c.account, c.amount);
      case 'place_order':
        return this.placeOrder(env, c);
      case 'cancel_order':
        return this.cancelOrder(c.account, c.orderId);
      case 'epoch_start':
        return { status: 'accepted' };
      default: {
        const never: never = c;
        assert(false, `unknown command type ${(never as { type?: unknown }).type}`);
      }
    }
  }

  private deposit(id: AccountId, amt: Amount): Result {
    const max = this.limits.maxAmount;
    if (!inRange(amt, 1, max)) return reject('amount_limit_exceeded', `amount must be 1..${max}`);
    const existing = this.accounts.get(id);
    if (existing === undefined && this.accounts.size >= this.limits.maxAccounts) {
      return reject('too_many_accounts');
    }
    const after = safe((existing?.collateral ?? 0) + amt, 'deposit');
    if (after > max) return reject('amount_limit_exceeded', `collateral would exceed ${max}`);
    // Accounts are created by their first accepted deposit, and only then.
    const a = existing ?? this.createAccount(id);
    a.collateral = after;
    this.pending.accounts.add(id);
    return { status: 'accepted', collateral: after as Amount };
  }

  private withdraw(id: AccountId, amt: Amount): Result {
    const a = this.accounts.get(id);
    if (a === undefined) return reject('unknown_account');
    const max = this.limits.maxAmount;
    if (!inRange(amt, 1, max)) return reject('amount_limit_exceeded', `amount must be 1..${max}`);
    const after = safe(a.collateral - amt, 'withdraw');
    if (after < initialMargin(a, this.leverage)) return reject('insufficient_collateral');
    a.collateral = after;
    this.pending.accounts.add(id);
    return { status: 'accepted', collateral: after as Amount };
  }

  private cancelOrder(id: AccountId, oid: OrderId): Result {
    const a = this.accounts.get(id);
    if (a === undefined) return reject('unknown_account');
    const o = this.orders.get(oid);
    if (o === undefined) return reject('unknown_order');
    if (o.account !== id) return reject('not_order_owner');
    this.removeOrder(o);
    this.pending.accounts.add(id);
    this.pending.markets.add(o.market);
    return { status: 'accepted', orderId: oid };
  }

  private placeOrder(env: Envelope, c: PlaceOrder): Result {
    const a = this.accounts.get(c.account);
    if (a === undefined) return reject('unknown_account');
    const book = this.books.get(c.market);
    if (book === undefined) return reject('unknown_market');
    const lim = this.limits;
    if (!inRange(c.price, 1, lim.maxPriceTicks)) return reject('price_out_of_range', `price must be 1..${lim.maxPriceTicks}`);
    if (!inRange(c.qty, 1, lim.maxQtyLots)) return reject('qty_out_of_range', `qty must be 1..${lim.maxQtyLots}`);
    assert(c.side === 'buy' || c.side === 'sell', `bad side ${String(c.side)}`);
    assert(c.tif === 'GTC' || c.tif === 'IOC', `bad tif ${String(c.tif)}`);
    // Checked even if the order would fill completely: the outcome of matching must not decide
    // whether a command is admissible, keeping the rule simple to state and to test.
    if (c.tif === 'GTC' && a.orders.size >= lim.maxOpenOrdersPerAccount) return reject('too_many_orders');
    if (!isReducing(a, c.market, c.side, c.qty)) {
      const needed = safe(initialMargin(a, this.leverage) + ceilDiv(c.price * c.qty, this.leverage), 'margin');
      if (needed > a.collateral) return reject('insufficient_collateral');
    }

    // ---- admitted: from here on nothing returns a rejection.
    const takerOrderId = env.seq as number as OrderId;
    const opp = book.oppositeOf(c.side);
    const fills: Fill[] = [];
    const stp: OrderId[] = [];
    let remaining: number = c.qty;
    while (remaining > 0) {
      const level = opp.best();
      if (level === undefined) break;
      if (c.side === 'buy' ? level.price > c.price : level.price < c.price) break;
      const maker = level.head;
      assert(maker !== null, 'book: non-empty level without a head');
      if (maker.account === a.id) {
        // Self-trade prevention, cancel-resting: the old order goes, the new one keeps matching.
        this.removeOrder(maker);
        stp.push(maker.orderId);
        continue;
      }
      const q = Math.min(remaining, maker.remaining);
      const price = level.price; // makers set the price
      opp.reduce(maker, q);
      remaining -= q;
      const makerAcct = this.accounts.get(maker.account);
      assert(makerAcct !== undefined, 'resting order of an unknown account');
      fillPosition(a, c.market, c.side === 'buy' ? q : -q, price);
      fillPosition(makerAcct, c.market, c.side === 'buy' ? -q : q, price);
      if (maker.remaining === 0) this.removeOrder(maker);
      fills.push({ makerOrderId: maker.orderId, makerAccount: maker.account, price, qty: q as QtyLots });
      this.pending.accounts.add(maker.account);
      this.pending.trades.push({
        seq: env.seq,
        tsMs: env.tsMs,
        market: c.market,
        price,
        qty: q,
        takerSide: c.side,
        makerOrderId: maker.orderId,
        takerOrderId,
      } satisfies TradeView);
    }

    let restingQty = 0;
    let cancelledQty = 0;
    if (remaining > 0 && c.tif === 'GTC') {
      restingQty = remaining;
      const o: RestingOrder = {
        orderId: takerOrderId,
        account: a.id,
        market: c.market,
        side: c.side,
        price: c.price,
        qty: c.qty,
        remaining: remaining as QtyLots,
        tif: c.tif,
        seq: env.seq,
        level: null,
        prev: null,
        next: null,
      };
      book.sideOf(c.side).add(o);
      this.orders.set(o.orderId, o);
      a.orders.set(o.orderId, o);
      assert(a.orders.size <= lim.maxOpenOrdersPerAccount, 'open order limit exceeded');
    } else {
      cancelledQty = remaining;
    }

    this.pending.accounts.add(a.id);
    if (fills.length > 0 || stp.length > 0 || restingQty > 0) this.pending.markets.add(c.market);
    return {
      status: 'accepted',
      orderId: takerOrderId,
      fills,
      restingQty: restingQty as QtyLots,
      cancelledQty: cancelledQty as QtyLots,
      selfTradeCancelled: stp,
    };
  }

  // ---------------------------------------------------------------- helpers

  private createAccount(id: AccountId): AccountState {
    assert(typeof id === 'string', 'account id must be a string');
    const a: AccountState = { id, collateral: 0, positions: new Map(), orders: new Map() };
    this.accounts.set(id, a);
    return a;
  }

  private removeOrder(o: RestingOrder): void {
    const book = this.books.get(o.market);
    assert(book !== undefined, 'order on an unknown market');
    book.sideOf(o.side).remove(o);
    assert(this.orders.delete(o.orderId), 'order missing from the global index');
    const a = this.accounts.get(o.account);
    assert(a !== undefined && a.orders.delete(o.orderId), 'order missing from its account');
    this.pending.markets.add(o.market);
    this.pending.accounts.add(o.account);
  }

}

function orderView(o: RestingOrder): OrderView {
  return {
    orderId: o.orderId,
    account: o.account,
    market: o.market,
    side: o.side,
    price: o.price,
    qty: o.qty,
    remaining: o.remaining,
    tif: o.tif,
    seq: o.seq,
  };
}

/** Code-unit order, the same as Array.prototype.sort's default: locale-independent. */
function compareStr(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

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
// - Risk (docs/risk.md): an order is admitted on the account it would leave after the fills it
//   would actually make (planned without mutation first); trades stay within the price band of the
//   mark; after every trade the holders of that market under maintenance margin are liquidated
//   into the insurance fund; Σ(collateral − signedCostBasis) = deposits − withdrawals, exactly.
// Position and margin arithmetic lives in positions.ts and risk.ts, the order book in book.ts.
// This file stays one unit (~600 lines) on purpose: the command handlers share the machine's
// private state, and the "every reject check before the first mutation" invariant is checked by
// reading them side by side.

import { assert } from './assert.js';
import { OrderBook, ordersOf, type BookSide, type RestingOrder } from './book.js';
import { ceilDiv, fillPosition, floorDiv, marginRequired as costMargin, safe, type AccountState } from './positions.js';
import {
  band, boundsProblem, bpsCeil, equity, initialMargin, maintenanceMargin, resolveRisk, signedCost, worstCase,
  type RiskParams,
} from './risk.js';
import { INSURANCE_ACCOUNT } from './types.js';
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
  TimeInForce,
  Envelope,
  Fill,
  LiquidationView,
  OrderId,
  OrderView,
  PositionView,
  PriceTicks,
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
  return { accounts: new Set(), markets: new Set(), trades: [], liquidations: [] };
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
  private readonly risk: RiskParams;
  /** Mark price per market: its last trade, or its reference price (docs/risk.md). */
  private readonly marks = new Map<string, number>();
  /** Σ long positions per market. */
  private readonly openInterest = new Map<string, number>();
  /** Accounts with a non-zero position, per market: who to check after a trade there. */
  private readonly holders = new Map<string, Set<AccountId>>();
  /** Deposits − withdrawals: Σ(collateral − signedCostBasis) over every account equals it. */
  private netDeposits = 0;

  constructor(config: DomainConfig) {
    assert(Number.isSafeInteger(config.leverage) && config.leverage >= 1, 'config: leverage must be an integer >= 1');
    const l = config.limits;
    for (const [name, v] of Object.entries(l)) {
      assert(Number.isSafeInteger(v) && v >= 1, `config: limits.${name} must be an integer >= 1`);
    }
    // price*qty must stay exact; every other reachable value is bounded by the risk limits.
    safe(l.maxPriceTicks * l.maxQtyLots, 'config: maxPriceTicks * maxQtyLots');
    this.risk = resolveRisk(config);
    const problem = boundsProblem(this.risk);
    assert(problem === null, `config: ${problem}`);
    assert(config.markets.length > 0, 'config: at least one market');
    this.leverage = config.leverage;
    this.limits = { ...l };
    this.symbols = [];
    for (const m of config.markets) {
      assert(typeof m.symbol === 'string' && m.symbol.length > 0, 'config: market symbol must be non-empty');
      assert(!this.books.has(m.symbol), `config: duplicate market ${m.symbol}`);
      this.books.set(m.symbol, new OrderBook(m.symbol));
      this.symbols.push(m.symbol);
      this.openInterest.set(m.symbol, 0);
      this.holders.set(m.symbol, new Set());
      if (m.referencePrice !== undefined) {
        assert(inRange(m.referencePrice, 1, l.maxPriceTicks), `config: ${m.symbol} referencePrice must be 1..maxPriceTicks`);
        this.marks.set(m.symbol, m.referencePrice);
      }
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

  /**
   * The whole state as plain data in a canonical order (accounts by id, positions by market, orders
   * by id, markets by symbol), for a snapshot (docs/snapshots.md). fromSnapshot() rebuilds an
   * identical machine: same state hash, same answers to every later command (a book's queue order
   * is its orders' id order, which is their arrival order).
   */
  exportState(): StateSnapshot {
    const bySymbol = [...this.symbols].sort(compareStr);
    return {
      v: 1,
      lastSeq: this.seqLast,
      netDeposits: this.netDeposits,
      marks: bySymbol.filter((m) => this.marks.has(m)).map((m) => [m, this.marks.get(m)!] as [string, number]),
      openInterest: bySymbol.map((m) => [m, this.openInterest.get(m) ?? 0] as [string, number]),
      accounts: [...this.accounts.keys()].sort(compareStr).map((id) => {
        const a = this.accounts.get(id)!;
        return {
          id,
          collateral: a.collateral,
          positions: [...a.positions.values()].sort((x, y) => compareStr(x.market, y.market)).map((p) => ({ market: p.market, qty: p.qty, costBasis: p.costBasis, realizedPnl: p.realizedPnl })),
        };
      }),
      orders: [...this.orders.values()]
        .sort((x, y) => x.orderId - y.orderId)
        .map((o) => ({ orderId: o.orderId, account: o.account, market: o.market, side: o.side, price: o.price, qty: o.qty, remaining: o.remaining, tif: o.tif, seq: o.seq })),
    };
  }

  /**
   * exportState() in parts, for a snapshot written across event-loop turns (engine/snapshot.ts):
   * first the small globals, then accounts and resting orders, `size` at a time, in insertion
   * order (accounts are never removed and order ids are seqs, so that order is deterministic and
   * the orders come out by id, as fromSnapshot wants). No sort over a million ids, no copy of the
   * state. The caller must not apply anything between two steps: each step asserts it.
   */
  *exportParts(size: number): Generator<SnapshotPart> {
    assert(Number.isInteger(size) && size >= 1, 'exportParts: size must be a positive integer');
    const seq = this.seqLast;
    const bySymbol = [...this.symbols].sort(compareStr);
    yield {
      kind: 'globals',
      v: 1,
      lastSeq: seq,
      netDeposits: this.netDeposits,
      marks: bySymbol.filter((m) => this.marks.has(m)).map((m) => [m, this.marks.get(m)!] as [string, number]),
      openInterest: bySymbol.map((m) => [m, this.openInterest.get(m) ?? 0] as [string, number]),
      accounts: this.accounts.size,
      orders: this.orders.size,
    };
    let accounts: StateSnapshot['accounts'] = [];
    for (const a of this.accounts.values()) {
      accounts.push({
        id: a.id,
        collateral: a.collateral,
        positions: [...a.positions.values()].map((p) => ({ market: p.market, qty: p.qty, costBasis: p.costBasis, realizedPnl: p.realizedPnl })),
      });
      if (accounts.length === size) {
        yield { kind: 'accounts', accounts };
        assert(this.seqLast === seq, `state changed (seq ${seq} → ${this.seqLast}) during a snapshot export`);
        accounts = [];
      }
    }
    if (accounts.length > 0) yield { kind: 'accounts', accounts };
    let orders: StateSnapshot['orders'] = [];
    for (const o of this.orders.values()) {
      orders.push({ orderId: o.orderId, account: o.account, market: o.market, side: o.side, price: o.price, qty: o.qty, remaining: o.remaining, tif: o.tif, seq: o.seq });
      if (orders.length === size) {
        yield { kind: 'orders', orders };
        assert(this.seqLast === seq, `state changed (seq ${seq} → ${this.seqLast}) during a snapshot export`);
        orders = [];
      }
    }
    if (orders.length > 0) yield { kind: 'orders', orders };
    assert(this.seqLast === seq, `state changed (seq ${seq} → ${this.seqLast}) during a snapshot export`);
  }

  /**
   * A machine holding exactly `snap` (from exportState, possibly of another node). Accounts and
   * orders may be any iterables (a snapshot file decodes them a frame at a time); orders by id.
   */
  static fromSnapshot(config: DomainConfig, snap: StateSnapshotParts): StateMachine {
    assert(snap.v === 1, `snapshot format ${String(snap.v)}, this build reads 1`);
    const m = new StateMachine(config);
    m.seqLast = snap.lastSeq;
    m.netDeposits = snap.netDeposits;
    m.marks.clear();
    for (const [market, mark] of snap.marks) {
      assert(m.books.has(market), `snapshot mark for unknown market ${market}`);
      m.marks.set(market, mark);
    }
    for (const [market, oi] of snap.openInterest) {
      assert(m.books.has(market), `snapshot open interest for unknown market ${market}`);
      m.openInterest.set(market, oi);
    }
    for (const a of snap.accounts) {
      const acct = m.createAccount(a.id);
      acct.collateral = a.collateral;
      for (const p of a.positions) {
        assert(m.books.has(p.market), `snapshot position in unknown market ${p.market}`);
        acct.positions.set(p.market, { market: p.market, qty: p.qty, costBasis: p.costBasis, realizedPnl: p.realizedPnl });
        if (p.qty !== 0) m.holders.get(p.market)!.add(a.id);
      }
    }
    let previous = 0;
    for (const o of snap.orders) {
      assert(o.orderId > previous, 'snapshot orders out of order');
      previous = o.orderId;
      const acct = m.accounts.get(o.account);
      const book = m.books.get(o.market);
      assert(acct !== undefined && book !== undefined, `snapshot order ${o.orderId} of an unknown account or market`);
      const order: RestingOrder = { ...o, level: null, prev: null, next: null };
      book.sideOf(o.side).add(order);
      m.orders.set(o.orderId, order);
      acct.orders.set(o.orderId, order);
    }
    return m;
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
    const marginRequired = costMargin(a, this.leverage);
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

  /** The market's mark (last trade, or reference price), undefined before either exists. */
  mark(market: string): number | undefined {
    return this.marks.get(market);
  }

  openInterestOf(market: string): number {
    return this.openInterest.get(market) ?? 0;
  }

  /** Deposits − withdrawals so far. */
  get totalDeposits(): number {
    return this.netDeposits;
  }

  /** The risk view of an account at current marks (docs/risk.md). */
  riskOf(id: AccountId): { equity: number; initialMargin: number; maintenanceMargin: number; available: number } | undefined {
    const a = this.accounts.get(id);
    if (a === undefined) return undefined;
    const e = equity(a, this.marks);
    const im = initialMargin(a, this.marks, this.leverage);
    return { equity: e, initialMargin: im, maintenanceMargin: maintenanceMargin(a, this.marks, this.risk.maintenanceMarginBps), available: e - im };
  }

  /** Σ(collateral − signedCostBasis) over every account: equals totalDeposits (conservation). */
  valueSum(): number {
    let v = 0;
    for (const a of this.accounts.values()) {
      v += a.collateral;
      for (const p of a.positions.values()) v -= signedCost(p.qty, p.costBasis);
    }
    return v;
  }

  /**
   * A live iterator over account ids in creation order (accounts are never removed, so it visits
   * every account that exists when it reaches the end, new ones included): for work spread over
   * many turns without copying a million ids.
   */
  accountIdIterator(): IterableIterator<string> {
    return this.accounts.keys();
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
      marks: [...this.symbols].sort(compareStr).map((m) => ({ market: m, mark: this.marks.get(m) ?? null })),
      netDeposits: this.netDeposits,
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
    if (reserved(id)) return reject('unknown_account', 'account ids starting with # are reserved');
    const max = this.limits.maxAmount;
    if (!inRange(amt, 1, max)) return reject('amount_limit_exceeded', `amount must be 1..${max}`);
    if (this.netDeposits + amt > this.risk.maxTotalDeposits) {
      return reject('deposit_limit_exceeded', `the exchange holds at most ${this.risk.maxTotalDeposits} in deposits`);
    }
    const existing = this.accounts.get(id);
    if (existing === undefined && this.accounts.size >= this.limits.maxAccounts) {
      return reject('too_many_accounts');
    }
    const after = safe((existing?.collateral ?? 0) + amt, 'deposit');
    if (after > max) return reject('amount_limit_exceeded', `collateral would exceed ${max}`);
    // Accounts are created by their first accepted deposit, and only then.
    const a = existing ?? this.createAccount(id);
    a.collateral = after;
    this.netDeposits += amt;
    this.pending.accounts.add(id);
    return { status: 'accepted', collateral: after as Amount };
  }

  private withdraw(id: AccountId, amt: Amount): Result {
    const a = reserved(id) ? undefined : this.accounts.get(id);
    if (a === undefined) return reject('unknown_account');
    const max = this.limits.maxAmount;
    if (!inRange(amt, 1, max)) return reject('amount_limit_exceeded', `amount must be 1..${max}`);
    // Only cash leaves (not unrealized gains), and what stays must carry the initial margin.
    if (amt > a.collateral) return reject('insufficient_collateral', 'amount exceeds collateral');
    if (equity(a, this.marks) - amt < initialMargin(a, this.marks, this.leverage)) return reject('insufficient_collateral');
    const after = a.collateral - amt;
    a.collateral = after;
    this.netDeposits -= amt;
    this.pending.accounts.add(id);
    return { status: 'accepted', collateral: after as Amount };
  }

  private cancelOrder(id: AccountId, oid: OrderId): Result {
    const a = reserved(id) ? undefined : this.accounts.get(id);
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
    const a = reserved(c.account) ? undefined : this.accounts.get(c.account);
    if (a === undefined) return reject('unknown_account');
    const book = this.books.get(c.market);
    if (book === undefined) return reject('unknown_market');
    const lim = this.limits;
    if (!inRange(c.price, 1, lim.maxPriceTicks)) return reject('price_out_of_range', `price must be 1..${lim.maxPriceTicks}`);
    if (!inRange(c.qty, 1, lim.maxQtyLots)) return reject('qty_out_of_range', `qty must be 1..${lim.maxQtyLots}`);
    assert(c.side === 'buy' || c.side === 'sell', `bad side ${String(c.side)}`);
    assert(c.tif === 'GTC' || c.tif === 'IOC', `bad tif ${String(c.tif)}`);
    const m0 = this.marks.get(c.market);
    const bnd = m0 === undefined ? null : band(m0, this.risk.priceBandBps);
    if (bnd !== null && (c.price < bnd.lo || c.price > bnd.hi)) {
      return reject('price_out_of_band', `price must be ${bnd.lo}..${bnd.hi} (mark ${m0} ± ${this.risk.priceBandBps} bps)`);
    }
    // Checked even if the order would fill completely: the outcome of matching must not decide
    // whether a command is admissible, keeping the rule simple to state and to test.
    if (c.tif === 'GTC' && a.orders.size >= lim.maxOpenOrdersPerAccount) return reject('too_many_orders');

    // ---- plan the matching without changing anything: what would actually execute.
    const takerOrderId = env.seq as number as OrderId;
    const opp = book.oppositeOf(c.side);
    const plan: Array<{ maker: RestingOrder; q: number; price: number }> = [];
    const stp: RestingOrder[] = [];
    const outOfBand: RestingOrder[] = [];
    let remaining: number = c.qty;
    // A market without a mark yet (no reference price, no trade) has no band to start from: the
    // command's first fill price becomes its reference, so one command still moves the mark by at
    // most the band (an unbanded sweep could jump it far enough to leave a maker in deficit).
    let ref = bnd;
    scan: for (let i = opp.levels.length - 1; i >= 0 && remaining > 0; i--) {
      const level = opp.levels[i]!;
      if (c.side === 'buy' ? level.price > c.price : level.price < c.price) break;
      const drifted = ref !== null && (level.price < ref.lo || level.price > ref.hi);
      for (const maker of ordersOf(level)) {
        if (remaining === 0) break scan;
        if (maker.account === a.id) stp.push(maker); // self-trade prevention, cancel-resting
        else if (drifted) outOfBand.push(maker); // its price left the band: cancelled, never traded
        else {
          ref ??= band(level.price, this.risk.priceBandBps);
          const q = Math.min(remaining, maker.remaining);
          plan.push({ maker, q, price: level.price });
          remaining -= q;
        }
      }
    }
    const restingQty = c.tif === 'GTC' ? remaining : 0;
    const refusal = this.admit(a, c, plan, stp, restingQty, takerOrderId);
    if (refusal !== null) return refusal;

    // ---- admitted: from here on nothing returns a rejection.
    const markBefore = this.marks.get(c.market);
    for (const o of stp) this.removeOrder(o);
    for (const o of outOfBand) this.removeOrder(o);
    const fills: Fill[] = [];
    for (const { maker, q, price } of plan) {
      opp.reduce(maker, q);
      const makerAcct = this.accounts.get(maker.account);
      assert(makerAcct !== undefined, 'resting order of an unknown account');
      this.fill(a, c.market, c.side === 'buy' ? q : -q, price);
      this.fill(makerAcct, c.market, c.side === 'buy' ? -q : q, price);
      if (maker.remaining === 0) this.removeOrder(maker);
      this.marks.set(c.market, price);
      fills.push({ makerOrderId: maker.orderId, makerAccount: maker.account, price: price as PriceTicks, qty: q as QtyLots });
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
    if (restingQty > 0) {
      const o: RestingOrder = {
        orderId: takerOrderId,
        account: a.id,
        market: c.market,
        side: c.side,
        price: c.price,
        qty: c.qty,
        remaining: restingQty as QtyLots,
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
    }
    const liquidated = plan.length > 0 ? this.liquidateUnderwater(c.market, env.seq, markBefore, a.id, fills) : [];

    this.pending.accounts.add(a.id);
    if (plan.length > 0 || stp.length > 0 || outOfBand.length > 0 || restingQty > 0) this.pending.markets.add(c.market);
    return {
      status: 'accepted',
      orderId: takerOrderId,
      fills,
      restingQty: restingQty as QtyLots,
      cancelledQty: (remaining - restingQty) as QtyLots,
      selfTradeCancelled: stp.map((o) => o.orderId),
      ...(outOfBand.length > 0 ? { bandCancelled: outOfBand.map((o) => o.orderId) } : {}),
      ...(liquidated.length > 0 ? { liquidated } : {}),
    };
  }

  /**
   * The taker's account as the plan would leave it (docs/risk.md): position limit, open interest,
   * and margin on the actual fill prices, the mark moved to the last fill. Null: admitted.
   */
  private admit(
    a: AccountState,
    c: PlaceOrder,
    plan: ReadonlyArray<{ maker: RestingOrder; q: number; price: number }>,
    stp: readonly RestingOrder[],
    restingQty: number,
    orderId: OrderId,
  ): Result | null {
    const hyp: AccountState = { id: a.id, collateral: a.collateral, positions: new Map(a.positions), orders: new Map(a.orders) };
    const pos = a.positions.get(c.market);
    if (pos !== undefined) hyp.positions.set(c.market, { ...pos });
    for (const o of stp) hyp.orders.delete(o.orderId);
    for (const { q, price } of plan) fillPosition(hyp, c.market, c.side === 'buy' ? q : -q, price);
    if (restingQty > 0) {
      hyp.orders.set(orderId, { orderId, account: a.id, market: c.market, side: c.side, price: c.price, qty: c.qty, remaining: restingQty as QtyLots, tif: c.tif, seq: orderId as number as Seq, level: null, prev: null, next: null });
    }
    const worst = worstCase(hyp, c.market);
    const cap = this.risk.maxPositionLots;
    if (worst.high > cap || worst.low < -cap) {
      const before = worstCase(a, c.market);
      // A position already at the cap may still shrink towards zero.
      if (Math.max(worst.high, -worst.low) > Math.max(before.high, -before.low)) return reject('position_limit_exceeded', `position plus resting orders must stay within ±${cap} lots`);
    }
    // Open interest after the fills: Σ long positions over every account the plan touches.
    const qtyNow = (id: AccountId) => this.accounts.get(id)?.positions.get(c.market)?.qty ?? 0;
    const after = new Map<AccountId, number>();
    const move = (id: AccountId, d: number) => after.set(id, (after.get(id) ?? qtyNow(id)) + d);
    for (const { maker, q } of plan) {
      move(a.id, c.side === 'buy' ? q : -q);
      move(maker.account, c.side === 'buy' ? -q : q);
    }
    let oi = this.openInterest.get(c.market) ?? 0;
    for (const [id, q] of after) oi += Math.max(q, 0) - Math.max(qtyNow(id), 0);
    if (oi > this.risk.maxOpenInterestLots && oi > (this.openInterest.get(c.market) ?? 0)) {
      return reject('open_interest_limit_exceeded', `open interest in ${c.market} is capped at ${this.risk.maxOpenInterestLots} lots`);
    }
    const marksAfter = plan.length === 0 ? this.marks : new Map(this.marks).set(c.market, plan[plan.length - 1]!.price);
    const availableBefore = equity(a, this.marks) - initialMargin(a, this.marks, this.leverage);
    const equityAfter = equity(hyp, marksAfter);
    const availableAfter = equityAfter - initialMargin(hyp, marksAfter, this.leverage);
    // Admitted with room to spare, or as an order that lowers the risk of an account under
    // initial margin while keeping it above maintenance (a trader can always reduce).
    const reduces = availableAfter >= availableBefore && equityAfter >= maintenanceMargin(hyp, marksAfter, this.risk.maintenanceMarginBps);
    if (availableAfter < 0 && !reduces) return reject('insufficient_collateral', `needs ${-availableAfter} more at the prices it would fill at`);
    return null;
  }

  /** One side of a fill, keeping open interest and the holders index in step. */
  private fill(acct: AccountState, market: string, signedQty: number, price: number): void {
    const before = acct.positions.get(market)?.qty ?? 0;
    fillPosition(acct, market, signedQty, price);
    const after = acct.positions.get(market)!.qty;
    this.openInterest.set(market, (this.openInterest.get(market) ?? 0) + Math.max(after, 0) - Math.max(before, 0));
    const holders = this.holders.get(market)!;
    if (after === 0) holders.delete(acct.id);
    else holders.add(acct.id);
  }

  /** After a trade in `market`: every holder under maintenance margin is liquidated (id order). */
  /**
   * After an order's fills: every holder of `market` under maintenance margin is liquidated, in
   * account-id order. Only accounts whose equity − MM can have fallen are examined: the trade's
   * parties (their positions and collateral changed), and, when the mark moved, the holders on the
   * losing side (a mark rise of Δ costs a short |q|·Δ; a long gains q·Δ while its MM grows by at
   * most ⌈q·Δ·bps/10⁴⌉ ≤ q·Δ, so a long is never pushed under by a rise, and symmetrically).
   * Liquidating one account (positions to the fund at the mark) moves no mark and no other
   * account's equity, so collecting first and liquidating after gives the same result as checking
   * each account in turn — and the per-trade cost is a sign test per holder, not a margin sum.
   */
  private liquidateUnderwater(market: string, seq: Seq, markBefore: number | undefined, taker: AccountId, fills: readonly Fill[]): LiquidationView[] {
    const mark = this.marks.get(market);
    const mmBps = this.risk.maintenanceMarginBps;
    const under = (id: AccountId) => {
      const a = this.accounts.get(id);
      return a !== undefined && equity(a, this.marks) < maintenanceMargin(a, this.marks, mmBps);
    };
    const found = new Set<AccountId>();
    for (const id of [taker, ...fills.map((f) => f.makerAccount)]) if (id !== INSURANCE_ACCOUNT && under(id)) found.add(id);
    if (mark !== markBefore) {
      // Which side can lose: shorts on a rise, longs on a fall (both if the filter can't be proven).
      const sign = mmBps > 10_000 ? 0 : markBefore === undefined || mark! > markBefore ? -1 : 1;
      for (const id of this.holders.get(market)!) {
        if (id === INSURANCE_ACCOUNT || found.has(id)) continue;
        const qty = this.accounts.get(id)!.positions.get(market)?.qty ?? 0;
        if (sign !== 0 && Math.sign(qty) !== sign) continue;
        if (under(id)) found.add(id);
      }
    }
    const out: LiquidationView[] = [];
    for (const id of [...found].sort(compareStr)) out.push(...this.liquidate(this.accounts.get(id)!, seq));
    this.pending.liquidations.push(...out);
    return out;
  }

  /**
   * Cancels the account's orders and hands every position to the insurance fund at the mark; a fee
   * to the fund; any loss beyond the account's collateral is covered by the fund.
   */
  private liquidate(a: AccountState, seq: Seq): LiquidationView[] {
    for (const o of [...a.orders.values()]) this.removeOrder(o);
    const fund = this.accounts.get(INSURANCE_ACCOUNT) ?? this.createAccount(INSURANCE_ACCOUNT);
    const out: LiquidationView[] = [];
    const positions = [...a.positions.values()].filter((p) => p.qty !== 0).sort((x, y) => compareStr(x.market, y.market));
    for (const p of positions) {
      const qty = p.qty;
      const mark = this.marks.get(p.market)!;
      this.fill(a, p.market, -qty, mark);
      this.fill(fund, p.market, qty, mark);
      const fee = Math.min(Math.max(a.collateral, 0), bpsCeil(Math.abs(qty) * mark, this.risk.liquidationFeeBps));
      a.collateral -= fee;
      fund.collateral += fee;
      out.push({ seq, account: a.id, market: p.market, qty, price: mark, fee, deficit: 0 });
      this.pending.markets.add(p.market);
    }
    if (a.collateral < 0 && out.length > 0) {
      // Only if the band/margin rules failed (docs/risk.md): the fund absorbs the loss.
      const deficit = -a.collateral;
      fund.collateral -= deficit;
      a.collateral = 0;
      out[out.length - 1]!.deficit = deficit;
    }
    this.pending.accounts.add(a.id);
    this.pending.accounts.add(fund.id);
    return out;
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

/** The machine's whole state as plain data (StateMachine.exportState). */
export interface StateSnapshot {
  v: 1;
  lastSeq: number;
  netDeposits: number;
  marks: Array<[string, number]>;
  openInterest: Array<[string, number]>;
  accounts: Array<{ id: AccountId; collateral: number; positions: Array<{ market: string; qty: number; costBasis: number; realizedPnl: number }> }>;
  orders: Array<{ orderId: OrderId; account: AccountId; market: string; side: Side; price: PriceTicks; qty: QtyLots; remaining: QtyLots; tif: TimeInForce; seq: Seq }>;
}

/** A StateSnapshot whose accounts and orders are any iterables (what fromSnapshot reads). */
export type StateSnapshotParts = Omit<StateSnapshot, 'accounts' | 'orders'> & {
  accounts: Iterable<StateSnapshot['accounts'][number]>;
  orders: Iterable<StateSnapshot['orders'][number]>;
};

/** One step of StateMachine.exportParts: concatenated in order, they are a StateSnapshot. */
export type SnapshotPart =
  | ({ kind: 'globals'; accounts: number; orders: number } & Pick<StateSnapshot, 'v' | 'lastSeq' | 'netDeposits' | 'marks' | 'openInterest'>)
  | { kind: 'accounts'; accounts: StateSnapshot['accounts'] }
  | { kind: 'orders'; orders: StateSnapshot['orders'] };

/** Ids starting with '#' are the machine's own (the insurance fund): no client command may use them. */
function reserved(id: AccountId): boolean {
  return typeof id === 'string' && id.startsWith('#');
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

// One market's limit order book: internal data structure of the state machine (not a view).
// Layout: per side, a sorted array of price levels, ordered WORST -> BEST so the best level is
// the last element and removing an exhausted best level (the common case while matching) is
// a pop. Inserting a new level is a binary search (O(log n)) plus a splice. Within a level the
// orders form a doubly linked FIFO list, so taking the front (fill) and unlinking any order
// (cancel, self-trade prevention) are both O(1).
// Invariants: a level in the array is never empty; level.qty === Σ remaining of its orders and
// level.count === number of its orders; every linked order has remaining > 0; prices on a side
// are strictly monotonic in the array; time priority within a level is insertion order, and
// orders are inserted in seq order, so FIFO == ascending seq.

import { assert } from './assert.js';
import type { AccountId, OrderId, PriceTicks, QtyLots, Seq, Side, TimeInForce } from './types.js';

export interface RestingOrder {
  readonly orderId: OrderId;
  readonly account: AccountId;
  readonly market: string;
  readonly side: Side;
  readonly price: PriceTicks;
  /** Original quantity of the order (as placed). */
  readonly qty: QtyLots;
  /** Still open; decreases on fills. */
  remaining: QtyLots;
  readonly tif: TimeInForce;
  readonly seq: Seq;
  // Intrusive FIFO links, owned by BookSide.
  level: Level | null;
  prev: RestingOrder | null;
  next: RestingOrder | null;
}

export interface Level {
  readonly price: PriceTicks;
  /** Σ remaining of the orders in this level. */
  qty: number;
  count: number;
  head: RestingOrder | null;
  tail: RestingOrder | null;
}

export class BookSide {
  /** Worst -> best. Bids: ascending price. Asks: descending price. */
  readonly levels: Level[] = [];

  constructor(readonly side: Side) {}

  /** Position key that increases towards the best price, so one ascending search serves both sides. */
  private key(price: number): number {
    return this.side === 'buy' ? price : -price;
  }

  /** Lower-bound index of `price` by key. */
  private search(price: number): number {
    const k = this.key(price);
    let lo = 0;
    let hi = this.levels.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const level = this.levels[mid];
      assert(level !== undefined, 'book: level index out of range');
      if (this.key(level.price) < k) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  best(): Level | undefined {
    return this.levels[this.levels.length - 1];
  }

  /** Appends the order at the back of its price level (creating the level if needed). */
  add(order: RestingOrder): void {
    assert(order.side === this.side, 'book: order added to the wrong side');
    assert(order.remaining > 0, 'book: resting order must have remaining > 0');
    assert(order.level === null, 'book: order is already linked');
    const i = this.search(order.price);
    let level = this.levels[i];
    if (level === undefined || level.price !== order.price) {
      level = { price: order.price, qty: 0, count: 0, head: null, tail: null };
      this.levels.splice(i, 0, level);
    }
    order.level = level;
    order.prev = level.tail;
    order.next = null;
    if (level.tail !== null) level.tail.next = order;
    else level.head = order;
    level.tail = order;
    level.count += 1;
    level.qty += order.remaining;
    assert(Number.isSafeInteger(level.qty), 'book: level qty overflow');
  }

  /** Reduces an order's remaining after a fill (the caller unlinks it when it reaches 0). */
  reduce(order: RestingOrder, fillQty: number): void {
    const level = order.level;
    assert(level !== null, 'book: reduce of an unlinked order');
    assert(fillQty > 0 && fillQty <= order.remaining, 'book: fill larger than remaining');
    order.remaining = (order.remaining - fillQty) as QtyLots;
    level.qty -= fillQty;
  }

  /** Unlinks an order; drops its level if it becomes empty. */
  remove(order: RestingOrder): void {
    const level = order.level;
    assert(level !== null, 'book: remove of an unlinked order');
    if (order.prev !== null) order.prev.next = order.next;
    else level.head = order.next;
    if (order.next !== null) order.next.prev = order.prev;
    else level.tail = order.prev;
    level.count -= 1;
    level.qty -= order.remaining;
    order.level = null;
    order.prev = null;
    order.next = null;
    if (level.count === 0) {
      assert(level.head === null && level.qty === 0, 'book: empty level with leftovers');
      const last = this.levels.length - 1;
      // Fast path: matching always empties the best level, which is the last element.
      if (this.levels[last] === level) {
        this.levels.pop();
      } else {
        const i = this.search(level.price);
        assert(this.levels[i] === level, 'book: level not found where expected');
        this.levels.splice(i, 1);
      }
    }
  }

  /** Levels best first, at most depthMax of them. */
  *bestFirst(depthMax: number = Number.POSITIVE_INFINITY): Generator<Level> {
    let n = 0;
    for (let i = this.levels.length - 1; i >= 0 && n < depthMax; i--, n++) {
      const level = this.levels[i];
      assert(level !== undefined, 'book: level index out of range');
      yield level;
    }
  }
}

export function* ordersOf(level: Level): Generator<RestingOrder> {
  for (let o = level.head; o !== null; o = o.next) yield o;
}

export class OrderBook {
  readonly bids = new BookSide('buy');
  readonly asks = new BookSide('sell');

  constructor(readonly market: string) {}

  sideOf(side: Side): BookSide {
    return side === 'buy' ? this.bids : this.asks;
  }

  /** The side an incoming order of `side` matches against. */
  oppositeOf(side: Side): BookSide {
    return side === 'buy' ? this.asks : this.bids;
  }
}

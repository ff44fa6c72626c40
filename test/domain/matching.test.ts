// Matching: price-time priority, maker-price execution, partial fills, GTC/IOC remainders,
// self-trade prevention, and the effects (touched accounts/markets, trades) it reports.

import { describe, it, expect } from 'vitest';
import { BTC, Driver, ETH } from './helpers.js';

function funded(...accounts: string[]): Driver {
  const d = new Driver();
  for (const a of accounts) d.deposit(a, 1_000_000_000);
  return d;
}

describe('matching', () => {
  it('fills best price first, then oldest first, at the maker price', () => {
    const d = funded('A', 'B', 'C', 'D');
    const s1 = d.sell('A', 101, 10).orderId;
    const s2 = d.sell('B', 100, 5).orderId;
    const s3 = d.sell('C', 100, 5).orderId;
    const r = d.buy('D', 105, 12);
    expect(r.fills).toEqual([
      { makerOrderId: s2, makerAccount: 'B', price: 100, qty: 5 },
      { makerOrderId: s3, makerAccount: 'C', price: 100, qty: 5 },
      { makerOrderId: s1, makerAccount: 'A', price: 101, qty: 2 },
    ]);
    expect(r.restingQty).toBe(0);
    expect(r.cancelledQty).toBe(0);
    expect(r.orderId).toBe(d.nextSeq - 1);
    expect(d.sm.book(BTC, 10)).toEqual({ market: BTC, bids: [], asks: [{ price: 101, qty: 8, orders: 1 }] });
    expect(d.sm.account('A')?.openOrders).toMatchObject([{ orderId: s1, qty: 10, remaining: 8 }]);
    expect(d.sm.account('B')?.openOrders).toEqual([]);
  });

  it('sell side is symmetric: highest bid first, stops at the limit', () => {
    const d = funded('A', 'B', 'C', 'D');
    const b99 = d.buy('A', 99, 3).orderId;
    const b101 = d.buy('B', 101, 3).orderId;
    const b100 = d.buy('C', 100, 3).orderId;
    d.buy('C', 98, 3);
    const r = d.sell('D', 99, 10);
    expect(r.fills?.map((f) => [f.makerOrderId, f.price, f.qty])).toEqual([
      [b101, 101, 3],
      [b100, 100, 3],
      [b99, 99, 3],
    ]);
    expect(r.restingQty).toBe(1);
    expect(d.sm.book(BTC, 10)).toEqual({
      market: BTC,
      bids: [{ price: 98, qty: 3, orders: 1 }],
      asks: [{ price: 99, qty: 1, orders: 1 }],
    });
  });

  it('partially fills the maker and leaves it at the front of the queue', () => {
    const d = funded('A', 'B', 'C');
    const first = d.sell('A', 100, 10).orderId;
    const second = d.sell('B', 100, 10).orderId;
    d.buy('C', 100, 4);
    const r = d.buy('C', 100, 7);
    expect(r.fills?.map((f) => [f.makerOrderId, f.qty])).toEqual([
      [first, 6],
      [second, 1],
    ]);
    expect(d.sm.book(BTC, 1)?.asks).toEqual([{ price: 100, qty: 9, orders: 1 }]);
  });

  it('GTC remainder rests at its limit; IOC remainder is cancelled', () => {
    const d = funded('A', 'B');
    d.sell('A', 100, 5);
    const gtc = d.buy('B', 100, 8);
    expect(gtc.fills?.length).toBe(1);
    expect(gtc.restingQty).toBe(3);
    expect(gtc.cancelledQty).toBe(0);
    expect(d.sm.account('B')?.openOrders).toMatchObject([{ orderId: gtc.orderId, qty: 8, remaining: 3, price: 100, tif: 'GTC' }]);

    d.sell('A', 100, 3); // fills B's resting remainder
    d.sell('A', 100, 5);
    const ioc = d.buy('B', 100, 8, 'IOC');
    expect(ioc.fills?.map((f) => f.qty)).toEqual([5]);
    expect(ioc.restingQty).toBe(0);
    expect(ioc.cancelledQty).toBe(3);
    expect(d.sm.account('B')?.openOrders).toEqual([]);
    expect(d.sm.book(BTC, 10)).toEqual({ market: BTC, bids: [], asks: [] });

    const miss = d.buy('B', 98, 4, 'IOC');
    expect(miss).toMatchObject({ status: 'accepted', fills: [], restingQty: 0, cancelledQty: 4 });
  });

  it('self-trade prevention cancels the resting own order and keeps matching', () => {
    const d = funded('A', 'B');
    const own = d.sell('A', 100, 5).orderId;
    const other = d.sell('B', 100, 5).orderId;
    const ownWorse = d.sell('A', 101, 5).orderId;
    d.sm.drainEffects();
    const r = d.buy('A', 101, 8);
    expect(r.selfTradeCancelled).toEqual([own, ownWorse]);
    expect(r.fills).toEqual([{ makerOrderId: other, makerAccount: 'B', price: 100, qty: 5 }]);
    expect(r.restingQty).toBe(3);
    expect(d.sm.account('A')?.openOrders.map((o) => o.orderId)).toEqual([r.orderId]);
    expect(d.sm.book(BTC, 10)).toEqual({ market: BTC, bids: [{ price: 101, qty: 3, orders: 1 }], asks: [] });
    // A never traded with itself: its position comes only from B.
    expect(d.sm.account('A')?.positions).toEqual([{ market: BTC, qty: 5, costBasis: 500, avgEntryPrice: 100, realizedPnl: 0 }]);
  });

  it('reports touched accounts (incl. makers), touched markets and trades in order', () => {
    const d = funded('A', 'B', 'C', 'D');
    d.sm.drainEffects();
    const s1 = d.sell('A', 100, 2).orderId;
    const s2 = d.sell('B', 101, 2).orderId;
    d.sell('C', 200, 1, 'GTC', ETH);
    let e = d.sm.drainEffects();
    expect([...e.accounts].sort()).toEqual(['A', 'B', 'C']);
    expect([...e.markets].sort()).toEqual([BTC, ETH]);
    expect(e.trades).toEqual([]);

    const taker = d.buy('D', 101, 3, 'IOC');
    e = d.sm.drainEffects();
    expect([...e.accounts].sort()).toEqual(['A', 'B', 'D']);
    expect([...e.markets]).toEqual([BTC]);
    const seq = taker.orderId as number;
    expect(e.trades).toEqual([
      { seq, tsMs: 1_700_000_000_000 + seq, market: BTC, price: 100, qty: 2, takerSide: 'buy', makerOrderId: s1, takerOrderId: seq },
      { seq, tsMs: 1_700_000_000_000 + seq, market: BTC, price: 101, qty: 1, takerSide: 'buy', makerOrderId: s2, takerOrderId: seq },
    ]);
    // Drained: nothing left.
    e = d.sm.drainEffects();
    expect(e.accounts.size + e.markets.size + e.trades.length).toBe(0);

    // An IOC that misses touches its account but not the book.
    d.buy('D', 99, 1, 'IOC');
    e = d.sm.drainEffects();
    expect([...e.markets]).toEqual([]);
    expect([...e.accounts]).toEqual(['D']);
  });

  it('book view aggregates levels best first and honours depthMax', () => {
    const d = funded('A', 'B');
    d.buy('A', 100, 1);
    d.buy('B', 100, 2);
    d.buy('A', 99, 4);
    d.buy('A', 97, 1);
    d.sell('B', 105, 1);
    d.sell('B', 103, 6);
    expect(d.sm.book(BTC, 2)).toEqual({
      market: BTC,
      bids: [
        { price: 100, qty: 3, orders: 2 },
        { price: 99, qty: 4, orders: 1 },
      ],
      asks: [
        { price: 103, qty: 6, orders: 1 },
        { price: 105, qty: 1, orders: 1 },
      ],
    });
    expect(d.sm.book('NOPE', 5)).toBeUndefined();
    expect(d.sm.marketSymbols()).toEqual([BTC, ETH]);
  });

  it('cancelling from the middle of a level keeps FIFO order of the rest', () => {
    const d = funded('A', 'B', 'C', 'D');
    const a = d.sell('A', 100, 1).orderId;
    const b = d.sell('B', 100, 1).orderId;
    const c = d.sell('C', 100, 1).orderId;
    expect(d.cancel('B', b as number)).toEqual({ status: 'accepted', orderId: b });
    const r = d.buy('D', 100, 2);
    expect(r.fills?.map((f) => f.makerOrderId)).toEqual([a, c]);
    expect(d.sm.book(BTC, 5)?.asks).toEqual([]);
  });
});

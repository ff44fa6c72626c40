// Initial margin: ceil(notional / leverage) for positions (on cost basis) and resting orders;
// reducing orders need no margin; withdrawals cannot dip below the margin held.

import { describe, it, expect } from 'vitest';
import { BTC, Driver, ETH } from './helpers.js';

describe('margin', () => {
  it('rejects an opening order the collateral cannot cover, accepts one it exactly covers', () => {
    const d = new Driver();
    d.deposit('A', 999);
    expect(d.order('A', BTC, 'buy', 100, 100)).toEqual({ status: 'rejected', code: 'insufficient_collateral' });
    d.deposit('A', 1);
    d.buy('A', 100, 100); // margin 1000 == collateral
    expect(d.sm.account('A')).toMatchObject({ collateral: 1000, marginRequired: 1000, available: 0 });
    // ceil(1 * 1 / 10) = 1 > 0 available, on any market and either side.
    expect(d.order('A', ETH, 'sell', 1, 1)).toEqual({ status: 'rejected', code: 'insufficient_collateral' });
    expect(d.order('A', BTC, 'buy', 1, 1, 'IOC')).toEqual({ status: 'rejected', code: 'insufficient_collateral' });
  });

  it('rounds margin up per order', () => {
    const d = new Driver();
    d.deposit('A', 2);
    d.buy('A', 1, 1); // ceil(0.1) = 1
    d.buy('A', 1, 1, 'GTC', ETH);
    expect(d.sm.account('A')).toMatchObject({ marginRequired: 2, available: 0 });
    expect(d.order('A', BTC, 'buy', 1, 1)).toMatchObject({ code: 'insufficient_collateral' });
  });

  it('always allows a reducing order, even with zero spare margin', () => {
    const d = new Driver();
    d.deposit('A', 1000);
    d.deposit('B', 1_000_000);
    d.sell('B', 100, 100);
    d.buy('A', 100, 100, 'IOC'); // long 100, cost 10_000, margin 1000
    expect(d.sm.account('A')).toMatchObject({ collateral: 1000, marginRequired: 1000, available: 0 });

    // Too big to be reducing: needs margin for the whole order.
    expect(d.order('A', BTC, 'sell', 200, 101)).toMatchObject({ code: 'insufficient_collateral' });
    const close = d.sell('A', 200, 60); // reducing: rests, takes margin, available goes negative
    expect(close.restingQty).toBe(60);
    expect(d.sm.account('A')?.available).toBeLessThan(0);
    const close2 = d.sell('A', 200, 40); // 40 <= 100 - 60 still reducing
    expect(close2.restingQty).toBe(40);
    // Everything is already committed to closing: one more lot is not reducing.
    expect(d.order('A', BTC, 'sell', 200, 1)).toMatchObject({ code: 'insufficient_collateral' });
    // Same side as the position is never reducing.
    expect(d.order('A', BTC, 'buy', 1, 1)).toMatchObject({ code: 'insufficient_collateral' });

    // Closing at a loss still goes through.
    d.cancel('A', close.orderId as number);
    d.cancel('A', close2.orderId as number);
    d.buy('B', 95, 100);
    const r = d.sell('A', 95, 100, 'IOC');
    expect(r.fills?.[0]?.qty).toBe(100);
    expect(d.sm.account('A')).toMatchObject({ collateral: 500, marginRequired: 0, available: 500 });
  });

  it('lets collateral go negative after adverse fills (no liquidation) and still allows closing', () => {
    const d = new Driver();
    d.deposit('A', 1000);
    d.deposit('B', 1_000_000);
    d.sell('B', 100, 100);
    d.buy('A', 100, 100);
    d.buy('B', 80, 100);
    d.sell('A', 80, 100); // loss 2000
    expect(d.sm.account('A')).toMatchObject({ collateral: -1000, marginRequired: 0, available: -1000 });
    expect(d.withdraw('A', 1)).toMatchObject({ code: 'insufficient_collateral' });
  });

  it('blocks withdrawals that would leave collateral below margin', () => {
    const d = new Driver();
    d.deposit('A', 2000);
    const o = d.buy('A', 100, 100); // margin 1000
    expect(d.withdraw('A', 1001)).toEqual({ status: 'rejected', code: 'insufficient_collateral' });
    expect(d.withdraw('A', 1000)).toEqual({ status: 'accepted', collateral: 1000 });
    expect(d.withdraw('A', 1)).toMatchObject({ code: 'insufficient_collateral' });
    d.cancel('A', o.orderId as number);
    expect(d.withdraw('A', 1000)).toEqual({ status: 'accepted', collateral: 0 });
    expect(d.sm.account('A')).toMatchObject({ collateral: 0, marginRequired: 0, available: 0 });
  });

  it('counts position margin on cost basis, not on the current price', () => {
    const d = new Driver();
    d.deposit('A', 10_000);
    d.deposit('B', 10_000);
    d.sell('B', 333, 7);
    d.buy('A', 333, 7); // cost 2331 -> ceil(233.1) = 234
    expect(d.sm.account('A')?.marginRequired).toBe(234);
    expect(d.sm.account('B')?.marginRequired).toBe(234);
  });
});

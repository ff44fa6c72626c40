// Margin on what executes (docs/risk.md): an order is admitted on the account its actual fills
// would leave (fill prices, resulting position, resting remainder), reducing stays possible above
// maintenance, withdrawals keep the initial margin, and an account under maintenance margin is
// liquidated into the insurance fund at the mark — money conserved exactly.

import { describe, it, expect } from 'vitest';
import { INSURANCE_ACCOUNT } from '../../src/domain/types.js';
import { BTC, Driver, ETH } from './helpers.js';

/** Σ(collateral − signedCostBasis) over every account: must equal deposits − withdrawals. */
function valueSum(d: Driver): number {
  return d.sm.valueSum();
}

describe('margin', () => {
  it('rejects an opening order the collateral cannot cover, accepts one it exactly covers', () => {
    const d = new Driver();
    d.deposit('A', 999);
    expect(d.order('A', BTC, 'buy', 100, 100)).toMatchObject({ status: 'rejected', code: 'insufficient_collateral' });
    d.deposit('A', 1);
    d.buy('A', 100, 100); // margin 1000 == collateral
    expect(d.sm.account('A')).toMatchObject({ collateral: 1000, marginRequired: 1000, available: 0 });
    // ceil(1 * 1 / 10) = 1 > 0 available, on any market and either side.
    expect(d.order('A', ETH, 'sell', 1, 1)).toMatchObject({ status: 'rejected', code: 'insufficient_collateral' });
    // An IOC that cannot fill takes no margin: it is simply cancelled.
    expect(d.order('A', BTC, 'buy', 1, 1, 'IOC')).toMatchObject({ status: 'accepted', fills: [], cancelledQty: 1 });
  });

  it('rounds margin up per order', () => {
    const d = new Driver();
    d.deposit('A', 2);
    d.buy('A', 1, 1); // ceil(0.1) = 1
    d.buy('A', 1, 1, 'GTC', ETH);
    expect(d.sm.account('A')).toMatchObject({ marginRequired: 2, available: 0 });
    expect(d.order('A', BTC, 'buy', 1, 1)).toMatchObject({ code: 'insufficient_collateral' });
  });

  it('checks margin at the prices an order fills at, not at its limit (a sell @1 into a bid @30000)', () => {
    const d = new Driver();
    d.deposit('A', 1000);
    d.deposit('B', 1_000_000_000);
    d.buy('B', 30_000, 1000);
    // Margin at the limit price would be ceil(1000/10) = 100; at the fill price it is 3 000 000.
    const before = d.sm.snapshot();
    expect(d.order('A', BTC, 'sell', 1, 1000, 'IOC')).toMatchObject({ status: 'rejected', code: 'insufficient_collateral' });
    expect({ ...(d.sm.snapshot() as object), lastSeq: 0, nextOrderId: 0 }).toEqual({ ...(before as object), lastSeq: 0, nextOrderId: 0 });
    // Once the market has traded, such a price is outside the band anyway.
    d.deposit('C', 1_000_000_000);
    d.sell('C', 30_000, 1, 'IOC');
    expect(d.order('A', BTC, 'sell', 1, 1, 'IOC')).toMatchObject({ status: 'rejected', code: 'price_out_of_band' });
  });

  it('lets an account under initial margin reduce, as long as it stays above maintenance', () => {
    const d = new Driver();
    d.deposit('A', 1000);
    d.deposit('B', 1_000_000);
    d.deposit('C', 1_000_000);
    d.sell('B', 100, 100);
    d.buy('A', 100, 100, 'IOC'); // long 100 @100: IM 1000, equity 1000
    d.buy('B', 98, 1);
    d.sell('C', 98, 1, 'IOC'); // mark 98: equity 800, IM 980, MM 490
    expect(d.sm.riskOf('A')).toEqual({ equity: 800, initialMargin: 980, maintenanceMargin: 490, available: -180 });
    // Adding risk is refused; reducing by a little is allowed (available −82 ≥ −180, equity ≥ MM).
    expect(d.order('A', BTC, 'buy', 98, 1)).toMatchObject({ code: 'insufficient_collateral' });
    d.buy('B', 98, 10);
    expect(d.sell('A', 98, 10, 'IOC').fills?.[0]?.qty).toBe(10);
    expect(d.sm.riskOf('A')).toMatchObject({ equity: 800, initialMargin: 882, available: -82 });
  });

  it('liquidates an account under maintenance margin into the insurance fund at the mark', () => {
    const d = new Driver();
    d.deposit('A', 1010);
    d.deposit('B', 1_000_000);
    d.deposit('C', 1_000_000);
    d.sell('B', 100, 100);
    d.buy('A', 100, 100, 'IOC'); // A long 100 @100, equity 1010
    d.buy('A', 99, 1, 'GTC', ETH); // a resting order (margin 10) elsewhere, cancelled by the liquidation
    const deposits = 2_001_010;
    // B and C trade the mark down within the band: 98, 96, then 94 (A: equity 410 < MM 470 + 5).
    for (const p of [98, 96]) {
      d.buy('B', p, 1);
      const r = d.sell('C', p, 1, 'IOC');
      expect(r.liquidated).toBeUndefined();
    }
    d.buy('B', 94, 1);
    const r = d.sell('C', 94, 1, 'IOC');
    expect(r.liquidated).toEqual([{ seq: r.orderId, account: 'A', market: BTC, qty: 100, price: 94, fee: 47, deficit: 0 }]);
    // A realized 100 × (94 − 100) = −600 and paid the fee; no position, no orders, no debt.
    expect(d.sm.account('A')).toMatchObject({ collateral: 363, positions: [{ market: BTC, qty: 0 }], openOrders: [] });
    expect(d.sm.account(INSURANCE_ACCOUNT)).toMatchObject({ collateral: 47, positions: [{ market: BTC, qty: 100, costBasis: 9400 }] });
    const e = d.sm.drainEffects();
    expect(e.liquidations).toHaveLength(1);
    expect(e.accounts.has(INSURANCE_ACCOUNT)).toBe(true);
    expect(valueSum(d)).toBe(deposits);
    expect(d.sm.totalDeposits).toBe(deposits);
  });

  it('blocks withdrawals that would leave less than the initial margin, and never withdraws unrealized gains', () => {
    const d = new Driver();
    d.deposit('A', 2000);
    const o = d.buy('A', 100, 100); // margin 1000
    expect(d.withdraw('A', 1001)).toMatchObject({ status: 'rejected', code: 'insufficient_collateral' });
    expect(d.withdraw('A', 1000)).toEqual({ status: 'accepted', collateral: 1000 });
    expect(d.withdraw('A', 1)).toMatchObject({ code: 'insufficient_collateral' });
    d.cancel('A', o.orderId as number);
    expect(d.withdraw('A', 1000)).toEqual({ status: 'accepted', collateral: 0 });
    expect(d.sm.account('A')).toMatchObject({ collateral: 0, marginRequired: 0, available: 0 });
    expect(d.withdraw('A', 1)).toMatchObject({ code: 'insufficient_collateral' });
  });

  it('shows position margin on cost basis in the account view (the risk engine uses marks)', () => {
    const d = new Driver();
    d.deposit('A', 10_000);
    d.deposit('B', 10_000);
    d.sell('B', 333, 7);
    d.buy('A', 333, 7); // cost 2331 -> ceil(233.1) = 234
    expect(d.sm.account('A')?.marginRequired).toBe(234);
    expect(d.sm.account('B')?.marginRequired).toBe(234);
  });
});

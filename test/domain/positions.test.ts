// Positions: cost basis, average entry, exact-integer realized PnL, flips and closes to flat.

import { describe, it, expect } from 'vitest';
import { BTC, Driver, ETH, testConfig } from './helpers.js';

const FUND = 1_000_000_000;

function pos(d: Driver, account: string, market = BTC) {
  return d.sm.account(account)?.positions.find((p) => p.market === market);
}

describe('positions', () => {
  it('opens, adds, partially reduces, flips and closes with exact integers on both sides', () => {
    const d = new Driver();
    d.deposit('T', FUND);
    d.deposit('M', FUND);
    expect(d.sm.account('T')?.positions).toEqual([]);

    // Open long 10 @ 100.
    d.sell('M', 100, 10);
    d.buy('T', 100, 10);
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: 10, costBasis: 1000, avgEntryPrice: 100, realizedPnl: 0 });
    expect(pos(d, 'M')).toEqual({ market: BTC, qty: -10, costBasis: 1000, avgEntryPrice: 100, realizedPnl: 0 });

    // Add 5 @ 110: cost 1550, avg floor(1550/15) = 103.
    d.sell('M', 110, 5);
    d.buy('T', 110, 5);
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: 15, costBasis: 1550, avgEntryPrice: 103, realizedPnl: 0 });

    // Reduce 4 @ 120: removed floor(1550*4/15) = 413, pnl 480 - 413 = 67.
    d.buy('M', 120, 4);
    d.sell('T', 120, 4);
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: 11, costBasis: 1137, avgEntryPrice: 103, realizedPnl: 67 });
    expect(pos(d, 'M')).toEqual({ market: BTC, qty: -11, costBasis: 1137, avgEntryPrice: 103, realizedPnl: -67 });
    expect(d.sm.account('T')?.collateral).toBe(FUND + 67);
    expect(d.sm.account('M')?.collateral).toBe(FUND - 67);

    // Flip: sell 15 @ 90 closes 11 (pnl 990 - 1137 = -147) and opens short 4 @ 90.
    d.buy('M', 90, 15);
    d.sell('T', 90, 15);
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: -4, costBasis: 360, avgEntryPrice: 90, realizedPnl: -80 });
    expect(pos(d, 'M')).toEqual({ market: BTC, qty: 4, costBasis: 360, avgEntryPrice: 90, realizedPnl: 80 });

    // Close to flat: buy 4 @ 95, short pnl 360 - 380 = -20; nothing left over.
    d.sell('M', 95, 4);
    d.buy('T', 95, 4);
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: 0, costBasis: 0, avgEntryPrice: 0, realizedPnl: -100 });
    expect(pos(d, 'M')).toEqual({ market: BTC, qty: 0, costBasis: 0, avgEntryPrice: 0, realizedPnl: 100 });
    expect(d.sm.account('T')?.collateral).toBe(FUND - 100);
    expect(d.sm.account('T')?.marginRequired).toBe(0);
  });

  it('closing in odd pieces leaves no cost residue', () => {
    const d = new Driver();
    d.deposit('T', FUND);
    d.deposit('M', FUND);
    // Long 3 with cost 100+100+101 = 301: pro-rata shares are not integers.
    d.sell('M', 100, 2);
    d.sell('M', 101, 1);
    d.buy('T', 101, 3);
    expect(pos(d, 'T')).toMatchObject({ qty: 3, costBasis: 301, avgEntryPrice: 100 });
    d.buy('M', 100, 1);
    d.sell('T', 100, 1); // removed floor(301/3) = 100, pnl 0
    expect(pos(d, 'T')).toMatchObject({ qty: 2, costBasis: 201, realizedPnl: 0 });
    d.buy('M', 100, 1);
    d.sell('T', 100, 1); // removed floor(201/2) = 100, pnl 0
    expect(pos(d, 'T')).toMatchObject({ qty: 1, costBasis: 101, realizedPnl: 0 });
    d.buy('M', 100, 1);
    d.sell('T', 100, 1); // last lot: removes everything, pnl -1
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: 0, costBasis: 0, avgEntryPrice: 0, realizedPnl: -1 });
  });

  it('keeps markets independent and lists positions sorted by market', () => {
    const d = new Driver();
    d.deposit('T', FUND);
    d.deposit('M', FUND);
    d.sell('M', 50, 2, 'GTC', ETH);
    d.buy('T', 50, 2, 'GTC', ETH);
    d.buy('M', 200, 1);
    d.sell('T', 200, 1);
    expect(d.sm.account('T')?.positions.map((p) => [p.market, p.qty])).toEqual([
      [BTC, -1],
      [ETH, 2],
    ]);
  });

  it('handles cost bases where costBasis * closed exceeds 2^53', () => {
    const d = new Driver(testConfig({}, 1000)); // high leverage so max-size fills fit the max deposit
    d.deposit('T', 1_000_000_000_000);
    d.deposit('M', 1_000_000_000_000);
    // 3 fills of 1e6 lots @ 9_999_999 ticks: cost ~3e13, and cost * closed ~3e19 > 2^53.
    for (let i = 0; i < 3; i++) {
      d.sell('M', 9_999_999, 1_000_000);
      d.buy('T', 9_999_999, 1_000_000);
    }
    d.buy('M', 9_999_999, 999_999);
    d.sell('T', 9_999_999, 999_999);
    const p = pos(d, 'T');
    const cost = 3n * 9_999_999n * 1_000_000n;
    const removed = (cost * 999_999n) / 3_000_000n;
    expect(p).toMatchObject({ qty: 2_000_001, costBasis: Number(cost - removed), realizedPnl: Number(999_999n * 9_999_999n - removed) });
    expect(Number.isSafeInteger(p?.costBasis)).toBe(true);
  });
});

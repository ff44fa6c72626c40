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

    // Open long 10 @ 1000. (Each step stays within the ±2.5% price band of the last trade.)
    d.sell('M', 1000, 10);
    d.buy('T', 1000, 10);
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: 10, costBasis: 10_000, avgEntryPrice: 1000, realizedPnl: 0 });
    expect(pos(d, 'M')).toEqual({ market: BTC, qty: -10, costBasis: 10_000, avgEntryPrice: 1000, realizedPnl: 0 });

    // Add 5 @ 1010: cost 15 050, avg floor(15050/15) = 1003.
    d.sell('M', 1010, 5);
    d.buy('T', 1010, 5);
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: 15, costBasis: 15_050, avgEntryPrice: 1003, realizedPnl: 0 });

    // Reduce 4 @ 1020: removed floor(15050*4/15) = 4013, pnl 4080 - 4013 = 67.
    d.buy('M', 1020, 4);
    d.sell('T', 1020, 4);
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: 11, costBasis: 11_037, avgEntryPrice: 1003, realizedPnl: 67 });
    expect(pos(d, 'M')).toEqual({ market: BTC, qty: -11, costBasis: 11_037, avgEntryPrice: 1003, realizedPnl: -67 });
    expect(d.sm.account('T')?.collateral).toBe(FUND + 67);
    expect(d.sm.account('M')?.collateral).toBe(FUND - 67);

    // Flip: sell 15 @ 995 closes 11 (pnl 10945 - 11037 = -92) and opens short 4 @ 995.
    d.buy('M', 995, 15);
    d.sell('T', 995, 15);
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: -4, costBasis: 3980, avgEntryPrice: 995, realizedPnl: -25 });
    expect(pos(d, 'M')).toEqual({ market: BTC, qty: 4, costBasis: 3980, avgEntryPrice: 995, realizedPnl: 25 });

    // Close to flat: buy 4 @ 1000, short pnl 3980 - 4000 = -20; nothing left over.
    d.sell('M', 1000, 4);
    d.buy('T', 1000, 4);
    expect(pos(d, 'T')).toEqual({ market: BTC, qty: 0, costBasis: 0, avgEntryPrice: 0, realizedPnl: -45 });
    expect(pos(d, 'M')).toEqual({ market: BTC, qty: 0, costBasis: 0, avgEntryPrice: 0, realizedPnl: 45 });
    expect(d.sm.account('T')?.collateral).toBe(FUND - 45);
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
    // High leverage so max-size fills fit the max deposit; limits that let a 3e6-lot position exist.
    const d = new Driver(testConfig({ maxPositionLots: 3_000_000, maxOpenInterestLots: 3_000_000, maxTotalDeposits: 2_000_000_000_000 }, 1000));
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

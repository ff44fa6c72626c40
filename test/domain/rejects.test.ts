// Every reject code, the rule that a rejected command changes nothing but lastSeq, cancel rules,
// limits, and the single-writer seq assertion.

import { describe, it, expect } from 'vitest';
import { AssertionError } from '../../src/domain/assert.js';
import { canonicalJson } from '../../src/domain/canonical.js';
import { seq } from '../../src/domain/ints.js';
import { StateMachine } from '../../src/domain/state-machine.js';
import { REJECT_CODES, type Command, type RejectCode, type Result } from '../../src/domain/types.js';
import { BTC, Driver, testConfig } from './helpers.js';

/** Snapshot without lastSeq/nextOrderId, which a rejected command does advance. */
function stateOf(d: Driver): string {
  const { lastSeq: _l, nextOrderId: _n, ...rest } = d.sm.snapshot() as Record<string, unknown>;
  return canonicalJson(rest);
}

/** A machine with balances, positions and resting orders on both sides. */
function busy(limits: Parameters<typeof testConfig>[0] = {}): Driver {
  const d = new Driver(testConfig({ maxOpenOrdersPerAccount: 3, maxAccounts: 3, ...limits }));
  d.deposit('A', 10_000);
  d.deposit('B', 10_000);
  d.sell('B', 100, 10);
  d.buy('A', 100, 4); // A long 4, B short 4; mark 100, band 98..102
  d.buy('A', 99, 5);
  d.sell('A', 102, 2);
  d.sm.drainEffects();
  return d;
}

const seen = new Set<RejectCode>();

function expectRejectChangesNothing(d: Driver, command: Command, code: RejectCode): Result {
  d.sm.drainEffects(); // forget what earlier (accepted) commands touched
  const before = stateOf(d);
  const seqBefore = d.sm.lastSeq;
  const r = d.run(command);
  expect(r).toMatchObject({ status: 'rejected', code });
  expect(stateOf(d)).toBe(before);
  expect(d.sm.lastSeq).toBe(seqBefore + 1);
  const e = d.sm.drainEffects();
  expect(e.accounts.size + e.markets.size + e.trades.length).toBe(0);
  seen.add(code);
  return r;
}

describe('rejections', () => {
  const px = (account: string, price: number, qty: number, market = BTC, side: 'buy' | 'sell' = 'buy', tif: 'GTC' | 'IOC' = 'GTC'): Command =>
    ({ type: 'place_order', account, market, side, price, qty, tif }) as Command;
  const dep = (account: string, amount: number): Command => ({ type: 'deposit', account, amount }) as Command;
  const wd = (account: string, amount: number): Command => ({ type: 'withdraw', account, amount }) as Command;
  const cx = (account: string, orderId: number): Command => ({ type: 'cancel_order', account, orderId }) as Command;

  it('unknown_account for every command but deposit, and no account is created', () => {
    const d = busy();
    expectRejectChangesNothing(d, wd('Z', 1), 'unknown_account');
    expectRejectChangesNothing(d, px('Z', 100, 1), 'unknown_account');
    expectRejectChangesNothing(d, cx('Z', 3), 'unknown_account');
    expect(d.sm.account('Z')).toBeUndefined();
    expect(d.sm.accountIds()).toEqual(['A', 'B']);
  });

  it('unknown_market, price_out_of_range, qty_out_of_range', () => {
    const d = busy();
    expectRejectChangesNothing(d, px('A', 100, 1, 'DOGE-USD'), 'unknown_market');
    for (const p of [0, -1, 10_000_001, 1.5, Number.NaN]) expectRejectChangesNothing(d, px('A', p, 1), 'price_out_of_range');
    for (const q of [0, -3, 1_000_001, 0.5]) expectRejectChangesNothing(d, px('A', 100, q), 'qty_out_of_range');
    // Boundaries are accepted (IOC at price 1 with qty 1, in a market without a mark yet).
    expect(d.run(px('A', 1, 1, 'ETH-USD', 'buy', 'IOC')).status).toBe('accepted');
  });

  it('amount_limit_exceeded for deposits/withdrawals out of range and collateral over the cap', () => {
    const d = busy({ maxAmount: 1_000_000 });
    for (const a of [0, -5, 1.5, 1_000_001]) {
      expectRejectChangesNothing(d, dep('A', a), 'amount_limit_exceeded');
      expectRejectChangesNothing(d, wd('A', a), 'amount_limit_exceeded');
    }
    expectRejectChangesNothing(d, dep('A', 1_000_000 - 10_000 + 1), 'amount_limit_exceeded');
    expect(d.deposit('A', 1_000_000 - 10_000)).toEqual({ status: 'accepted', collateral: 1_000_000 });
    // A rejected first deposit does not create the account.
    expectRejectChangesNothing(d, dep('C', 0), 'amount_limit_exceeded');
    expect(d.sm.account('C')).toBeUndefined();
  });

  it('insufficient_collateral for orders and withdrawals', () => {
    const d = busy();
    expectRejectChangesNothing(d, px('A', 102, 1000), 'insufficient_collateral');
    expectRejectChangesNothing(d, wd('A', 10_000), 'insufficient_collateral');
  });

  it('too_many_orders counts resting GTC orders across markets; IOC is still allowed', () => {
    const d = busy(); // A rests 2 orders, limit 3
    d.buy('A', 80, 1, 'GTC', 'ETH-USD');
    expectRejectChangesNothing(d, px('A', 98, 1), 'too_many_orders');
    // Checked up front, even for an order that would fill completely.
    expectRejectChangesNothing(d, px('A', 100, 1), 'too_many_orders');
    expect(d.run(px('A', 100, 1, BTC, 'buy', 'IOC'))).toMatchObject({ status: 'accepted', fills: [{ qty: 1 }] });
    const first = d.sm.account('A')?.openOrders[0]?.orderId as number;
    expect(d.cancel('A', first).status).toBe('accepted');
    expect(d.run(px('A', 98, 1)).status).toBe('accepted');
  });

  it('too_many_accounts, while existing accounts can still deposit', () => {
    const d = busy(); // 2 of 3 accounts
    d.deposit('C', 5);
    expectRejectChangesNothing(d, dep('D', 5), 'too_many_accounts');
    expect(d.deposit('C', 5)).toEqual({ status: 'accepted', collateral: 10 });
    expect(d.sm.accountCount()).toBe(3);
  });

  it('cancel: unknown_order, not_order_owner, then success; filled or cancelled orders are unknown', () => {
    const d = busy();
    const a = d.sm.account('A');
    const bid = a?.openOrders.find((o) => o.side === 'buy');
    expect(bid).toBeDefined();
    const id = bid?.orderId as number;
    expectRejectChangesNothing(d, cx('A', 999_999), 'unknown_order');
    expectRejectChangesNothing(d, cx('B', id), 'not_order_owner');
    // The order that filled completely (A's buy of 4 at seq 4) is not resting.
    expectRejectChangesNothing(d, cx('A', 4), 'unknown_order');
    d.sm.drainEffects();
    expect(d.cancel('A', id)).toEqual({ status: 'accepted', orderId: id });
    const e = d.sm.drainEffects();
    expect([...e.accounts]).toEqual(['A']);
    expect([...e.markets]).toEqual([BTC]);
    expectRejectChangesNothing(d, cx('A', id), 'unknown_order');
    expect(d.sm.account('A')?.openOrders.map((o) => o.orderId)).not.toContain(id);
    expect(d.sm.book(BTC, 10)?.bids).toEqual([]);
  });

  it('reserved account ids (#…, the insurance fund) are unknown to every command', () => {
    const d = busy();
    expectRejectChangesNothing(d, dep('#insurance', 5), 'unknown_account');
    expectRejectChangesNothing(d, wd('#insurance', 5), 'unknown_account');
    expectRejectChangesNothing(d, px('#insurance', 100, 1), 'unknown_account');
    expectRejectChangesNothing(d, cx('#insurance', 3), 'unknown_account');
  });

  it('price_out_of_band: once a market has a mark, limit prices stay within its band', () => {
    const d = busy(); // mark 100, band ±250 bps: 98..102
    expectRejectChangesNothing(d, px('A', 97, 1), 'price_out_of_band');
    expectRejectChangesNothing(d, px('A', 103, 1, BTC, 'sell'), 'price_out_of_band');
    expect(d.run(px('A', 98, 1)).status).toBe('accepted');
  });

  it('position_limit_exceeded counts the position and resting orders on each side', () => {
    const d = busy({ maxPositionLots: 10 }); // A: long 4, resting buy 5, resting sell 2
    expectRejectChangesNothing(d, px('A', 98, 2), 'position_limit_exceeded'); // 4 + 5 + 2 > 10
    expect(d.run(px('A', 98, 1)).status).toBe('accepted'); // exactly 10
    // Reducing is always possible: B is short 4 and may buy back.
    expect(d.run(px('B', 102, 4, BTC, 'buy', 'IOC')).status).toBe('accepted');
  });

  it('open_interest_limit_exceeded caps the long positions of a market', () => {
    const d = busy({ maxOpenInterestLots: 5, maxPositionLots: 12 }); // open interest 4 after busy()
    expectRejectChangesNothing(d, px('A', 102, 2, BTC, 'buy', 'IOC'), 'open_interest_limit_exceeded');
    expect(d.run(px('A', 102, 1, BTC, 'buy', 'IOC')).status).toBe('accepted');
    expect(d.sm.openInterestOf(BTC)).toBe(5);
  });

  it('deposit_limit_exceeded caps deposits minus withdrawals over the exchange', () => {
    const d = busy({ maxTotalDeposits: 25_000 }); // 20 000 deposited
    expectRejectChangesNothing(d, dep('A', 5_001), 'deposit_limit_exceeded');
    expect(d.deposit('A', 5_000).status).toBe('accepted');
    expect(d.sm.totalDeposits).toBe(25_000);
  });

  it('covered every reject code', () => {
    expect([...seen].sort()).toEqual([...REJECT_CODES].sort());
  });
});

describe('single writer', () => {
  it('asserts consecutive seqs starting at 1', () => {
    const sm = new StateMachine(testConfig());
    const cmd: Command = { type: 'deposit', account: 'A', amount: 5 } as Command;
    expect(() => sm.apply({ seq: seq(2), tsMs: 0, command: cmd })).toThrow(AssertionError);
    expect(() => sm.apply({ seq: seq(0), tsMs: 0, command: cmd })).toThrow(AssertionError);
    expect(sm.apply({ seq: seq(1), tsMs: 0, command: cmd }).status).toBe('accepted');
    expect(() => sm.apply({ seq: seq(1), tsMs: 0, command: cmd })).toThrow(/non-consecutive seq/);
    expect(() => sm.apply({ seq: seq(3), tsMs: 0, command: cmd })).toThrow(AssertionError);
    expect(sm.lastSeq).toBe(1);
    expect(sm.apply({ seq: seq(2), tsMs: 0, command: cmd })).toEqual({ status: 'accepted', collateral: 10 });
  });

  it('an assertion inside a command poisons the machine', () => {
    const sm = new StateMachine(testConfig());
    const bad = { type: 'explode', account: 'A' } as unknown as Command;
    expect(() => sm.apply({ seq: seq(1), tsMs: 0, command: bad })).toThrow(AssertionError);
    const ok: Command = { type: 'deposit', account: 'A', amount: 5 } as Command;
    expect(() => sm.apply({ seq: seq(1), tsMs: 0, command: ok })).toThrow(/broken/);
  });

  it('rejects invalid configs by assertion', () => {
    expect(() => new StateMachine({ ...testConfig(), leverage: 0 })).toThrow(AssertionError);
    expect(() => new StateMachine({ ...testConfig(), markets: [{ symbol: 'X' }, { symbol: 'X' }] })).toThrow(AssertionError);
    expect(() => new StateMachine(testConfig({ maxPriceTicks: 2 ** 40, maxQtyLots: 2 ** 40 }))).toThrow(AssertionError);
  });
});

// The state machine under a seeded adversarial workload (sim/domain-sim.ts): after every command
// the machine has not thrown, money is conserved exactly, limits hold, no order worsened its own
// account below zero available, no liquidation left a deficit, every account is above maintenance
// or flat, and a replay gives the same state hash. SIM_SEED=<n> reproduces a run; the long run is
// `npm run sim:domain -- --commands 1000000`. Also the two scenarios of issue 10, as regressions.
import { describe, expect, it } from 'vitest';
import { ADVERSARIAL_DOMAIN, simulateDomain } from '../../sim/domain-sim.js';
import { EMBEDDED_DEFAULTS, parseConfig } from '../../src/config/schema.js';
import { HashedMachine } from '../../src/engine/hashed-machine.js';
import type { Command, Result, Seq } from '../../src/domain/types.js';

const SEED = Number(process.env.SIM_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe('adversarial simulation of the state machine', () => {
  it(`keeps every invariant after every command (SIM_SEED=${SEED})`, () => {
    for (const seed of [SEED, SEED + 1, SEED + 2]) {
      const r = simulateDomain(seed, 5000);
      expect(r.failure ?? null, `seed ${seed}: reproduce with SIM_SEED=${seed}`).toBeNull();
      expect(r.accepted).toBeGreaterThan(1000);
    }
  });

  it('with the committed default limits too', () => {
    const config = parseConfig(EMBEDDED_DEFAULTS);
    const r = simulateDomain(SEED, 3000, { ...config.domain, markets: config.domain.markets.map((m) => ({ ...m, referencePrice: 30_000 })) });
    expect(r.failure ?? null).toBeNull();
  });

  it('exercises every limit and liquidation across a few seeds', () => {
    const codes = new Set<string>();
    let liquidations = 0;
    for (let seed = 1; seed <= 4; seed++) {
      const r = simulateDomain(seed, 4000, ADVERSARIAL_DOMAIN);
      expect(r.failure ?? null).toBeNull();
      for (const c of Object.keys(r.rejected)) codes.add(c);
      liquidations += r.liquidations;
    }
    for (const c of ['insufficient_collateral', 'price_out_of_band', 'position_limit_exceeded', 'open_interest_limit_exceeded', 'deposit_limit_exceeded']) expect(codes).toContain(c);
    expect(liquidations).toBeGreaterThan(0);
  });
});

describe('issue 10 scenarios, with the committed config', () => {
  const domain = parseConfig(EMBEDDED_DEFAULTS).domain;
  const run = () => {
    const m = new HashedMachine(domain);
    let seq = 0;
    const apply = (command: Command): Result => m.apply({ seq: ++seq as Seq, tsMs: 1_700_000_000_000 + seq, command }).result;
    return { m, apply };
  };

  it('a market with no mark yet: a sweep is banded around its first fill, so no maker is left in deficit', () => {
    // Found by the adversarial simulation (SIM_SEED=1001858507): a buy swept ETH from 10 281 to
    // 41 174 in one command, and the short maker at 10 281 was liquidated with a deficit.
    const { m, apply } = run();
    for (const id of ['A', 'B', 'T']) apply({ type: 'deposit', account: id, amount: 10_000_000 } as Command);
    apply({ type: 'place_order', account: 'A', market: 'ETH-USD', side: 'sell', price: 10_281, qty: 36, tif: 'GTC' } as Command);
    apply({ type: 'place_order', account: 'B', market: 'ETH-USD', side: 'sell', price: 41_174, qty: 11, tif: 'GTC' } as Command);
    const r = apply({ type: 'place_order', account: 'T', market: 'ETH-USD', side: 'buy', price: 82_632, qty: 47, tif: 'IOC' } as Command);
    expect(r).toMatchObject({ status: 'accepted', fills: [{ makerAccount: 'A', price: 10_281, qty: 36 }] });
    expect(r.status === 'accepted' && r.bandCancelled).toEqual([expect.any(Number)]);
    expect(m.machine.mark('ETH-USD')).toBe(10_281);
    expect(r.status === 'accepted' && r.liquidated).toBeFalsy();
  });

  it('a sell @1 against a bid @30 000 with collateral 1 000 is refused: margin on the fill price', () => {
    const { m, apply } = run();
    apply({ type: 'deposit', account: 'X', amount: 1_000 } as Command);
    apply({ type: 'deposit', account: 'B', amount: 100_000_000 } as Command);
    apply({ type: 'place_order', account: 'B', market: 'BTC-USD', side: 'buy', price: 30_000, qty: 1000, tif: 'GTC' } as Command);
    const r = apply({ type: 'place_order', account: 'X', market: 'BTC-USD', side: 'sell', price: 1, qty: 1000, tif: 'IOC' } as Command);
    expect(r).toMatchObject({ status: 'rejected', code: 'insufficient_collateral' });
    expect(m.machine.account('X')).toMatchObject({ collateral: 1000, positions: [] });
  });

  it('two accounts walking a price to overflow never halt the core: every step is refused or sound', () => {
    const { m, apply } = run();
    apply({ type: 'deposit', account: 'X', amount: 10_000_000 } as Command);
    apply({ type: 'deposit', account: 'Y', amount: 10_000_000 } as Command);
    const order = (account: string, side: 'buy' | 'sell', price: number, qty: number) =>
      apply({ type: 'place_order', account, market: 'SOL-USD', side, price, qty, tif: 'GTC' } as Command);
    const codes = new Set<string>();
    for (let round = 0; round < 90; round++) {
      for (const r of [order('Y', 'sell', 1, 1_000_000), order('X', 'buy', 1, 1_000_000), order('Y', 'buy', 100_000_000, 1_000_000), order('X', 'sell', 100_000_000, 1_000_000)]) {
        if (r.status === 'rejected') codes.add(r.code);
      }
    }
    // The oversized orders are refused (position limit, band), nothing overflowed, money is intact.
    expect(codes).toContain('position_limit_exceeded');
    expect(m.machine.valueSum()).toBe(m.machine.totalDeposits);
    expect(m.machine.totalDeposits).toBe(20_000_000);
  });
});

// Test helpers for the domain: a standard config and a driver that assigns consecutive seqs,
// so tests read as a list of commands. Not a test file itself (no .test suffix).

import { StateMachine } from '../../src/domain/state-machine.js';
import { seq } from '../../src/domain/ints.js';
import type { Amount, Command, OrderId, DomainConfig, PriceTicks, QtyLots, Result, Side, TimeInForce } from '../../src/domain/types.js';

export const BTC = 'BTC-USD';
export const ETH = 'ETH-USD';

export function testConfig(overrides: Partial<DomainConfig['limits']> = {}, leverage = 10): DomainConfig {
  return {
    markets: [{ symbol: BTC }, { symbol: ETH }],
    leverage,
    limits: {
      maxOpenOrdersPerAccount: 50,
      maxPriceTicks: 10_000_000,
      maxQtyLots: 1_000_000,
      maxAmount: 1_000_000_000_000,
      maxAccounts: 100_000,
      ...overrides,
    },
  };
}

export type Accepted = Extract<Result, { status: 'accepted' }>;

/** Command builders (casts, not the ints.ts constructors: tests also send invalid values on purpose). */
export const cmd = {
  deposit: (account: string, amount: number): Command => ({ type: 'deposit', account, amount: amount as Amount }),
  withdraw: (account: string, amount: number): Command => ({ type: 'withdraw', account, amount: amount as Amount }),
  order: (account: string, market: string, side: Side, price: number, qty: number, tif: TimeInForce = 'GTC'): Command => ({
    type: 'place_order',
    account,
    market,
    side,
    price: price as PriceTicks,
    qty: qty as QtyLots,
    tif,
  }),
  cancel: (account: string, orderId: number): Command => ({ type: 'cancel_order', account, orderId: orderId as OrderId }),
};

export class Driver {
  readonly sm: StateMachine;
  private seqNext = 1;

  constructor(config: DomainConfig = testConfig()) {
    this.sm = new StateMachine(config);
  }

  run(command: Command): Result {
    const s = this.seqNext++;
    return this.sm.apply({ seq: seq(s), tsMs: 1_700_000_000_000 + s, command });
  }

  deposit(account: string, n: number): Result {
    return this.run(cmd.deposit(account, n));
  }

  withdraw(account: string, n: number): Result {
    return this.run(cmd.withdraw(account, n));
  }

  order(account: string, market: string, side: Side, price: number, qty: number, tif: TimeInForce = 'GTC'): Result {
    return this.run(cmd.order(account, market, side, price, qty, tif));
  }

  buy(account: string, price: number, qty: number, tif: TimeInForce = 'GTC', market = BTC): Accepted {
    return this.must(this.order(account, market, 'buy', price, qty, tif));
  }

  sell(account: string, price: number, qty: number, tif: TimeInForce = 'GTC', market = BTC): Accepted {
    return this.must(this.order(account, market, 'sell', price, qty, tif));
  }

  cancel(account: string, id: number): Result {
    return this.run(cmd.cancel(account, id));
  }

  /** The seq the next command will get (== the id of the next placed order). */
  get nextSeq(): number {
    return this.seqNext;
  }

  private must(r: Result): Accepted {
    if (r.status !== 'accepted') throw new Error(`expected accepted, got ${JSON.stringify(r)}`);
    return r;
  }
}

/** Tiny seeded PRNG (mulberry32) — tests only; the domain never uses randomness. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

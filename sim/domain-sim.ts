// Seeded adversarial simulation of the exchange state machine (docs/risk.md): many accounts throw
// extreme deposits and withdrawals, orders at and beyond the band and the limits, self-trades,
// crossing and reducing orders and cancels at it, and after EVERY command the checkers hold:
// the machine never throws (a business input never trips an assertion), money is conserved exactly
// (Σ(collateral − signedCostBasis) = deposits − withdrawals, Σ qty = 0 per market), positions and
// open interest stay within their limits, no order leaves its account with less available margin
// than it had below zero, no liquidation leaves a deficit, every account is above maintenance or
// flat, and a shadow machine fed the same commands agrees on every result and state hash; at the
// end a replay from scratch gives the same hash. Deterministic: the seed reproduces the run.
import { mulberry32, mixSeed, type Rng } from './prng.js';
import { HashedMachine } from '../src/engine/hashed-machine.js';
import { hashFromScratch } from '../src/engine/state-hash.js';
import { canonicalJson } from '../src/domain/canonical.js';
import { resolveRisk } from '../src/domain/risk.js';
import { INSURANCE_ACCOUNT, type Command, type DomainConfig, type Envelope, type Result, type Seq } from '../src/domain/types.js';

/** Small limits, so every limit and the band are hit often; they satisfy the bound with room. */
export const ADVERSARIAL_DOMAIN: DomainConfig = {
  markets: [{ symbol: 'BTC-USD', referencePrice: 30_000 }, { symbol: 'ETH-USD' }, { symbol: 'SOL-USD', referencePrice: 1 }],
  leverage: 10,
  limits: {
    maxOpenOrdersPerAccount: 8,
    maxPriceTicks: 100_000_000,
    maxQtyLots: 1_000_000,
    maxAmount: 10_000_000_000,
    maxAccounts: 64,
    maxPositionLots: 5_000,
    maxOpenInterestLots: 8_000,
    maxTotalDeposits: 300_000_000,
  },
  risk: { maintenanceMarginBps: 500, priceBandBps: 250, liquidationFeeBps: 50 },
};

export interface DomainSimResult {
  seed: number;
  commands: number;
  ok: boolean;
  failure?: string;
  accepted: number;
  rejected: Record<string, number>;
  fills: number;
  liquidations: number;
  stateHash: string;
}

class Violation extends Error {}

export function simulateDomain(seed: number, commands: number, config: DomainConfig = ADVERSARIAL_DOMAIN): DomainSimResult {
  const rng: Rng = mulberry32(mixSeed(seed, 7));
  const machine = new HashedMachine(config);
  const shadow = new HashedMachine(config);
  const sm = machine.machine;
  const risk = resolveRisk(config);
  const markets = config.markets.map((m) => m.symbol);
  const accounts = Array.from({ length: 24 }, (_, i) => `acct${i}`);
  const log: Envelope[] = [];
  const rejected: Record<string, number> = {};
  let accepted = 0;
  let fills = 0;
  let liquidations = 0;
  const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;

  const fail = (i: number, why: string): never => {
    throw new Violation(`command ${i + 1}: ${why}`);
  };

  // Each market drifts one way for a while, so leveraged positions get liquidated now and then.
  const trend = new Map(markets.map((m) => [m, 0]));
  const price = (market: string): number => {
    if (rng() < 0.01) trend.set(market, pick([-1, 0, 1]));
    const mark = sm.mark(market) ?? int(1, 100_000);
    const r = rng();
    if (r < 0.03) return pick([1, config.limits.maxPriceTicks, config.limits.maxPriceTicks + 1, 0]); // extremes, in and out of range
    if (r < 0.1) return Math.max(1, Math.round(mark * (0.9 + rng() * 0.2))); // often outside the band
    const drift = trend.get(market)! * 0.02;
    return Math.max(1, Math.round(mark * (1 - 0.025 + drift + rng() * 0.05))); // around the band's edge in the trend's direction
  };
  const qty = (): number => {
    const r = rng();
    if (r < 0.03) return pick([1, config.limits.maxQtyLots, risk.maxPositionLots, risk.maxPositionLots + 1]);
    if (r < 0.2) return int(100, 3000);
    return int(1, 50);
  };

  const next = (): Command => {
    const account = rng() < 0.01 ? INSURANCE_ACCOUNT : pick(accounts);
    const r = rng();
    if (r < 0.1) {
      const amount = rng() < 0.05 ? pick([config.limits.maxAmount, config.limits.maxAmount + 1, 0, -5]) : int(1, 5_000_000);
      return { type: 'deposit', account, amount } as Command;
    }
    if (r < 0.16) {
      const a = sm.account(account);
      const amount = rng() < 0.5 && a ? Math.max(1, Math.floor(Math.abs(a.collateral) * rng())) : int(1, 10_000_000);
      return { type: 'withdraw', account, amount } as Command;
    }
    if (r < 0.24) {
      const a = sm.account(account);
      const own = a?.openOrders.map((o) => o.orderId) ?? [];
      const orderId = own.length > 0 && rng() < 0.8 ? pick(own) : int(1, Math.max(1, log.length));
      return { type: 'cancel_order', account, orderId } as Command;
    }
    const market = pick(markets);
    const a = sm.account(account);
    const position = a?.positions.find((p) => p.market === market)?.qty ?? 0;
    // Reducing orders: the opposite side, at most the position.
    if (position !== 0 && rng() < 0.25) {
      return { type: 'place_order', account, market, side: position > 0 ? 'sell' : 'buy', price: price(market), qty: Math.max(1, Math.floor(Math.abs(position) * rng())), tif: rng() < 0.5 ? 'IOC' : 'GTC' } as Command;
    }
    return { type: 'place_order', account, market, side: rng() < 0.5 ? 'buy' : 'sell', price: price(market), qty: qty(), tif: rng() < 0.3 ? 'IOC' : 'GTC' } as Command;
  };

  try {
    for (let i = 0; i < commands; i++) {
      const command = next();
      const env: Envelope = { seq: (i + 1) as Seq, tsMs: 1_700_000_000_000 + i, command };
      const before = command.type === 'place_order' ? sm.riskOf(command.account) : undefined;
      let result: Result;
      try {
        result = machine.apply(env).result;
      } catch (err) {
        fail(i, `the machine threw on a business input: ${err instanceof Error ? err.message : String(err)} — ${canonicalJson(command)}`);
      }
      const shadowOut = shadow.apply(env);
      if (canonicalJson(shadowOut.result) !== canonicalJson(result!) || shadowOut.stateHash !== machine.stateHash) fail(i, 'a second machine fed the same commands disagrees');
      log.push(env);
      const r = result!;
      if (r.status === 'rejected') rejected[r.code] = (rejected[r.code] ?? 0) + 1;
      else accepted += 1;
      // Money is conserved exactly; positions net to zero per market; limits hold.
      if (sm.valueSum() !== sm.totalDeposits) fail(i, `money not conserved: Σ(collateral − signedCost) ${sm.valueSum()} ≠ deposits ${sm.totalDeposits}`);
      if (sm.totalDeposits > risk.maxTotalDeposits) fail(i, 'deposits over their cap');
      for (const m of markets) {
        let net = 0;
        let longs = 0;
        for (const id of sm.accountIds()) {
          const q = sm.account(id)!.positions.find((p) => p.market === m)?.qty ?? 0;
          net += q;
          longs += Math.max(q, 0);
          if (id !== INSURANCE_ACCOUNT && Math.abs(q) > risk.maxPositionLots) fail(i, `${id} holds ${q} lots of ${m}`);
        }
        if (net !== 0) fail(i, `positions in ${m} net to ${net}`);
        if (longs !== sm.openInterestOf(m) || longs > risk.maxOpenInterestLots) fail(i, `open interest in ${m}: ${longs} (tracked ${sm.openInterestOf(m)})`);
      }
      if (r.status === 'accepted') {
        fills += r.fills?.length ?? 0;
        for (const l of r.liquidated ?? []) {
          liquidations += 1;
          if (l.deficit !== 0) fail(i, `liquidation of ${l.account} left a deficit of ${l.deficit}`);
        }
        if (command.type === 'place_order' && before && !(r.liquidated ?? []).some((l) => l.account === command.account)) {
          const after = sm.riskOf(command.account)!;
          if (after.available < 0 && after.available < before.available) fail(i, `${command.account}'s own order took available from ${before.available} to ${after.available}`);
        }
      }
      for (const id of sm.accountIds()) {
        if (id === INSURANCE_ACCOUNT) continue;
        const risked = sm.riskOf(id)!;
        const flat = sm.account(id)!.positions.every((p) => p.qty === 0);
        if (!flat && risked.equity < risked.maintenanceMargin) fail(i, `${id} below maintenance after the command (equity ${risked.equity} < ${risked.maintenanceMargin})`);
      }
    }
    // Replay from scratch: the same commands give the same state hash, and it matches a full rehash.
    const replayed = new HashedMachine(config);
    for (const env of log) replayed.apply(env);
    if (replayed.stateHash !== machine.stateHash) throw new Violation('replay gives a different state hash');
    if (hashFromScratch(sm) !== machine.stateHash) throw new Violation('the incremental state hash differs from a full rehash');
  } catch (err) {
    if (!(err instanceof Violation)) throw err;
    return { seed, commands, ok: false, failure: err.message, accepted, rejected, fills, liquidations, stateHash: machine.stateHash };
  }
  return { seed, commands, ok: true, accepted, rejected, fills, liquidations, stateHash: machine.stateHash };
}

// The risk arithmetic of docs/risk.md: resolved risk parameters and the bound they prove, marks and
// the price band, equity, initial and maintenance margin, worst-case positions.
// Invariants: pure functions of their arguments (no I/O, clock or randomness); integers only;
// products with basis points are exact (BigInt), so rounding is always the documented ceil/floor;
// a config that passes boundsProblem() keeps every value these functions can produce within the
// safe-integer range (the state machine asserts it at construction, parseConfig at load).
import { assert } from './assert.js';
import { ceilDiv, type AccountState } from './positions.js';
import type { DomainConfig } from './types.js';

export interface RiskParams {
  leverage: number;
  maintenanceMarginBps: number;
  priceBandBps: number;
  liquidationFeeBps: number;
  maxPriceTicks: number;
  maxQtyLots: number;
  maxPositionLots: number;
  maxOpenInterestLots: number;
  maxTotalDeposits: number;
  markets: number;
}

const BPS = 10_000;

/** The config's risk parameters with their documented defaults. */
export function resolveRisk(config: DomainConfig): RiskParams {
  const l = config.limits;
  const maxPositionLots = l.maxPositionLots ?? l.maxQtyLots;
  // Defaults: 5% maintenance and a ±2.5% band, or half the initial margin and a quarter of it for
  // leverage above 10 (so the documented relations hold for any leverage up to 2500).
  const maintenanceMarginBps = config.risk?.maintenanceMarginBps ?? Math.min(500, Math.floor(BPS / (2 * config.leverage)));
  return {
    leverage: config.leverage,
    maintenanceMarginBps,
    priceBandBps: config.risk?.priceBandBps ?? Math.max(1, Math.min(250, Math.floor(maintenanceMarginBps / 2))),
    liquidationFeeBps: config.risk?.liquidationFeeBps ?? Math.min(50, maintenanceMarginBps),
    maxPriceTicks: l.maxPriceTicks,
    maxQtyLots: l.maxQtyLots,
    maxPositionLots,
    maxOpenInterestLots: l.maxOpenInterestLots ?? maxPositionLots * 10,
    maxTotalDeposits: l.maxTotalDeposits ?? l.maxAmount * 1000,
    markets: config.markets.length,
  };
}

/**
 * Why these parameters could reach an unsafe integer or a gap loss, or null when they cannot
 * (docs/risk.md, "Bounded by construction"): B = D + 2·K·OI·P + 2·K·maxPositionLots·P, 4·B ≤ 2^53.
 */
export function boundsProblem(r: RiskParams): string | null {
  const big = (n: number) => BigInt(n);
  const B =
    big(r.maxTotalDeposits) +
    2n * big(r.markets) * big(r.maxOpenInterestLots) * big(r.maxPriceTicks) +
    2n * big(r.markets) * big(r.maxPositionLots) * big(r.maxPriceTicks);
  if (4n * B > big(Number.MAX_SAFE_INTEGER)) {
    return `limits could overflow: maxTotalDeposits + 2·markets·(maxOpenInterestLots + maxPositionLots)·maxPriceTicks = ${B} must be ≤ ${big(Number.MAX_SAFE_INTEGER) / 4n}`;
  }
  if (BPS < r.maintenanceMarginBps * r.leverage) return `initial margin (1/leverage = ${BPS / r.leverage} bps) must be ≥ maintenanceMarginBps (${r.maintenanceMarginBps})`;
  if (r.maintenanceMarginBps < 2 * r.priceBandBps) return `maintenanceMarginBps (${r.maintenanceMarginBps}) must be ≥ 2 × priceBandBps (${r.priceBandBps}): else one command could move a mark past an account's margin`;
  if (r.priceBandBps < 1 || r.priceBandBps >= BPS) return 'priceBandBps must be in 1..9999';
  if (r.liquidationFeeBps < 0 || r.liquidationFeeBps > r.maintenanceMarginBps) return 'liquidationFeeBps must be in 0..maintenanceMarginBps';
  return null;
}

/** ceil(n · bps / 10000), exact. */
export function bpsCeil(n: number, bps: number): number {
  if (n === 0 || bps === 0) return 0;
  const x = n * bps;
  // Exact in doubles while the product is a safe integer (nearly always): no BigInt on the hot path
  // (margin checks run it per position and per resting order of every examined account).
  if (x >= 0 && Number.isSafeInteger(x)) return ceilDiv(x, BPS);
  const v = (BigInt(n) * BigInt(bps) + BigInt(BPS - 1)) / BigInt(BPS);
  return Number(v);
}

/** The prices an order or a trade may have around `mark`: [ceil(m(1−b)), floor(m(1+b))]. */
export function band(mark: number, bps: number): { lo: number; hi: number } {
  const m = BigInt(mark);
  const lo = (m * BigInt(BPS - bps) + BigInt(BPS - 1)) / BigInt(BPS);
  const hi = (m * BigInt(BPS + bps)) / BigInt(BPS);
  return { lo: Math.max(1, Number(lo)), hi: Number(hi) };
}

/** Current marks by market (a position implies a mark: it came from a trade). */
export type Marks = ReadonlyMap<string, number>;

function markOf(marks: Marks, market: string): number {
  const m = marks.get(market);
  assert(m !== undefined, `position in ${market} without a mark`);
  return m;
}

/** Signed cost: +costBasis long, −costBasis short. */
export function signedCost(qty: number, costBasis: number): number {
  return qty >= 0 ? costBasis : -costBasis;
}

/** collateral + Σ (qty·mark − signedCost). */
export function equity(a: AccountState, marks: Marks): number {
  let e = a.collateral;
  for (const p of a.positions.values()) {
    if (p.qty === 0) continue;
    e += p.qty * markOf(marks, p.market) - signedCost(p.qty, p.costBasis);
  }
  return e;
}

/** Σ margin of positions at mark and resting orders at their price, at `rate(notional)`. */
function margin(a: AccountState, marks: Marks, rate: (notional: number) => number): number {
  let m = 0;
  for (const p of a.positions.values()) if (p.qty !== 0) m += rate(Math.abs(p.qty) * markOf(marks, p.market));
  for (const o of a.orders.values()) m += rate(o.price * o.remaining);
  return m;
}

export function initialMargin(a: AccountState, marks: Marks, leverage: number): number {
  return margin(a, marks, (n) => ceilDiv(n, leverage));
}

export function maintenanceMargin(a: AccountState, marks: Marks, mmBps: number): number {
  return margin(a, marks, (n) => bpsCeil(n, mmBps));
}

/** The position the account could reach in `market` if its resting orders filled: [short, long]. */
export function worstCase(a: AccountState, market: string): { low: number; high: number } {
  const pos = a.positions.get(market)?.qty ?? 0;
  let buys = 0;
  let sells = 0;
  for (const o of a.orders.values()) {
    if (o.market !== market) continue;
    if (o.side === 'buy') buys += o.remaining;
    else sells += o.remaining;
  }
  return { low: pos - sells, high: pos + buys };
}

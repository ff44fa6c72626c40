// Accounts' positions and margin, the arithmetic half of the state machine (state-machine.ts):
// exact integer division, initial margin, the "only reduces the position" test, and how one side of
// a fill changes a position (cost basis, realized PnL credited to collateral, flips).
// Invariants: pure functions of their arguments (no I/O, clock or randomness); integers only, every
// sum asserted to be a safe integer; costBasis >= 0 and 0 exactly when the position is flat.
import { assert } from './assert.js';
import type { RestingOrder } from './book.js';
import type { AccountId, OrderId, Side } from './types.js';

export interface PositionState {
  readonly market: string;
  /** Signed: > 0 long, < 0 short. */
  qty: number;
  /** Σ price*qty of the lots still open; always >= 0, and 0 when qty === 0. */
  costBasis: number;
  realizedPnl: number;
}

export interface AccountState {
  readonly id: AccountId;
  collateral: number;
  readonly positions: Map<string, PositionState>;
  /** Resting orders, keyed by id. Insertion order == ascending id, but views sort anyway. */
  readonly orders: Map<OrderId, RestingOrder>;
}

/** realizedPnl saturates here (docs/risk.md): it is a display value, never money. */
export const PNL_DISPLAY_MAX = 2 ** 52;

export function safe(n: number, what: string): number {
  assert(Number.isSafeInteger(n), `integer overflow in ${what}: ${n}`);
  return n;
}

/** floor(a / b) for safe integers a and b > 0, exact even where a / b rounds in floating point. */
export function floorDiv(a: number, b: number): number {
  assert(Number.isSafeInteger(a) && Number.isSafeInteger(b) && b > 0, 'floorDiv: bad operands');
  let q = Math.floor(a / b);
  // a / b is correctly rounded, so q is off by at most one; fix it with exact integer products.
  while (q * b > a) q -= 1;
  while ((q + 1) * b <= a) q += 1;
  return q;
}

/** ceil(a / b) for safe integers a and b > 0. */
export function ceilDiv(a: number, b: number): number {
  return -floorDiv(-a, b);
}

/** Initial margin: ceil(costBasis / L) per position + ceil(price * remaining / L) per resting order. */
export function marginRequired(a: AccountState, leverage: number): number {
  let m = 0;
  for (const p of a.positions.values()) m += ceilDiv(p.costBasis, leverage);
  for (const o of a.orders.values()) m += ceilDiv(o.price * o.remaining, leverage);
  return safe(m, 'marginRequired');
}

/**
 * An order only shrinks the position (even if every already-resting order on the same side
 * fills first), so it needs no margin: a trader can always close.
 */
export function isReducing(a: AccountState, market: string, side: Side, qty: number): boolean {
  const p = a.positions.get(market);
  if (p === undefined || p.qty === 0) return false;
  const reducingSide: Side = p.qty > 0 ? 'sell' : 'buy';
  if (side !== reducingSide) return false;
  let committed = 0;
  for (const o of a.orders.values()) {
    if (o.market === market && o.side === side) committed += o.remaining;
  }
  return qty <= Math.abs(p.qty) - committed;
}

/** Applies one side of a fill. signedQty > 0 buys, < 0 sells. Realized PnL goes to collateral. */
export function fillPosition(a: AccountState, market: string, signedQty: number, price: number): void {
  assert(signedQty !== 0, 'zero fill');
  let p = a.positions.get(market);
  if (p === undefined) {
    p = { market, qty: 0, costBasis: 0, realizedPnl: 0 };
    a.positions.set(market, p);
  }
  const fillQty = Math.abs(signedQty);
  if (p.qty === 0 || Math.sign(p.qty) === Math.sign(signedQty)) {
    // Opening or adding.
    p.costBasis = safe(p.costBasis + price * fillQty, 'costBasis');
    p.qty = safe(p.qty + signedQty, 'position qty');
    return;
  }
  const absQty = Math.abs(p.qty);
  const long = p.qty > 0;
  const closed = Math.min(fillQty, absQty);
  // Pro-rata share of the cost of the closed lots; exact via bigint (costBasis * closed may
  // exceed 2^53). Closing everything removes all of it, so no rounding residue is left.
  const removedCost =
    closed === absQty ? p.costBasis : Number((BigInt(p.costBasis) * BigInt(closed)) / BigInt(absQty));
  const proceeds = safe(closed * price, 'closed notional');
  const pnl = long ? proceeds - removedCost : removedCost - proceeds;
  // Display only (the money is in collateral): saturate, so a long-lived position cannot overflow it.
  p.realizedPnl = Math.max(-PNL_DISPLAY_MAX, Math.min(PNL_DISPLAY_MAX, p.realizedPnl + pnl));
  a.collateral = safe(a.collateral + pnl, 'collateral');
  p.costBasis -= removedCost;
  p.qty = long ? p.qty - closed : p.qty + closed;
  const flipQty = fillQty - closed;
  if (flipQty > 0) {
    assert(p.qty === 0 && p.costBasis === 0, 'flip from a non-flat position');
    p.qty = signedQty > 0 ? flipQty : -flipQty;
    p.costBasis = safe(price * flipQty, 'costBasis');
  }
  assert(p.costBasis >= 0 && (p.qty !== 0 || p.costBasis === 0), 'costBasis invariant');
}

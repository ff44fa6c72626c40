// Constructors for the branded integer types in ./types.ts.
// Invariant: a branded value is always a safe integer within its domain; the brand is only
// ever applied here, after the check, so the compile-time brand means something at runtime.
// These assert (they are for values the caller already knows are valid); validating untrusted
// input is the API's job, and the state machine re-checks commands as business rejections.

import { assert } from './assert.js';
import type { Amount, OrderId, PriceTicks, QtyLots, Seq } from './types.js';

/** Log position. 0 means "nothing applied yet"; the first command has seq 1. */
export function seq(n: number): Seq {
  assert(Number.isSafeInteger(n) && n >= 0, `seq must be a safe integer >= 0, got ${n}`);
  return n as Seq;
}

/** A limit price is always strictly positive. */
export function priceTicks(n: number): PriceTicks {
  assert(Number.isSafeInteger(n) && n > 0, `priceTicks must be a safe integer > 0, got ${n}`);
  return n as PriceTicks;
}

/** >= 0 because remaining / resting / cancelled quantities can legitimately be zero. */
export function qtyLots(n: number): QtyLots {
  assert(Number.isSafeInteger(n) && n >= 0, `qtyLots must be a safe integer >= 0, got ${n}`);
  return n as QtyLots;
}

/**
 * Money in minor units. Any sign: collateral can go negative after adverse fills (there is
 * no liquidation in this version). Command amounts are range-checked by the state machine.
 */
export function amount(n: number): Amount {
  assert(Number.isSafeInteger(n), `amount must be a safe integer, got ${n}`);
  return n as Amount;
}

/** Order ids are the seq of the place_order command, so they start at 1. */
export function orderId(n: number): OrderId {
  assert(Number.isSafeInteger(n) && n > 0, `orderId must be a safe integer > 0, got ${n}`);
  return n as OrderId;
}

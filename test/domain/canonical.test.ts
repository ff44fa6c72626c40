// canonicalJson and the branded-integer constructors.

import { describe, it, expect } from 'vitest';
import { AssertionError, assert } from '../../src/domain/assert.js';
import { canonicalJson } from '../../src/domain/canonical.js';
import { amount, orderId, priceTicks, qtyLots, seq } from '../../src/domain/ints.js';

describe('canonicalJson', () => {
  it('sorts keys recursively and is independent of insertion order', () => {
    const a = { b: 1, a: { d: [3, { z: 1, y: 'x' }], c: null }, e: true };
    const b = { e: true, a: { c: null, d: [3, { y: 'x', z: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe('{"a":{"c":null,"d":[3,{"y":"x","z":1}]},"b":1,"e":true}');
    expect(canonicalJson(b)).toBe(canonicalJson(a));
  });

  it('escapes strings and keys like JSON, omits undefined properties, normalises -0', () => {
    expect(canonicalJson({ 'q"k': 'a\n"b', u: undefined, z: -0 })).toBe('{"q\\"k":"a\\n\\"b","z":0}');
  });

  it('rejects floats, non-finite numbers and non-plain values', () => {
    for (const v of [1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60, new Map(), new Set(), new Date(0), 1n, () => 1, [undefined]]) {
      expect(() => canonicalJson({ v })).toThrow(AssertionError);
    }
    expect(() => canonicalJson(undefined)).toThrow(AssertionError);
  });
});

describe('ints', () => {
  it('accepts valid values and asserts on invalid ones', () => {
    expect(seq(0)).toBe(0);
    expect(priceTicks(7)).toBe(7);
    expect(qtyLots(0)).toBe(0);
    expect(amount(-3)).toBe(-3);
    expect(orderId(1)).toBe(1);
    expect(() => seq(-1)).toThrow(AssertionError);
    expect(() => priceTicks(0)).toThrow(AssertionError);
    expect(() => qtyLots(1.5)).toThrow(AssertionError);
    expect(() => amount(2 ** 53)).toThrow(AssertionError);
    expect(() => orderId(0)).toThrow(AssertionError);
  });

  it('assert narrows and names its error', () => {
    expect(() => assert(false, 'boom')).toThrow(expect.objectContaining({ name: 'AssertionError', message: 'boom' }));
    expect(() => assert(1, 'fine')).not.toThrow();
  });
});

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

describe('sameData', () => {
  it('agrees with comparing canonicalJson strings on random plain data, including near misses', async () => {
    const { sameData } = await import('../../src/domain/canonical.js');
    const { mulberry32 } = await import('../../sim/prng.js');
    const rnd = mulberry32(11);
    const gen = (depth: number): unknown => {
      const r = rnd();
      if (depth > 3 || r < 0.3) return [null, true, false, 0, -0, 1, -7, 'a', 'b', undefined][Math.floor(rnd() * 10)];
      if (r < 0.6) return Array.from({ length: Math.floor(rnd() * 3) }, () => gen(depth + 1) ?? null);
      const o: Record<string, unknown> = {};
      for (const k of ['x', 'y', 'z'].slice(0, Math.floor(rnd() * 4))) o[k] = gen(depth + 1);
      return o;
    };
    const mutate = (v: unknown): unknown => (rnd() < 0.5 ? v : JSON.parse(JSON.stringify(v ?? null).replace(/1/, '2').replace(/"x"/, '"y"')));
    for (let i = 0; i < 5000; i++) {
      const a = gen(0) ?? null;
      const b = mutate(structuredClone(a));
      expect(sameData(a, b)).toBe(canonicalJson(a) === canonicalJson(b));
    }
    expect(sameData({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(sameData({ a: 0 }, { a: -0 })).toBe(true);
    expect(sameData([1], { 0: 1 })).toBe(false);
    expect(sameData(1.5, 1.5)).toBe(false);
  });
});

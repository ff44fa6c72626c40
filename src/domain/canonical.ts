// Canonical JSON: one byte-exact string per value, so equal states hash equally.
// Invariants: object keys are sorted (by UTF-16 code unit, i.e. default sort) at every depth;
// no whitespace; numbers must be safe integers (domain state never holds floats, and a float
// would make the hash depend on number formatting); only plain data is accepted — Maps, Sets,
// class instances, bigint, functions and symbols are rejected by assertion rather than
// silently serialized as {} the way JSON.stringify would.
// Object properties whose value is undefined are omitted (as JSON.stringify does), so an
// absent optional field and an explicitly-undefined one serialize identically.

import { assert } from './assert.js';

export function canonicalJson(value: unknown): string {
  const w = new Writer();
  w.write(value);
  return w.out;
}

/**
 * Appends to one string (V8 ropes: cheaper than an array of parts and a join) and keeps the path of
 * the value being written as a stack of keys, turned into text only when an assertion fails: the
 * state hash runs this on every touched account of every command.
 */
class Writer {
  out = '';
  private readonly path: Array<string | number> = [];

  private where(): string {
    return '$' + this.path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('');
  }

  write(value: unknown): void {
    if (value === null) {
      this.out += 'null';
      return;
    }
    switch (typeof value) {
      case 'string':
        this.out += JSON.stringify(value);
        return;
      case 'boolean':
        this.out += value ? 'true' : 'false';
        return;
      case 'number':
        if (!Number.isSafeInteger(value)) assert(false, `canonicalJson: non-integer number ${value} at ${this.where()}`);
        // -0 would print as "0" anyway; normalising keeps "equal value => equal string".
        this.out += value === 0 ? '0' : String(value);
        return;
      case 'object':
        break;
      default:
        assert(false, `canonicalJson: unsupported ${typeof value} at ${this.where()}`);
    }
    if (Array.isArray(value)) {
      this.out += '[';
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (item === undefined) assert(false, `canonicalJson: undefined array item at ${this.where()}[${i}]`);
        if (i > 0) this.out += ',';
        this.path.push(i);
        this.write(item);
        this.path.pop();
      }
      this.out += ']';
      return;
    }
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) assert(false, `canonicalJson: non-plain object at ${this.where()}`);
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    this.out += '{';
    let first = true;
    for (const key of keys) {
      const v = record[key];
      if (v === undefined) continue;
      if (!first) this.out += ',';
      first = false;
      this.out += JSON.stringify(key) + ':';
      this.path.push(key);
      this.write(v);
      this.path.pop();
    }
    this.out += '}';
  }
}

/**
 * canonicalJson(a) === canonicalJson(b), without building either string (a follower compares every
 * stored result with its own): same plain data, key order ignored, undefined properties absent.
 * Values canonicalJson would refuse (non-integers, non-plain objects) compare unequal here; the
 * caller's own canonicalJson of the mismatch then reports them.
 */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return typeof a !== 'number' || Number.isSafeInteger(a);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') {
    // 0 and -0 are one value in canonical JSON.
    return typeof a === 'number' && typeof b === 'number' && a === 0 && b === 0;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] === undefined || !sameData(a[i], bb[i])) return false;
    return true;
  }
  const pa = Object.getPrototypeOf(a);
  const pb = Object.getPrototypeOf(b);
  if ((pa !== Object.prototype && pa !== null) || (pb !== Object.prototype && pb !== null)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  let na = 0;
  for (const k of Object.keys(ra)) {
    if (ra[k] === undefined) continue;
    na++;
    if (!sameData(ra[k], rb[k])) return false;
  }
  let nb = 0;
  for (const k of Object.keys(rb)) if (rb[k] !== undefined) nb++;
  return na === nb;
}

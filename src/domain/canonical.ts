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
  const parts: string[] = [];
  write(value, parts, '$');
  return parts.join('');
}

function write(value: unknown, out: string[], path: string): void {
  if (value === null) {
    out.push('null');
    return;
  }
  switch (typeof value) {
    case 'string':
      out.push(JSON.stringify(value));
      return;
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      assert(Number.isSafeInteger(value), `canonicalJson: non-integer number ${value} at ${path}`);
      // -0 would print as "0" anyway; normalising keeps "equal value => equal string".
      out.push(String(value === 0 ? 0 : value));
      return;
    case 'object':
      break;
    default:
      assert(false, `canonicalJson: unsupported ${typeof value} at ${path}`);
  }
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      assert(item !== undefined, `canonicalJson: undefined array item at ${path}[${i}]`);
      if (i > 0) out.push(',');
      write(item, out, `${path}[${i}]`);
    }
    out.push(']');
    return;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  assert(proto === Object.prototype || proto === null, `canonicalJson: non-plain object at ${path}`);
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  out.push('{');
  let first = true;
  for (const key of keys) {
    const v = record[key];
    if (v === undefined) continue;
    if (!first) out.push(',');
    first = false;
    out.push(JSON.stringify(key), ':');
    write(v, out, `${path}.${key}`);
  }
  out.push('}');
}

// bpsCeil's double-precision fast path agrees with exact BigInt arithmetic, near the edges too.
import { describe, expect, it } from 'vitest';
import { bpsCeil } from '../../src/domain/risk.js';
import { mulberry32 } from '../../sim/prng.js';

const exact = (n: number, bps: number) => Number((BigInt(n) * BigInt(bps) + 9999n) / 10000n);

describe('bpsCeil', () => {
  it('equals ⌈n·bps/10⁴⌉ computed with BigInt, for random and edge operands', () => {
    const rnd = mulberry32(7);
    const cases: Array<[number, number]> = [[1, 1], [9999, 1], [10_000, 1], [10_001, 1], [Number.MAX_SAFE_INTEGER, 1], [Math.floor(Number.MAX_SAFE_INTEGER / 500), 500], [Math.floor(Number.MAX_SAFE_INTEGER / 500) + 1, 500]];
    for (let i = 0; i < 20_000; i++) {
      const bps = 1 + Math.floor(rnd() * 10_000);
      const n = Math.floor(rnd() * 2 ** (1 + Math.floor(rnd() * 52)));
      cases.push([n, bps]);
    }
    for (const [n, bps] of cases) expect(bpsCeil(n, bps)).toBe(exact(n, bps));
  });
});

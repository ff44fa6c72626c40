// The client-id filter the SQLite log consults before its index: never a false negative (an id
// that was added always answers maybe, so idempotency stays exact), few false positives, and it
// grows by stages past its first capacity.
import { describe, expect, it } from 'vitest';
import { ClientIdFilter } from '../../src/log/client-id-filter.js';

describe('ClientIdFilter', () => {
  it('has no false negatives and about 1% false positives across several growth stages', () => {
    const f = new ClientIdFilter();
    const N = 300_000; // past the first stage (65 536) and the next two
    for (let i = 0; i < N; i++) f.add(`client-${i}`);
    for (let i = 0; i < N; i++) expect(f.mayContain(`client-${i}`)).toBe(true);
    let fp = 0;
    const M = 100_000;
    for (let i = 0; i < M; i++) if (f.mayContain(`other-${i}`)) fp++;
    // One stage at ~10 bits per id and 7 probes is ~0.8% false positives; stages add up.
    expect(fp / M).toBeLessThan(0.03);
    expect(f.bytes).toBeLessThan(N * 4); // a few bits per id, not a copy of the ids
  });
});

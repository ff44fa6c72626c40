// LagTracker: lag per newly visible seq, observers independent, memory pruned below every watermark.
import { describe, expect, it } from 'vitest';
import { LagTracker } from '../../bench/lib/lag.js';
import { summarize } from '../../bench/lib/stats.js';

describe('LagTracker', () => {
  it('records one lag per seq an observer newly covers and forgets what everyone has seen', () => {
    const t = new LagTracker();
    t.addObserver('near');
    t.addObserver('far');
    t.committed(1, 3, 100);
    t.committed(4, 4, 110);
    t.seen('near', 3, 105); // 3 seqs, 5 ms each
    t.seen('near', 2, 200); // going back is ignored
    t.seen('near', 4, 111); // 1 ms
    expect(summarize(t.histogramOf('near'))).toMatchObject({ n: 4, minMs: 1, maxMs: 5 });
    expect(t.pending).toBe(4); // far has seen nothing yet
    t.seen('far', 4, 150);
    expect(summarize(t.histogramOf('far'))).toMatchObject({ n: 4, minMs: 40, maxMs: 50 });
    expect(t.pending).toBe(0);
  });
});

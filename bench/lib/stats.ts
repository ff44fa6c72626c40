// Latency bookkeeping shared by the benchmarks: HdrHistograms in microseconds (integer buckets keep
// sub-millisecond resolution) and a summary in milliseconds. Percentiles are nearest-rank.
import { build, type Histogram } from 'hdr-histogram-js';

export type { Histogram };

export function histogram(): Histogram {
  return build({ numberOfSignificantValueDigits: 3 });
}

export const recordMs = (h: Histogram, ms: number): void => h.recordValue(Math.max(1, Math.round(ms * 1000)));

export interface Summary {
  n: number;
  minMs: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export function summarize(h: Histogram): Summary {
  const ms = (us: number) => us / 1000;
  if (h.totalCount === 0) return { n: 0, minMs: NaN, p50Ms: NaN, p99Ms: NaN, p999Ms: NaN, maxMs: NaN };
  return {
    n: h.totalCount,
    minMs: ms(h.minNonZeroValue),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    maxMs: ms(h.maxValue),
  };
}

/** "12.3" for finite numbers, "–" otherwise. */
export const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : '–');

/** a/b as "1.23×", "–" when undefined. */
export const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}×` : '–');

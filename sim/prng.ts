// Seeded pseudo-random numbers for the simulated network (jitter, loss) and anything else that
// needs reproducible noise. Invariants: the output depends only on the seed (no clock, no
// Math.random), values are in [0, 1), and the same seed always yields the same sequence, so a
// benchmark or simulation run can be reproduced from the seed it prints.

/** A stream of uniform numbers in [0, 1). */
export type Rng = () => number;

/**
 * mulberry32: tiny 32-bit-state generator. Statistically weak but fast and more than good enough
 * for network jitter; chosen because its whole state is one integer, so seeding is trivial.
 */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Derive an independent seed for sub-stream `stream` of `seed` (murmur3 finaliser). Used so each
 * connection direction gets its own generator: draws on one direction never shift another's
 * sequence, which keeps a direction's jitter reproducible however connections interleave.
 */
export function mixSeed(seed: number, stream: number): number {
  let h = ((seed >>> 0) ^ Math.imul((stream >>> 0) + 1, 0x9e3779b9)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

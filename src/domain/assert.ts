// Invariant checks for the domain (and anyone else who wants them).
// assert() is for broken invariants only — a bug or a corrupted log. Business problems
// (not enough collateral, unknown order, ...) are never thrown: they are returned as
// reject codes so they can be stored in the log and replayed identically.

export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssertionError';
  }
}

export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new AssertionError(msg);
}

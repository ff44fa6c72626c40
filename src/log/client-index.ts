// The idempotency index: client id → seq for the newest `window` entries of the log, in memory, so
// "was this client id used?" (asked for nearly every command, whose answer is nearly always "no")
// costs a Map lookup instead of an index in the log's file (an SQLite UNIQUE index cost ~15 µs of
// CPU per command, measured). Rebuilt from the log when the log opens.
// Invariants: holds exactly the ids of seqs (last − window, last]; a ring of the same ids in seq
// order (ring[seq % window]) says which id leaves when a new one enters, so memory is bounded by
// `window` ids whatever the rate. Ids older than the window are forgotten: a retry that late is a
// new command (docs/order-entry.md, "Idempotency window").
import { assert } from '../domain/assert.js';

export class ClientIndex {
  private readonly seqOf = new Map<string, number>();
  private readonly ring: (string | undefined)[];
  private last = 0;

  constructor(readonly window: number) {
    assert(Number.isInteger(window) && window >= 1, `idempotency window ${window} must be a positive integer`);
    this.ring = new Array<string | undefined>(Math.min(window, 1 << 16));
  }

  get size(): number {
    return this.seqOf.size;
  }

  /** The seq that used `clientId`, if it is within the window. */
  get(clientId: string): number | undefined {
    return this.seqOf.get(clientId);
  }

  /** Records `clientId` at seq (= last + 1); forgets the id that falls out of the window. */
  add(clientId: string, seq: number): void {
    assert(seq === this.last + 1, `client index: seq ${seq} after ${this.last}`);
    const slot = seq % this.window;
    // The ring grows up to `window` as the log does, so a small log costs little memory.
    if (slot >= this.ring.length && this.ring.length < this.window) this.ring.length = Math.min(this.window, Math.max(slot + 1, this.ring.length * 2));
    // The id leaving the window was used once within it (the log refuses a reused id), so it can be
    // deleted without looking it up first.
    const old = this.ring[slot];
    if (old !== undefined) this.seqOf.delete(old);
    this.ring[slot] = clientId;
    this.seqOf.set(clientId, seq);
    this.last = seq;
  }

  /**
   * Forgets seqs after `seq`. The ids they pushed out of the window are refilled by the caller
   * through `refill` (it reads them from the log), so the index stays exact.
   */
  truncateAfter(seq: number, refill: (from: number, to: number) => Iterable<{ clientId: string; seq: number }>): void {
    assert(seq <= this.last, `client index: truncate to ${seq} after ${this.last}`);
    for (let s = this.last; s > seq; s--) {
      const slot = s % this.window;
      const id = this.ring[slot];
      if (id !== undefined && this.seqOf.get(id) === s) this.seqOf.delete(id);
      this.ring[slot] = undefined;
    }
    const from = Math.max(1, seq - this.window + 1);
    const to = Math.min(seq, this.last - this.window);
    this.last = seq;
    if (from > to) return;
    for (const e of refill(from, to)) {
      this.ring[e.seq % this.window] = e.clientId;
      this.seqOf.set(e.clientId, e.seq);
    }
  }

  /** Starts over at an empty log whose next seq is `last + 1` (a log opened, or refilled from a snapshot). */
  reset(last: number): void {
    this.seqOf.clear();
    this.ring.fill(undefined);
    this.last = last;
  }
}

// A set-membership filter over every client id in the log (a scalable Bloom filter), so the
// sequencer's "was this client id used before?" costs a few hashes instead of an SQLite lookup for
// the common case, a new id. Invariants: no false negatives — an id that was added always answers
// "maybe" (so idempotency stays exact: "maybe" falls through to the log's index); false positives
// only cost that lookup (≤ ~1% per stage). Ids are never removed (a truncated id stays "maybe",
// which is safe). Memory: ~10 bits per id; the filter grows by stages (each twice the previous),
// so it never needs rebuilding and nothing in it is unbounded beyond the ids the log holds.

const BITS_PER_ID = 10;
const PROBES = 7;
const FIRST_STAGE_IDS = 65_536;

class Stage {
  private readonly bits: Uint32Array;
  private readonly mask: number;
  count = 0;

  constructor(readonly capacity: number) {
    // A power of two of bits, so a probe is a mask, not a modulo.
    const bits = 2 ** Math.ceil(Math.log2(capacity * BITS_PER_ID));
    this.bits = new Uint32Array(bits / 32);
    this.mask = bits - 1;
  }

  add(h1: number, h2: number): void {
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask;
      this.bits[bit >>> 5]! |= 1 << (bit & 31);
    }
    this.count++;
  }

  has(h1: number, h2: number): boolean {
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask;
      if ((this.bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** Two independent 32-bit hashes of a string (FNV-1a and a multiplicative mix), for double hashing. */
function hashes(s: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a ^= a >>> 16;
  b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
  // An even step would visit only half the bits of a power-of-two table.
  return [a >>> 0, (b | 1) >>> 0];
}

export class ClientIdFilter {
  private readonly stages: Stage[] = [new Stage(FIRST_STAGE_IDS)];

  add(clientId: string): void {
    let last = this.stages[this.stages.length - 1]!;
    if (last.count >= last.capacity) this.stages.push((last = new Stage(last.capacity * 2)));
    const [h1, h2] = hashes(clientId);
    last.add(h1, h2);
  }

  /** False: never added. True: maybe added (check the log). */
  mayContain(clientId: string): boolean {
    const [h1, h2] = hashes(clientId);
    for (const s of this.stages) if (s.has(h1, h2)) return true;
    return false;
  }

  /** Bytes held (for status and tests). */
  get bytes(): number {
    return this.stages.reduce((n, s) => n + (s as unknown as { bits: Uint32Array }).bits.byteLength, 0);
  }
}

// Incremental state hash. The state machine's state is fully described by lastSeq, the set of
// account views (resting orders carry price and seq, so every book's price-time queue is derivable
// from them), each market's mark and the exchange's net deposits (hashed as '#…' records). The hash is an additive multiset hash: Σ sha256(canonical(account)) mod 2^256,
// folded with lastSeq. It depends only on the state, not on the history, so a replay, a standby
// or a restart reach the same value; and updating it costs O(accounts touched), not O(state).
import { createHash } from 'node:crypto';
import { canonicalJson } from '../domain/canonical.js';
import { assert } from '../domain/assert.js';
import type { StateMachine } from '../domain/state-machine.js';
import type { AccountView } from '../domain/types.js';

const MOD = 1n << 256n;

function digest(text: string): bigint {
  return BigInt('0x' + createHash('sha256').update(text).digest('hex'));
}

/** Writes a digest as 32 big-endian bytes at `at` in `out` (what a snapshot stores). */
export function putDigest(d: bigint, out: Buffer, at: number): void {
  const mask = (1n << 64n) - 1n;
  out.writeBigUInt64BE((d >> 192n) & mask, at);
  out.writeBigUInt64BE((d >> 128n) & mask, at + 8);
  out.writeBigUInt64BE((d >> 64n) & mask, at + 16);
  out.writeBigUInt64BE(d & mask, at + 24);
}

/** A 32-byte big-endian digest at `at` in `b`, as a bigint. */
function digestAt(b: Uint8Array, at: number): bigint {
  const v = Buffer.from(b.buffer, b.byteOffset + at, 32);
  return (v.readBigUInt64BE(0) << 192n) | (v.readBigUInt64BE(8) << 128n) | (v.readBigUInt64BE(16) << 64n) | v.readBigUInt64BE(24);
}

export class StateHasher {
  /**
   * Each key's digest: a bigint, or (seeded from a snapshot and not touched since) its index in
   * `seeded` — a million restored accounts then cost one buffer and small integers, not a million
   * bigints; an index becomes a bigint when its account is read or touched.
   */
  private readonly perAccount = new Map<string, bigint | number>();
  private seeded: Uint8Array = new Uint8Array(0);
  private sum = 0n;

  /** Records the current view of an account (call for every touched account). */
  update(view: AccountView): void {
    this.recordText(view.id, canonicalAccountView(view));
  }

  /**
   * Records any other part of the state under a key no account id can take ('#…'); undefined
   * removes it, so a value back at its initial state hashes as if it had never been set.
   */
  record(key: string, value: unknown): void {
    this.recordText(key, value === undefined ? undefined : canonicalJson(value));
  }

  /** The digest recorded for `key` (an account id), as a snapshot stores it. */
  digestOf(key: string): bigint | undefined {
    const d = this.perAccount.get(key);
    return typeof d === 'number' ? digestAt(this.seeded, d * 32) : d;
  }

  /**
   * Records digests computed elsewhere (a snapshot's, for accounts not recorded yet): `ids[i]`'s
   * digest is bytes 32i..32i+32 of `digests` (big-endian). A restart need not re-hash every
   * account; the digests are checked against the state in the background
   * (HashedMachine.firstWrongDigest), and a wrong one halts the node. Once, on a fresh hasher.
   */
  seedAll(ids: readonly string[], digests: Uint8Array): void {
    assert(this.perAccount.size === 0 && this.seeded.length === 0, 'state hash: seeded twice');
    assert(digests.length === ids.length * 32, `state hash: ${ids.length} ids but ${digests.length} digest bytes`);
    this.seeded = digests;
    // Σ digests without a bigint per account: sum each 32-bit limb as a double (a million limbs of
    // < 2^32 stay below 2^53, exact), then carry once.
    // Folded into a bigint every 2^20 ids, so any number of ids stays exact.
    const limbs = new Float64Array(8);
    const view = new DataView(digests.buffer, digests.byteOffset, digests.byteLength);
    let total = 0n;
    const fold = () => {
      for (let l = 0; l < 8; l++) total += BigInt(limbs[l]!) << BigInt(32 * (7 - l));
      limbs.fill(0);
    };
    for (let i = 0; i < ids.length; i++) {
      this.perAccount.set(ids[i]!, i);
      for (let l = 0; l < 8; l++) limbs[l]! += view.getUint32(i * 32 + l * 4);
      if ((i & 0xfffff) === 0xfffff) fold();
    }
    fold();
    assert(this.perAccount.size === ids.length, 'state hash: an id seeded twice');
    this.sum = total % MOD;
  }

  /** The digest `key` would have with this canonical text (what update/record store). */
  static digestOfText(key: string, canonical: string): bigint {
    return digest(`${key}\n${canonical}`);
  }

  private recordText(key: string, canonical: string | undefined): void {
    const next = canonical === undefined ? 0n : StateHasher.digestOfText(key, canonical);
    const prev = this.digestOf(key) ?? 0n;
    this.sum = (((this.sum - prev + next) % MOD) + MOD) % MOD;
    if (canonical === undefined) this.perAccount.delete(key);
    else this.perAccount.set(key, next);
  }

  /** Records a machine's non-account state: every market's mark, the net deposits. */
  recordMarkets(machine: StateMachine, markets: Iterable<string>): void {
    for (const m of markets) this.record(`#mark:${m}`, machine.mark(m));
  }

  /** Hex sha256 over lastSeq and the account multiset. */
  hash(lastSeq: number): string {
    return createHash('sha256').update(`statemirror/v1:${lastSeq}:${this.sum.toString(16)}`).digest('hex');
  }
}

/**
 * canonicalJson(view), written for the one shape the machine produces (keys in their sorted order,
 * known ahead): the state hash serializes every touched account at every checkpoint, and the
 * generic writer's key sorting was most of that cost. Same bytes, so the same hash (tested against
 * canonicalJson on simulated states).
 */
export function canonicalAccountView(v: AccountView): string {
  let out = `{"available":${int(v.available)},"collateral":${int(v.collateral)},"id":${JSON.stringify(v.id)},"marginRequired":${int(v.marginRequired)},"openOrders":[`;
  for (let i = 0; i < v.openOrders.length; i++) {
    const o = v.openOrders[i]!;
    if (i > 0) out += ',';
    out += `{"account":${JSON.stringify(o.account)},"market":${JSON.stringify(o.market)},"orderId":${int(o.orderId)},"price":${int(o.price)},"qty":${int(o.qty)},"remaining":${int(o.remaining)},"seq":${int(o.seq)},"side":${JSON.stringify(o.side)},"tif":${JSON.stringify(o.tif)}}`;
  }
  out += '],"positions":[';
  for (let i = 0; i < v.positions.length; i++) {
    const p = v.positions[i]!;
    if (i > 0) out += ',';
    out += `{"avgEntryPrice":${int(p.avgEntryPrice)},"costBasis":${int(p.costBasis)},"market":${JSON.stringify(p.market)},"qty":${int(p.qty)},"realizedPnl":${int(p.realizedPnl)}}`;
  }
  return out + ']}';
}

/** A number as canonicalJson writes it: a safe integer, -0 as 0. */
function int(n: number): string {
  assert(Number.isSafeInteger(n), `canonical account view: non-integer number ${n}`);
  return n === 0 ? '0' : String(n);
}

/** The state hash computed from scratch (tests compare it with the incremental one). */
export function hashFromScratch(machine: StateMachine): string {
  const h = new StateHasher();
  for (const id of machine.accountIds()) h.update(machine.account(id)!);
  h.recordMarkets(machine, machine.marketSymbols());
  h.record('#deposits', machine.totalDeposits === 0 ? undefined : machine.totalDeposits);
  return h.hash(machine.lastSeq);
}

// Taking and loading state snapshots (docs/snapshots.md). take() writes the hashed machine's state
// at its current seq into a snapshot file, a few thousand accounts per frame and at most
// `budgetMs` of work per event-loop turn, so a million accounts never stall the node (heartbeats,
// acks and reads go on between turns). load() rebuilds a hashed machine from the newest valid file.
// Invariants: the machine must not change while take() runs — the caller pauses applying (a
// follower's apply is off the commit path) and the export asserts it at every step; a snapshot's
// stateHash is the machine's hash at that seq, and a loaded snapshot's hash is recomputed from its
// contents (account digests as stored, the rest hashed) and must equal it, else the file is
// corrupt; the stored per-account digests are then checked against the state in the background
// (verifyInBackground), so a bad one halts the node instead of forking it silently.
import { renameSync } from 'node:fs';
import { assert } from '../domain/assert.js';
import { StateMachine, type SnapshotPart, type StateSnapshot } from '../domain/state-machine.js';
import type { DomainConfig } from '../domain/types.js';
import { frames, readSnapshotFile, SnapshotCorruptError, type SnapshotInfo, type SnapshotMeta, type SnapshotStore } from '../log/snapshot-file.js';
import { HashedMachine } from './hashed-machine.js';
import { putDigest } from './state-hash.js';

/** Accounts or orders per frame. */
const PART_SIZE = 4096;

type AccountRow = [id: string, collateral: number, positions: Array<[market: string, qty: number, costBasis: number, realizedPnl: number]>];
type OrderRow = [orderId: number, account: string, market: string, side: string, price: number, qty: number, remaining: number, tif: string, seq: number];

export interface TakeOptions {
  /** Work per event-loop turn before yielding (default 8 ms). */
  budgetMs?: number;
  /** Yields to the event loop (setImmediate in production). */
  yieldTurn?: () => Promise<void>;
  /** Aborts the export between turns (the node stops, or must apply again). */
  cancelled?: () => boolean;
  now?: () => number;
  /** Accounts or orders per frame (default 4096). */
  partSize?: number;
}

export interface TakeResult extends SnapshotInfo {
  /** The longest single turn of work (ms): what the export added to event-loop latency. */
  longestTurnMs: number;
  turns: number;
}

/**
 * Writes `hm`'s state at its current seq to `store`. `epoch` is the epoch of the log entry at that
 * seq. Resolves null if cancelled (nothing is left on disk).
 */
export async function take(hm: HashedMachine, epoch: number, store: SnapshotStore, opts: TakeOptions = {}): Promise<TakeResult | null> {
  const budget = opts.budgetMs ?? 8;
  const now = opts.now ?? (() => performance.now());
  const yieldTurn = opts.yieldTurn ?? (() => new Promise<void>((r) => setImmediate(r)));
  const stateHash = hm.stateHash;
  const seq = hm.lastSeq;
  const writer = store.writer(seq);
  let counts = { accounts: 0, orders: 0 };
  let longest = 0;
  let turns = 0;
  try {
    const parts = hm.machine.exportParts(opts.partSize ?? PART_SIZE);
    let done = false;
    while (!done) {
      const t0 = now();
      turns += 1;
      while (now() - t0 < budget) {
        const step = parts.next();
        if (step.done === true) {
          done = true;
          break;
        }
        writer.frame(encodePart(step.value, hm));
        if (step.value.kind === 'globals') counts = { accounts: step.value.accounts, orders: step.value.orders };
      }
      longest = Math.max(longest, now() - t0);
      if (!done) {
        await yieldTurn();
        if (opts.cancelled?.()) {
          writer.abort();
          return null;
        }
        // The machine must not have moved (the caller paused applying): the export reads it live.
        assert(hm.lastSeq === seq, `snapshot at ${seq}: the machine moved to ${hm.lastSeq} during the export`);
      }
    }
    const info = writer.finish({ epoch, stateHash, accounts: counts.accounts, orders: counts.orders, createdMs: Date.now() });
    store.prune();
    return { ...info, longestTurnMs: longest, turns };
  } catch (err) {
    writer.abort();
    throw err;
  }
}

function encodePart(p: SnapshotPart, hm: HashedMachine): unknown {
  if (p.kind === 'globals') {
    const { kind: _kind, ...g } = p;
    return { g };
  }
  if (p.kind === 'accounts') {
    // The accounts' digests in the state hash, 32 bytes each, in one blob per frame.
    const d = Buffer.allocUnsafe(32 * p.accounts.length);
    p.accounts.forEach((a, i) => {
      const digest = hm.digestOf(a.id);
      assert(digest !== undefined, `account ${a.id} has no digest in the state hash`);
      putDigest(digest, d, 32 * i);
    });
    return { a: p.accounts.map((a): AccountRow => [a.id, a.collateral, a.positions.map((x) => [x.market, x.qty, x.costBasis, x.realizedPnl])]), d };
  }
  return { o: p.orders.map((o): OrderRow => [o.orderId, o.account, o.market, o.side, o.price, o.qty, o.remaining, o.tif, o.seq]) };
}

/**
 * Rebuilds a hashed machine from a snapshot's frames (decoded one at a time: nothing but the
 * machine itself stays alive for a million accounts); SnapshotCorruptError if they do not hold together.
 */
export function fromFrames(domain: DomainConfig, meta: SnapshotMeta, frames: Iterable<unknown>, what: string): HashedMachine {
  const bad = (why: string) => new SnapshotCorruptError(`${what}: ${why}`);
  const it = frames[Symbol.iterator]();
  const first = it.next().value as { g?: Omit<Extract<SnapshotPart, { kind: 'globals' }>, 'kind'> } | undefined;
  const g = first?.g;
  if (g === undefined || g.v !== 1 || g.lastSeq !== meta.seq || !Number.isSafeInteger(g.accounts) || g.accounts < 0 || g.accounts !== meta.accounts) {
    throw bad('first frame is not the globals of this seq');
  }
  // Every account's digest, in order, in one buffer (the hasher keeps indexes into it).
  const ids: string[] = [];
  const digests = Buffer.alloc(32 * g.accounts);
  let pending: { a?: AccountRow[]; d?: Uint8Array; o?: OrderRow[] } | undefined;
  let orders = 0;
  function* accountRows(): Generator<StateSnapshot['accounts'][number]> {
    for (let n = it.next(); n.done !== true; n = it.next()) {
      const frame = n.value as { a?: AccountRow[]; d?: Uint8Array; o?: OrderRow[] };
      if (!Array.isArray(frame.a)) {
        pending = frame;
        return;
      }
      if (!(frame.d instanceof Uint8Array) || frame.d.length !== 32 * frame.a.length || ids.length + frame.a.length > g!.accounts) throw bad('an account frame\'s digests do not match its accounts');
      digests.set(frame.d, 32 * ids.length);
      for (const [id, collateral, positions] of frame.a) {
        ids.push(id);
        yield { id, collateral, positions: positions.map(([market, qty, costBasis, realizedPnl]) => ({ market, qty, costBasis, realizedPnl })) };
      }
    }
  }
  function* orderRows(): Generator<StateSnapshot['orders'][number]> {
    for (let frame = pending ?? (it.next().value as typeof pending); frame !== undefined; frame = it.next().value as typeof pending) {
      if (!Array.isArray(frame.o)) throw bad('a frame is neither accounts nor orders (or accounts after orders)');
      for (const [orderId, account, market, side, price, qty, remaining, tif, seq] of frame.o) {
        orders += 1;
        yield { orderId, account, market, side, price, qty, remaining, tif, seq } as StateSnapshot['orders'][number];
      }
    }
  }
  let machine: StateMachine;
  try {
    machine = StateMachine.fromSnapshot(domain, { v: 1, lastSeq: g.lastSeq, netDeposits: g.netDeposits, marks: g.marks, openInterest: g.openInterest, accounts: accountRows(), orders: orderRows() });
  } catch (err) {
    if (err instanceof SnapshotCorruptError) throw err;
    throw bad(`state does not rebuild: ${(err as Error).message}`);
  }
  if (ids.length !== g.accounts || orders !== g.orders) throw bad('account or order count differs from the globals');
  const hm = new HashedMachine(domain, { machine, ids, digests });
  if (hm.stateHash !== meta.stateHash) throw bad(`rebuilt state hash ${hm.stateHash.slice(0, 12)}… differs from the footer's ${meta.stateHash.slice(0, 12)}…`);
  return hm;
}

export interface Loaded {
  machine: HashedMachine;
  meta: SnapshotMeta;
  path: string;
  bytes: number;
}

/**
 * The newest snapshot that is valid and that `accept` agrees with (e.g. the log holds its seq with
 * the same epoch and hash), or null. A corrupt file is renamed `*.corrupt` (kept for an operator,
 * never loaded or counted again) and reported through `onCorrupt`; the next older one is tried.
 */
export function loadNewest(domain: DomainConfig, store: SnapshotStore, accept: (meta: SnapshotMeta) => boolean, onCorrupt?: (path: string, why: string) => void): Loaded | null {
  for (const f of store.list()) {
    try {
      const parsed = readSnapshotFile(f.path);
      const { meta, bytes } = parsed;
      if (meta.seq !== f.seq) throw new SnapshotCorruptError(`${f.path}: footer seq ${meta.seq} differs from its name`);
      if (!accept(meta)) continue;
      return { machine: fromFrames(domain, meta, frames(parsed, f.path), f.path), meta, path: f.path, bytes };
    } catch (err) {
      if (!(err instanceof SnapshotCorruptError)) throw err;
      onCorrupt?.(f.path, err.message);
      renameSync(f.path, `${f.path}.corrupt`);
    }
  }
  return null;
}

/**
 * Checks every account's stored digest against its state, `chunk` accounts per turn, while the
 * node runs (`ids`: a live iterator, e.g. StateMachine.accountIdIterator, so no million-id copy). Resolves the id of the first wrong one (the caller halts), or null. Each chunk runs at
 * a checkpoint (nothing applied since the hash was read), so the comparison is against one state.
 */
export async function verifyInBackground(current: () => HashedMachine, ids: Iterator<string>, opts: { chunk?: number; yieldTurn?: () => Promise<void>; cancelled?: () => boolean } = {}): Promise<string | null> {
  const chunk = opts.chunk ?? 2048;
  const yieldTurn = opts.yieldTurn ?? (() => new Promise<void>((r) => setImmediate(r)));
  const slice: string[] = [];
  for (;;) {
    // First yield: the caller may still be installing the machine this checks.
    await yieldTurn();
    if (opts.cancelled?.()) return null;
    slice.length = 0;
    for (let next = ids.next(); next.done !== true; next = ids.next()) {
      slice.push(next.value);
      if (slice.length === chunk) break;
    }
    if (slice.length === 0) return null;
    const wrong = current().firstWrongDigest(slice);
    if (wrong !== null) return wrong;
  }
}

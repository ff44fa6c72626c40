// Snapshot files of the hashed machine (engine/snapshot.ts, log/snapshot-file.ts): a snapshot
// written over many turns loads back to the same state hash and answers every later command as the
// original; the export refuses a machine that moves under it; a torn, truncated or altered file is
// detected and the previous one is used; a wrong stored digest is found by the background check.
import { describe, expect, it, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HashedMachine } from '../../src/engine/hashed-machine.js';
import { hashFromScratch } from '../../src/engine/state-hash.js';
import { fromFrames, loadNewest, take, verifyInBackground } from '../../src/engine/snapshot.js';
import { frames as decoded, readSnapshotFile, SnapshotStore, SnapshotWriter } from '../../src/log/snapshot-file.js';
import { canonicalJson } from '../../src/domain/canonical.js';
import type { Seq } from '../../src/domain/types.js';
import { commandStream, testConfig } from '../core/helpers.js';
import { mulberry32 } from '../domain/helpers.js';

const dirs: string[] = [];
const dir = () => {
  const d = mkdtempSync(join(tmpdir(), 'sm-snap-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const config = testConfig();
const accounts = Array.from({ length: 40 }, (_, i) => `acct-${i}`);

function run(hm: HashedMachine, commands: ReturnType<typeof commandStream>, from: number): void {
  commands.forEach((command, i) => hm.apply({ seq: (from + i) as Seq, tsMs: 1_700_000_000_000 + from + i, command }, i === commands.length - 1));
}

describe('snapshots of the hashed machine', () => {
  it('a snapshot written across many turns loads to the same hash and the same future', async () => {
    const commands = commandStream(mulberry32(7), 3000, accounts);
    const a = new HashedMachine(config);
    run(a, commands.slice(0, 2000), 1);
    const store = new SnapshotStore(dir());
    let turns = 0;
    const r = await take(a, 3, store, { partSize: 3, budgetMs: 0.01, yieldTurn: async () => void turns++ });
    expect(r).not.toBeNull();
    expect(r!.turns).toBeGreaterThan(5);
    expect(turns).toBe(r!.turns - 1);
    expect(r!.seq).toBe(2000);
    expect(r!.stateHash).toBe(a.stateHash);
    const loaded = loadNewest(config, store, () => true)!;
    expect(loaded.meta).toMatchObject({ seq: 2000, epoch: 3, stateHash: a.stateHash });
    const b = loaded.machine;
    expect(b.stateHash).toBe(a.stateHash);
    expect(hashFromScratch(b.machine)).toBe(hashFromScratch(a.machine));
    expect(await verifyInBackground(() => b, b.machine.accountIdIterator())).toBeNull();
    // Both answer the rest identically, and their hashes stay equal at every checkpoint.
    for (const [i, command] of commands.slice(2000).entries()) {
      const env = { seq: (2001 + i) as Seq, tsMs: 1_700_000_002_001 + i, command };
      const checkpoint = i % 50 === 49;
      const x = a.apply(env, checkpoint);
      const y = b.apply(env, checkpoint);
      expect(canonicalJson(y)).toBe(canonicalJson(x));
    }
    expect(b.stateHash).toBe(a.stateHash);
    expect(a.machine.exportState().orders.length).toBeGreaterThan(0);
  });

  it('refuses a machine that moves during the export, and leaves no file behind', async () => {
    const commands = commandStream(mulberry32(8), 600, accounts);
    const a = new HashedMachine(config);
    run(a, commands.slice(0, 500), 1);
    const d = dir();
    const store = new SnapshotStore(d);
    let moved = false;
    const yieldTurn = async () => {
      if (moved) return;
      moved = true;
      run(a, commands.slice(500, 501), 501);
    };
    await expect(take(a, 1, store, { partSize: 2, budgetMs: 0.01, yieldTurn })).rejects.toThrow(/moved/);
    expect(readdirSync(d)).toEqual([]);
    // Cancelled instead: nothing either.
    expect(await take(a, 1, store, { partSize: 2, budgetMs: 0.01, yieldTurn: async () => {}, cancelled: () => true })).toBeNull();
    expect(readdirSync(d)).toEqual([]);
  });

  it('a torn, truncated or altered newest file is set aside and the previous one is loaded', async () => {
    const commands = commandStream(mulberry32(9), 900, accounts);
    const a = new HashedMachine(config);
    const store = new SnapshotStore(dir(), 3);
    const hashes: string[] = [];
    for (let k = 0; k < 3; k++) {
      run(a, commands.slice(k * 300, (k + 1) * 300), k * 300 + 1);
      hashes.push(a.stateHash);
      await take(a, 1, store);
    }
    expect(store.list().map((f) => f.seq)).toEqual([900, 600, 300]);
    // Flip one byte in the middle of the newest; truncate the next.
    const newest = store.path(900);
    const bytes = readFileSync(newest);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    writeFileSync(newest, bytes);
    truncateSync(store.path(600), readFileSync(store.path(600)).length - 10);
    const corrupt: string[] = [];
    const loaded = loadNewest(config, store, () => true, (path, why) => corrupt.push(`${path}: ${why}`))!;
    expect(loaded.meta.seq).toBe(300);
    expect(loaded.machine.stateHash).toBe(hashes[0]);
    expect(corrupt).toHaveLength(2);
    expect(corrupt[0]).toMatch(/checksum/);
    expect(corrupt[1]).toMatch(/end marker|torn/);
    // The corrupt ones are kept aside for an operator, and no longer listed.
    expect(store.list().map((f) => f.seq)).toEqual([300]);
    // An `accept` that refuses (the log disagrees) skips a valid file without marking it corrupt.
    expect(loadNewest(config, store, (m) => m.seq !== 300)).toBeNull();
    expect(store.list().map((f) => f.seq)).toEqual([300]);
  });

  it('a snapshot whose stored digest is wrong fails the rebuilt-hash check, or the background check', async () => {
    const commands = commandStream(mulberry32(10), 400, accounts);
    const a = new HashedMachine(config);
    run(a, commands, 1);
    const store = new SnapshotStore(dir());
    const r = (await take(a, 1, store))!;
    const parsed = readSnapshotFile(r.path);
    const { meta } = parsed;
    const frames = [...decoded(parsed)];
    // Swap two accounts' digests: the sum (and so the rebuilt hash) is unchanged, the state is not described.
    const { a: rows, d } = frames[1] as { a: unknown[][]; d: Uint8Array };
    const first = Buffer.from(d.subarray(0, 32));
    d.copyWithin(0, 32, 64);
    d.set(first, 32);
    const b = fromFrames(config, meta, frames, 'swapped');
    expect(b.stateHash).toBe(a.stateHash);
    expect(await verifyInBackground(() => b, b.machine.accountIdIterator())).toBe(rows[0]![0]);
    // A changed balance under its old digest: only the background check can see it, and does.
    const f2 = [...decoded(readSnapshotFile(r.path))];
    const altered = (f2[1] as { a: unknown[][] }).a[0]!;
    altered[1] = (altered[1] as number) + 1;
    const c = fromFrames(config, meta, f2, 'altered');
    expect(await verifyInBackground(() => c, c.machine.accountIdIterator())).toBe(altered[0]);
    // A changed digest: the rebuilt hash differs from the footer's.
    const f3 = [...decoded(readSnapshotFile(r.path))];
    (f3[1] as { d: Uint8Array }).d[31]! ^= 1;
    expect(() => fromFrames(config, meta, f3, 'altered digest')).toThrow(/state hash/);
  });

  it('a snapshot received in chunks is checked as it streams: whole → installed, cut short or altered → refused', async () => {
    const commands = commandStream(mulberry32(11), 500, accounts);
    const a = new HashedMachine(config);
    run(a, commands, 1);
    const src = new SnapshotStore(dir());
    const r = (await take(a, 2, src))!;
    const bytes = readFileSync(r.path);
    const dst = new SnapshotStore(dir());
    const send = (b: Buffer, chunk: number) => {
      const rx = dst.receive(r.seq);
      for (let off = 0; off < b.length; off += chunk) rx.write(b.subarray(off, off + chunk));
      return rx;
    };
    // Chunks smaller than the footer, and larger than the kept tail.
    for (const chunk of [7, 100_000]) {
      const info = send(bytes, chunk).finish();
      expect(info).toMatchObject({ seq: r.seq, epoch: 2, stateHash: a.stateHash, bytes: bytes.length });
      expect(readFileSync(dst.path(r.seq)).equals(bytes)).toBe(true);
    }
    const altered = Buffer.from(bytes);
    altered[100]! ^= 1;
    expect(() => send(altered, 4096).finish()).toThrow(/checksum/);
    expect(() => send(bytes.subarray(0, bytes.length - 3), 4096).finish()).toThrow(/end marker/);
    expect(readdirSync(dst.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('the writer names files by seq and the store keeps the newest `keep`', () => {
    const d = dir();
    const store = new SnapshotStore(d, 2);
    for (const seq of [10, 20, 30]) {
      const w = new SnapshotWriter(d, seq);
      w.frame({ g: 1 });
      w.finish({ epoch: 1, stateHash: 'x', accounts: 0, orders: 0, createdMs: 0 });
      store.prune();
    }
    expect(store.list().map((f) => f.seq)).toEqual([30, 20]);
    const w = new SnapshotWriter(d, 40);
    w.frame({ g: 1 });
    // A crash mid-write leaves a .tmp: never listed, removed when the store opens.
    expect(store.list().map((f) => f.seq)).toEqual([30, 20]);
    new SnapshotStore(d, 2);
    expect(readdirSync(d).some((n) => n.endsWith('.tmp'))).toBe(false);
    w.abort();
  });
});

// Snapshot files (docs/snapshots.md): the state at a log position, stored beside the log as
// `<dataDir>/snapshots/snap-<seq>.bin`. This layer knows bytes, not the state machine: a file is
// a magic, a sequence of frames (u32 length + MessagePack value) written one at a time (so a
// writer can spread a large state over many event-loop turns), and a footer naming the position,
// its state hash and the sha256 of everything before it.
// Invariants: a file is written as `.tmp`, fsynced, then renamed and its directory fsynced, so a
// `.bin` is always complete; a reader checks magic, footer and sha256 before handing out a single
// frame, so a torn, truncated or altered file is SnapshotCorruptError, never a wrong state; the
// store keeps the newest `keep` files and never deletes the newest valid one.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { assert } from '../domain/assert.js';
import type { CommandLog } from './command-log.js';

const MAGIC = Buffer.from('SMSNAP01');
const END = Buffer.from('SMSNEND1');
/** 2: account digests in one blob per frame. */
const FORMAT = 2;
/** A frame larger than this is corruption, not data (a writer's frames are a few MB at most). */
const MAX_FRAME = 256 * 1024 * 1024;
// Plain arrays and maps, as in the log: the bytes do not depend on a packer's state.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** What the footer says about a snapshot. */
export interface SnapshotMeta {
  /** The log position: the state after applying entries 1..seq. */
  seq: number;
  /** The epoch of the log entry at seq (so the log's agreement with the snapshot is checkable). */
  epoch: number;
  /** The state hash at seq (equals the log entry's stored hash: positions are checkpoint entries). */
  stateHash: string;
  accounts: number;
  orders: number;
  createdMs: number;
}

export interface SnapshotInfo extends SnapshotMeta {
  path: string;
  bytes: number;
}

export class SnapshotCorruptError extends Error {
  override name = 'SnapshotCorruptError';
}

export function snapshotName(seq: number): string {
  return `snap-${String(seq).padStart(14, '0')}.bin`;
}

function seqOfName(name: string): number | null {
  const m = /^snap-(\d{14})\.bin$/.exec(name);
  return m === null ? null : Number(m[1]);
}

/** A file written as `.tmp` and renamed into place once durable (fsync, rename, fsync of the dir). */
class TmpFile {
  private fd: number | null;
  bytes = 0;
  private readonly tmp: string;

  constructor(private readonly dir: string, readonly path: string) {
    this.tmp = `${path}.tmp`;
    this.fd = openSync(this.tmp, 'w');
  }

  write(b: Buffer): void {
    assert(this.fd !== null, `${this.tmp} already closed`);
    let off = 0;
    while (off < b.length) off += writeSync(this.fd, b, off, b.length - off);
    this.bytes += b.length;
  }

  commit(): void {
    assert(this.fd !== null, `${this.tmp} already closed`);
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
    renameSync(this.tmp, this.path);
    syncDir(this.dir);
  }

  abort(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
    try {
      unlinkSync(this.tmp);
    } catch {
      // Already gone: nothing to clean.
    }
  }
}

/** Writes one snapshot file, a frame at a time. */
export class SnapshotWriter {
  private readonly file: TmpFile;
  private readonly hash: Hash = createHash('sha256');
  private frames = 0;

  constructor(dir: string, readonly seq: number) {
    mkdirSync(dir, { recursive: true });
    this.file = new TmpFile(dir, join(dir, snapshotName(seq)));
    this.write(MAGIC);
  }

  /** Appends one value as a frame. */
  frame(value: unknown): void {
    const body = packr.pack(value);
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32LE(body.length);
    this.write(len);
    this.write(body);
    this.frames += 1;
  }

  /** Writes the footer, makes the file durable and gives it its final name. */
  finish(meta: Omit<SnapshotMeta, 'seq'>): SnapshotInfo {
    const footer = packr.pack({ format: FORMAT, ...meta, seq: this.seq, frames: this.frames, sha256: this.hash.digest('hex') });
    const tail = Buffer.allocUnsafe(4);
    tail.writeUInt32LE(footer.length);
    for (const b of [footer, tail, END]) this.file.write(b);
    this.file.commit();
    return { ...meta, seq: this.seq, path: this.file.path, bytes: this.file.bytes };
  }

  /** Drops a snapshot that will not be finished (the state moved, the node stopped). */
  abort(): void {
    this.file.abort();
  }

  private write(b: Buffer): void {
    this.hash.update(b);
    this.file.write(b);
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A checked snapshot: its footer, and its frames still encoded (decode them one at a time: frames()). */
export interface ParsedSnapshot {
  meta: SnapshotMeta;
  frameBytes: Buffer[];
  bytes: number;
}

/** Decodes a snapshot's frames lazily, one per step (a million accounts never sit decoded at once). */
export function* frames(p: Pick<ParsedSnapshot, 'frameBytes'>, what = 'snapshot'): Generator<unknown> {
  for (const [i, b] of p.frameBytes.entries()) {
    let v: unknown;
    try {
      v = packr.unpack(b);
    } catch {
      throw new SnapshotCorruptError(`${what}: frame ${i} undecodable`);
    }
    yield v;
  }
}

/** Reads and checks a whole snapshot file: its footer and frame boundaries, or SnapshotCorruptError. */
export function readSnapshotFile(path: string): ParsedSnapshot {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new SnapshotCorruptError(`${path}: unreadable (${(err as Error).message})`);
  }
  return parseSnapshot(buf, path);
}

/** Checks and splits the bytes of a snapshot file (from disk, or received from a peer). */
export function parseSnapshot(buf: Buffer, what: string): ParsedSnapshot {
  const bad = (why: string) => new SnapshotCorruptError(`${what}: ${why}`);
  if (buf.length < MAGIC.length + 4 + END.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw bad('not a snapshot file');
  if (!buf.subarray(buf.length - END.length).equals(END)) throw bad('no end marker (torn write)');
  const footerLen = buf.readUInt32LE(buf.length - END.length - 4);
  const footerAt = buf.length - END.length - 4 - footerLen;
  if (footerLen > MAX_FRAME || footerAt < MAGIC.length) throw bad('footer length out of range');
  let footer: Record<string, unknown>;
  try {
    footer = packr.unpack(buf.subarray(footerAt, footerAt + footerLen)) as Record<string, unknown>;
  } catch {
    throw bad('footer undecodable');
  }
  const num = (k: string) => (Number.isSafeInteger(footer[k]) && (footer[k] as number) >= 0 ? (footer[k] as number) : null);
  if (footer === null || typeof footer !== 'object' || footer['format'] !== FORMAT) throw bad(`footer format ${String(footer?.['format'])}, this build reads ${FORMAT}`);
  const seq = num('seq');
  const epoch = num('epoch');
  const accounts = num('accounts');
  const orders = num('orders');
  const frameCount = num('frames');
  const createdMs = num('createdMs');
  if (seq === null || epoch === null || accounts === null || orders === null || frameCount === null || createdMs === null) throw bad('footer fields missing');
  if (typeof footer['stateHash'] !== 'string' || typeof footer['sha256'] !== 'string') throw bad('footer hashes missing');
  if (createHash('sha256').update(buf.subarray(0, footerAt)).digest('hex') !== footer['sha256']) throw bad('checksum mismatch (altered or torn)');
  const out: Buffer[] = [];
  let at = MAGIC.length;
  while (at < footerAt) {
    if (at + 4 > footerAt) throw bad('frame header past the footer');
    const len = buf.readUInt32LE(at);
    if (len > MAX_FRAME || at + 4 + len > footerAt) throw bad('frame length out of range');
    out.push(buf.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  if (out.length !== frameCount) throw bad(`${out.length} frames, footer says ${frameCount}`);
  return { meta: { seq, epoch, stateHash: footer['stateHash'], accounts, orders, createdMs }, frameBytes: out, bytes: buf.length };
}

/** Bytes of the end kept back from the running checksum until the footer's position is known. */
const TAIL_KEEP = 64 * 1024;

/** A snapshot arriving over the network (SnapshotStore.receive). */
export class SnapshotReceiver {
  private readonly file: TmpFile;
  private readonly hash: Hash = createHash('sha256');
  /** The newest bytes, not yet hashed: the footer is among them. */
  private tail = Buffer.alloc(0);

  constructor(dir: string, readonly seq: number) {
    this.file = new TmpFile(dir, join(dir, snapshotName(seq)));
  }

  get bytes(): number {
    return this.file.bytes;
  }

  write(chunk: Uint8Array): void {
    const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.file.write(b);
    this.tail = this.tail.length === 0 ? Buffer.from(b) : Buffer.concat([this.tail, b]);
    if (this.tail.length > 2 * TAIL_KEEP) {
      const cut = this.tail.length - TAIL_KEEP;
      this.hash.update(this.tail.subarray(0, cut));
      this.tail = Buffer.from(this.tail.subarray(cut));
    }
  }

  /**
   * Checks the file (magic, footer, checksum, seq) and gives it its final name, durably; throws
   * SnapshotCorruptError (and removes the file) if it is not a complete snapshot of `seq`.
   */
  finish(): SnapshotInfo {
    const what = `snapshot ${this.seq} received`;
    try {
      const t = this.tail;
      if (this.bytes < MAGIC.length + 4 + END.length || t.length < END.length + 4 || !t.subarray(t.length - END.length).equals(END)) throw new SnapshotCorruptError(`${what}: no end marker (cut short)`);
      const footerLen = t.readUInt32LE(t.length - END.length - 4);
      const footerAtInTail = t.length - END.length - 4 - footerLen;
      if (footerLen > TAIL_KEEP || footerAtInTail < 0) throw new SnapshotCorruptError(`${what}: footer length out of range`);
      let footer: Record<string, unknown>;
      try {
        footer = packr.unpack(t.subarray(footerAtInTail, footerAtInTail + footerLen)) as Record<string, unknown>;
      } catch {
        throw new SnapshotCorruptError(`${what}: footer undecodable`);
      }
      this.hash.update(t.subarray(0, footerAtInTail));
      if (footer?.['format'] !== FORMAT || footer['seq'] !== this.seq) throw new SnapshotCorruptError(`${what}: footer format or seq wrong`);
      if (this.hash.digest('hex') !== footer['sha256']) throw new SnapshotCorruptError(`${what}: checksum mismatch`);
      this.file.commit();
      const f = footer as unknown as SnapshotMeta;
      return { seq: this.seq, epoch: f.epoch, stateHash: f.stateHash, accounts: f.accounts, orders: f.orders, createdMs: f.createdMs, path: this.file.path, bytes: this.bytes };
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  abort(): void {
    this.file.abort();
  }
}

/**
 * A snapshot at `s.seq` describes the state after this log's entry there: the log holds that entry
 * with the same epoch and state hash, or it is the log's base (whose hash may be unknown, '').
 */
export function agreesWithLog(log: Pick<CommandLog, 'base' | 'entryAt'>, s: Pick<SnapshotMeta, 'seq' | 'epoch' | 'stateHash'>): boolean {
  const base = log.base();
  if (s.seq === base.seq && base.seq > 0) return base.epoch === s.epoch && (base.stateHash === '' || base.stateHash === s.stateHash);
  const e = log.entryAt(s.seq);
  return e !== undefined && e.epoch === s.epoch && e.stateHash === s.stateHash;
}

/** The snapshot files of one node: newest first, pruned to `keep`. */
export class SnapshotStore {
  constructor(readonly dir: string, readonly keep = 2) {
    assert(Number.isInteger(keep) && keep >= 1, 'snapshot store: keep must be >= 1');
    mkdirSync(dir, { recursive: true });
    // A `.tmp` is a write that never finished (a crash): never valid, never needed.
    for (const name of readdirSync(dir)) if (name.endsWith('.tmp')) unlinkSync(join(dir, name));
  }

  /** Complete files, newest (highest seq) first. Listing does not validate them. */
  list(): Array<{ seq: number; path: string; bytes: number }> {
    const out: Array<{ seq: number; path: string; bytes: number }> = [];
    for (const name of readdirSync(this.dir)) {
      const seq = seqOfName(name);
      if (seq === null) continue;
      const path = join(this.dir, name);
      out.push({ seq, path, bytes: statSync(path).size });
    }
    return out.sort((a, b) => b.seq - a.seq);
  }

  path(seq: number): string {
    return join(this.dir, snapshotName(seq));
  }

  has(seq: number): boolean {
    return existsSync(this.path(seq));
  }

  writer(seq: number): SnapshotWriter {
    return new SnapshotWriter(this.dir, seq);
  }

  /**
   * Receives a snapshot from a peer a chunk at a time, straight to a `.tmp` file with the checksum
   * computed as the bytes arrive: no copy of the whole file in memory and no long synchronous
   * hash at the end (a leader fetching its followers' snapshot must not stall).
   */
  receive(seq: number): SnapshotReceiver {
    return new SnapshotReceiver(this.dir, seq);
  }

  /**
   * Keeps the newest `keep` files. A file is only ever deleted once a newer one exists, so the
   * newest valid snapshot survives whatever the newer ones turn out to hold.
   */
  prune(): number {
    let removed = 0;
    for (const f of this.list().slice(this.keep)) {
      unlinkSync(f.path);
      removed += 1;
    }
    return removed;
  }
}

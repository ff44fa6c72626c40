// CommandLog on SQLite (better-sqlite3) in WAL mode with synchronous=FULL. One row per appended
// batch: its entries packed as one MessagePack blob, so a group commit is one INSERT and one fsync
// (a row and two index entries per command cost ~20 µs of CPU each, measured in bench:writes; a
// row per batch costs ~3 µs per command). The idempotency index lives in memory (client-index.ts),
// rebuilt from the newest rows when the log opens. Raft's hard state lives in the same file
// (log_meta), written in its own transaction before the caller answers.
// The newest entries are also kept in memory (a bounded tail), so the leader ships and followers
// apply what was just written without reading it back.
// Invariants: rows cover seqs 1..last without gap or overlap (checked on open); a row's entries are
// immutable except that truncateAfter may shorten the last row it keeps; the tail cache always
// equals the last `tail.length` entries; a write that fails with a disk error (full, I/O,
// read-only) throws StorageError and leaves the file and every cache as they were; any other
// failure (a bug) is thrown as is.
import Database from 'better-sqlite3';
import { Packr } from 'msgpackr';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { assert } from '../domain/assert.js';
import type { Command, Result, Seq } from '../domain/types.js';
import {
  appendProblem, EMPTY_BASE, EMPTY_HARD_STATE, freezeEntry, LogCorruptError, StorageError, type CommandLog, type HardState, type LogBase, type LogEntry,
} from './command-log.js';
import { ClientIndex } from './client-index.js';

interface BatchRow {
  first_seq: number;
  last_seq: number;
  entries: Buffer;
}

const SCHEMA_VERSION = 4;
/** Entries kept in memory at the end of the log. */
const TAIL_MAX = 8192;
/** Client ids remembered for idempotency by default (docs/order-entry.md, "Idempotency window"). */
export const DEFAULT_IDEMPOTENCY_WINDOW = 1_000_000;
const DISK_ERRORS = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|NOMEM|BUSY|LOCKED|PROTOCOL)/;

// Plain arrays and maps (no msgpackr records), so the stored bytes do not depend on a packer's state.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** A batch's stored bytes: per entry [epoch, clientId, tsMs, command, result, stateHash]; seqs follow the row's first_seq. */
export function encodeBatch(entries: readonly LogEntry[]): Buffer {
  const rows = new Array<unknown[]>(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    rows[i] = [e.epoch, e.clientId, e.tsMs, e.command, e.result, e.stateHash];
  }
  return packr.pack(rows);
}

/** The inverse of encodeBatch; throws LogCorruptError on bytes that are not a batch. */
export function decodeBatch(firstSeq: number, bytes: Uint8Array): LogEntry[] {
  let rows: unknown;
  try {
    rows = packr.unpack(bytes);
  } catch (err) {
    throw new LogCorruptError(`batch at seq ${firstSeq}: undecodable (${(err as Error).message})`);
  }
  if (!Array.isArray(rows)) throw new LogCorruptError(`batch at seq ${firstSeq}: not an array`);
  return rows.map((r: unknown, i) => {
    if (!Array.isArray(r) || r.length !== 6 || typeof r[0] !== 'number' || typeof r[1] !== 'string' || typeof r[2] !== 'number' || typeof r[5] !== 'string') {
      throw new LogCorruptError(`batch at seq ${firstSeq}: entry ${i} malformed`);
    }
    return { epoch: r[0], seq: (firstSeq + i) as Seq, clientId: r[1], tsMs: r[2], command: r[3] as Command, result: r[4] as Result, stateHash: r[5] };
  });
}

/** Runs a write; a disk-level SQLite failure becomes StorageError. */
function onDisk<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && DISK_ERRORS.test(code)) throw new StorageError(`${what}: ${code}: ${(err as Error).message}`);
    throw err;
  }
}

export interface SqliteLogOptions {
  /** How many of the newest client ids are remembered for idempotency (default 1,000,000). */
  idempotencyWindow?: number;
  /**
   * Where dropThrough puts what it removes: 'archive' copies the batches into
   * `<dir>/archive/log-<from>-<to>.db` first (same table, readable with any SQLite), 'drop' only
   * deletes them. Default 'archive'.
   */
  retention?: 'archive' | 'drop';
  /** Each durable append (one batch, one fsync): its entries, bytes and duration (metrics only). */
  onAppend?: (entries: number, bytes: number, ms: number) => void;
}

export class SqliteCommandLog implements CommandLog {
  private readonly db: Database.Database;
  private last: number;
  private lastEpoch: number;
  private hard: HardState;
  private baseAt: LogBase;
  private readonly retention: 'archive' | 'drop';
  /** The last tail.length entries; tail[i] has seq tailFrom + i. */
  private tail: LogEntry[] = [];
  private tailFrom = 1;
  /** The row read last from disk, decoded: catch-up and replay read rows in order. */
  private decoded: { first: number; entries: LogEntry[] } | null = null;
  private readonly insert: Database.Statement<[number, number, number, number, Buffer]>;
  private readonly rowAt: Database.Statement<[number], BatchRow>;
  private readonly rowsFrom: Database.Statement<[number], BatchRow>;
  private readonly rowsIn: Database.Statement<[number, number], BatchRow>;
  private readonly firstAboveEpoch: Database.Statement<[number], BatchRow>;
  private readonly delFrom: Database.Statement<[number]>;
  private readonly shorten: Database.Statement<[number, number, Buffer, number]>;
  private readonly putMeta: Database.Statement<[string, string]>;
  private readonly truncateTx: (seq: number, keep: { first: number; entries: LogEntry[] } | null) => void;
  private readonly clientIds: ClientIndex;
  private readonly onAppend: SqliteLogOptions['onAppend'];

  constructor(readonly path: string, opts: SqliteLogOptions = {}) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // FULL: every commit is fsynced before it returns; nothing is acknowledged before that.
    this.db.pragma('synchronous = FULL');
    const meta = (key: string) => {
      const exists = this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_meta'`).get();
      return exists === undefined ? undefined : this.db.prepare<[string], { value: string }>(`SELECT value FROM log_meta WHERE key = ?`).get(key)?.value;
    };
    const version = meta('schema');
    if (version !== undefined && version !== String(SCHEMA_VERSION)) {
      this.db.close();
      throw new LogCorruptError(`${path}: log schema ${version}, this build reads ${SCHEMA_VERSION} (wipe the data dir: the node rejoins as a learner and is refilled from its peers)`);
    }
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS log_batch (
        first_seq INTEGER PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        last_epoch INTEGER NOT NULL,
        n INTEGER NOT NULL,
        entries BLOB NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS log_batch_epoch ON log_batch (last_epoch, first_seq);
    `);
    if (version === undefined) this.db.prepare(`INSERT INTO log_meta (key, value) VALUES ('schema', ?)`).run(String(SCHEMA_VERSION));
    const hard = meta('hard_state');
    this.hard = hard === undefined ? EMPTY_HARD_STATE : (JSON.parse(hard) as HardState);
    const base = meta('base');
    this.baseAt = base === undefined ? EMPTY_BASE : (JSON.parse(base) as LogBase);
    this.retention = opts.retention ?? 'archive';
    this.onAppend = opts.onAppend;
    // Rows must tile base+1..last: each starts where the previous ended (one row per batch, so cheap).
    let expected = this.baseAt.seq + 1;
    let lastEpoch = this.baseAt.epoch;
    let gap: string | null = null;
    for (const r of this.db.prepare<[], { first_seq: number; last_seq: number; last_epoch: number; n: number }>(
      'SELECT first_seq, last_seq, last_epoch, n FROM log_batch ORDER BY first_seq',
    ).iterate()) {
      if (r.first_seq !== expected || r.last_seq < r.first_seq || r.n !== r.last_seq - r.first_seq + 1 || r.last_epoch < lastEpoch) {
        gap = `a batch ${r.first_seq}..${r.last_seq} where seq ${expected} was expected`;
        break;
      }
      expected = r.last_seq + 1;
      lastEpoch = r.last_epoch;
    }
    if (gap !== null) {
      this.db.close();
      throw new LogCorruptError(`${path}: log is not contiguous from ${this.baseAt.seq + 1} (${gap})`);
    }
    this.last = expected - 1;
    this.lastEpoch = lastEpoch;
    this.tailFrom = this.last + 1;
    this.insert = this.db.prepare('INSERT INTO log_batch (first_seq, last_seq, last_epoch, n, entries) VALUES (?, ?, ?, ?, ?)');
    this.rowAt = this.db.prepare('SELECT first_seq, last_seq, entries FROM log_batch WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1');
    this.rowsFrom = this.db.prepare('SELECT first_seq, last_seq, entries FROM log_batch WHERE last_seq >= ? ORDER BY first_seq');
    this.rowsIn = this.db.prepare('SELECT first_seq, last_seq, entries FROM log_batch WHERE last_seq >= ? AND first_seq <= ? ORDER BY first_seq');
    this.firstAboveEpoch = this.db.prepare('SELECT first_seq, last_seq, entries FROM log_batch WHERE last_epoch > ? ORDER BY last_epoch, first_seq LIMIT 1');
    this.delFrom = this.db.prepare('DELETE FROM log_batch WHERE first_seq >= ?');
    this.shorten = this.db.prepare('UPDATE log_batch SET last_seq = ?, last_epoch = ?, entries = ?, n = ? WHERE first_seq = ?');
    this.putMeta = this.db.prepare('INSERT INTO log_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    this.truncateTx = this.db.transaction((seq: number, keep: { first: number; entries: LogEntry[] } | null) => {
      this.delFrom.run(seq + 1);
      if (keep !== null) {
        // The row holding seq also held entries after it: rewrite it with its prefix.
        const kept = keep.entries.slice(0, seq - keep.first + 1);
        this.delFrom.run(keep.first);
        this.insert.run(keep.first, seq, kept.at(-1)!.epoch, kept.length, encodeBatch(kept));
      }
    });
    this.clientIds = new ClientIndex(opts.idempotencyWindow ?? DEFAULT_IDEMPOTENCY_WINDOW);
    const from = Math.max(this.baseAt.seq + 1, this.last - this.clientIds.window + 1);
    this.clientIds.reset(from - 1);
    for (const e of this.entriesFrom(from)) this.clientIds.add(e.clientId, e.seq);
  }

  hardState(): HardState {
    return this.hard;
  }

  setHardState(h: HardState): void {
    onDisk('hard state write', () => this.putMeta.run('hard_state', JSON.stringify(h)));
    this.hard = { ...h };
  }

  lastSeq(): number {
    return this.last;
  }

  /** How many client ids the idempotency index holds, and how many it may hold. */
  idempotency(): { ids: number; window: number } {
    return { ids: this.clientIds.size, window: this.clientIds.window };
  }

  base(): LogBase {
    return this.baseAt;
  }

  epochAt(seq: number): number | undefined {
    if (seq === 0) return 0;
    if (seq < this.baseAt.seq || seq > this.last) return undefined;
    if (seq === this.last) return this.lastEpoch;
    if (seq === this.baseAt.seq) return this.baseAt.epoch;
    return this.entryAt(seq)?.epoch;
  }

  lastSeqOfEpochAtMost(epoch: number): number {
    if (this.lastEpoch <= epoch) return this.last;
    const row = this.firstAboveEpoch.get(epoch);
    // Every held entry is above `epoch`: the answer is at or below the base (committed, common to all).
    if (row === undefined) return this.baseAt.seq;
    const entries = this.decode(row);
    const i = entries.findIndex((e) => e.epoch > epoch);
    assert(i >= 0, `batch ${row.first_seq} has last epoch above ${epoch} but no entry above it`);
    return row.first_seq + i - 1;
  }

  entries(from: number, to: number): LogEntry[] {
    assert(from > this.baseAt.seq && to <= this.last && from <= to + 1, `entries ${from}..${to} outside ${this.baseAt.seq + 1}..${this.last}`);
    if (from > to) return [];
    if (from >= this.tailFrom) return this.tail.slice(from - this.tailFrom, to - this.tailFrom + 1);
    const out: LogEntry[] = [];
    for (const row of this.rowsIn.all(from, to)) {
      for (const e of this.decode(row)) if (e.seq >= from && e.seq <= to) out.push(e);
    }
    assert(out.length === to - from + 1, `entries ${from}..${to}: the file gave ${out.length}`);
    return out;
  }

  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    const problem = appendProblem(this.last, this.lastEpoch, entries);
    assert(problem === null, problem ?? '');
    // Checked before writing, so a refused batch leaves nothing behind (all or none).
    const seen = entries.length > 1 ? new Set<string>() : null;
    for (const e of entries) {
      if (this.clientIds.get(e.clientId) !== undefined || seen?.has(e.clientId)) throw new Error(`duplicate client id ${e.clientId}`);
      seen?.add(e.clientId);
    }
    const lastEntry = entries[entries.length - 1]!;
    const bytes = encodeBatch(entries);
    const t0 = this.onAppend ? performance.now() : 0;
    onDisk('log append', () => this.insert.run(entries[0]!.seq, lastEntry.seq, lastEntry.epoch, entries.length, bytes));
    this.onAppend?.(entries.length, bytes.length, performance.now() - t0);
    this.last = lastEntry.seq;
    this.lastEpoch = lastEntry.epoch;
    for (const e of entries) this.clientIds.add(e.clientId, e.seq);
    // Entries are immutable once logged: the caller's objects are frozen, kept and shared.
    for (const e of entries) this.tail.push(freezeEntry(e));
    if (this.tail.length > TAIL_MAX) {
      const drop = this.tail.length - TAIL_MAX / 2;
      this.tail.splice(0, drop);
      this.tailFrom += drop;
    }
  }

  findByClientId(clientId: string): LogEntry | undefined {
    const seq = this.clientIds.get(clientId);
    return seq === undefined ? undefined : this.entryAt(seq);
  }

  *entriesFrom(fromSeq: number): IterableIterator<LogEntry> {
    const from = Math.max(this.baseAt.seq + 1, fromSeq);
    if (from >= this.tailFrom) {
      // Copied: the tail may change while the caller iterates.
      yield* this.tail.slice(from - this.tailFrom);
      return;
    }
    for (const row of this.rowsFrom.iterate(from)) {
      for (const e of this.decode(row)) if (e.seq >= from) yield e;
    }
  }

  entryAt(seq: number): LogEntry | undefined {
    if (seq <= this.baseAt.seq || seq > this.last) return undefined;
    if (seq >= this.tailFrom) return this.tail[seq - this.tailFrom];
    const d = this.decoded;
    if (d !== null && seq >= d.first && seq < d.first + d.entries.length) return d.entries[seq - d.first];
    const row = this.rowAt.get(seq);
    assert(row !== undefined && row.last_seq >= seq, `seq ${seq} within 1..${this.last} has no batch`);
    return this.decode(row)[seq - row.first_seq];
  }

  truncateAfter(seq: number): number {
    assert(seq >= this.baseAt.seq && seq <= this.last, `truncate to ${seq} outside ${this.baseAt.seq}..${this.last}`);
    if (seq === this.last) return 0;
    const holder = seq === this.baseAt.seq ? undefined : this.rowAt.get(seq);
    const keep = holder !== undefined && holder.last_seq > seq ? { first: holder.first_seq, entries: this.decode(holder) } : null;
    onDisk('log truncate', () => this.truncateTx(seq, keep));
    const removed = this.last - seq;
    this.decoded = null;
    // The ids the truncated entries pushed out of the window come back, as far as the log still
    // holds them (retention may have dropped the oldest: those stay forgotten).
    this.clientIds.truncateAfter(seq, (from, to) => {
      const lo = Math.max(from, this.baseAt.seq + 1);
      return lo > to ? [] : this.entries(lo, to);
    });
    this.last = seq;
    this.lastEpoch = seq === this.baseAt.seq ? this.baseAt.epoch : this.entryAt(seq)!.epoch;
    if (seq + 1 < this.tailFrom) {
      this.tail = [];
      this.tailFrom = seq + 1;
    } else {
      this.tail.length = seq + 1 - this.tailFrom;
    }
    return removed;
  }

  dropThrough(seq: number): number {
    assert(seq <= this.last, `drop through ${seq} beyond the log (${this.last})`);
    // Never inside the idempotency window: a retry there must still find its entry.
    seq = Math.min(seq, this.last - this.clientIds.window);
    if (seq <= this.baseAt.seq) return 0;
    // Whole batches only: the new base is the last entry of the last batch dropped.
    const row = this.db.prepare<[number], { first_seq: number; last_seq: number; last_epoch: number; entries: Buffer }>(
      'SELECT first_seq, last_seq, last_epoch, entries FROM log_batch WHERE last_seq <= ? ORDER BY first_seq DESC LIMIT 1',
    ).get(seq);
    if (row === undefined) return 0;
    const lastEntry = this.decode(row).at(-1)!;
    const base: LogBase = { seq: row.last_seq, epoch: row.last_epoch, stateHash: lastEntry.stateHash };
    const from = this.baseAt.seq + 1;
    if (this.retention === 'archive') {
      // Copied (and durable) before the delete: a crash in between leaves the rows in both, never in
      // neither. Segments are plain SQLite files with the same table.
      const dir = join(dirname(this.path), 'archive');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `log-${String(from).padStart(14, '0')}-${String(base.seq).padStart(14, '0')}.db`);
      onDisk('log archive', () => {
        this.db.prepare('ATTACH DATABASE ? AS arch').run(file);
        try {
          this.db.exec('CREATE TABLE IF NOT EXISTS arch.log_batch (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, last_epoch INTEGER NOT NULL, n INTEGER NOT NULL, entries BLOB NOT NULL) STRICT');
          this.db.prepare('INSERT OR IGNORE INTO arch.log_batch SELECT * FROM main.log_batch WHERE last_seq <= ?').run(base.seq);
        } finally {
          this.db.exec('DETACH DATABASE arch');
        }
      });
    }
    onDisk('log retention', () =>
      this.db.transaction(() => {
        this.db.prepare('DELETE FROM log_batch WHERE last_seq <= ?').run(base.seq);
        this.putMeta.run('base', JSON.stringify(base));
      })(),
    );
    this.baseAt = base;
    this.decoded = null;
    if (this.tailFrom <= base.seq) {
      this.tail.splice(0, base.seq + 1 - this.tailFrom);
      this.tailFrom = base.seq + 1;
    }
    return base.seq - from + 1;
  }

  resetTo(base: LogBase): void {
    onDisk('log reset', () =>
      this.db.transaction(() => {
        this.db.prepare('DELETE FROM log_batch').run();
        this.putMeta.run('base', JSON.stringify(base));
      })(),
    );
    this.baseAt = { ...base };
    this.last = base.seq;
    this.lastEpoch = base.epoch;
    this.tail = [];
    this.tailFrom = base.seq + 1;
    this.decoded = null;
    this.clientIds.reset(base.seq);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private decode(row: BatchRow): LogEntry[] {
    if (this.decoded?.first === row.first_seq && this.decoded.entries.length === row.last_seq - row.first_seq + 1) return this.decoded.entries;
    const entries = decodeBatch(row.first_seq, row.entries);
    if (entries.length !== row.last_seq - row.first_seq + 1) throw new LogCorruptError(`${this.path}: batch ${row.first_seq}..${row.last_seq} holds ${entries.length} entries`);
    this.decoded = { first: row.first_seq, entries };
    return entries;
  }
}

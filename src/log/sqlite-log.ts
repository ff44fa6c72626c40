// CommandLog on SQLite (better-sqlite3) in WAL mode with synchronous=FULL: a batch is one
// transaction, so one fsync covers the whole group commit and a crash leaves all or none of it.
// Commands and results are stored as JSON text (integers only, so JSON is exact). Raft's hard state
// lives in the same file (log_meta), written in its own transaction before the caller answers.
// The newest entries are also kept in memory (a bounded tail), so the leader ships and followers
// apply what was just written without reading it back; a filter over every client id answers
// "never used" without a query (client-id-filter.ts).
// Invariants: the tail cache always equals the last `tail.length` rows; a write that fails with
// a disk error (full, I/O, read-only) throws StorageError and leaves the file and the cache as they
// were; any other failure (a constraint, a bug) is thrown as is.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { assert } from '../domain/assert.js';
import type { Command, Result, Seq } from '../domain/types.js';
import {
  appendProblem, EMPTY_HARD_STATE, freezeEntry, LogCorruptError, StorageError, type CommandLog, type HardState, type LogEntry,
} from './command-log.js';
import { ClientIdFilter } from './client-id-filter.js';

interface Row {
  epoch: number;
  seq: number;
  client_id: string;
  ts_ms: number;
  command: string;
  result: string;
  state_hash: string;
}

const SCHEMA_VERSION = 3;
/** Entries kept in memory at the end of the log. */
const TAIL_MAX = 8192;
const DISK_ERRORS = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|NOMEM|BUSY|LOCKED|PROTOCOL)/;

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

export class SqliteCommandLog implements CommandLog {
  private readonly db: Database.Database;
  private last: number;
  private hard: HardState;
  /** The last tail.length entries; tail[i] has seq tailFrom + i. */
  private tail: LogEntry[] = [];
  private tailFrom = 1;
  private readonly insert: Database.Statement<[number, number, string, number, string, string, string]>;
  private readonly at: Database.Statement<[number], Row>;
  private readonly epochOf: Database.Statement<[number], { epoch: number }>;
  private readonly byClient: Database.Statement<[string], Row>;
  private readonly from: Database.Statement<[number], Row>;
  private readonly range: Database.Statement<[number, number], Row>;
  private readonly firstAbove: Database.Statement<[number], { s: number | null }>;
  private readonly del: Database.Statement<[number]>;
  private readonly putMeta: Database.Statement<[string, string]>;
  private readonly appendTx: (entries: readonly LogEntry[]) => void;
  private readonly clientIds = new ClientIdFilter();

  constructor(readonly path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // FULL: every commit is fsynced before it returns; nothing is acknowledged before that.
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS log (
        seq INTEGER PRIMARY KEY,
        epoch INTEGER NOT NULL,
        client_id TEXT NOT NULL UNIQUE,
        ts_ms INTEGER NOT NULL,
        command TEXT NOT NULL,
        result TEXT NOT NULL,
        state_hash TEXT NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS log_epoch ON log (epoch, seq);
    `);
    const meta = (key: string) => this.db.prepare<[string], { value: string }>(`SELECT value FROM log_meta WHERE key = ?`).get(key)?.value;
    const version = meta('schema');
    if (version === undefined) {
      this.db.prepare(`INSERT INTO log_meta (key, value) VALUES ('schema', ?)`).run(String(SCHEMA_VERSION));
    } else if (version !== String(SCHEMA_VERSION)) {
      throw new LogCorruptError(`${path}: log schema ${version}, this build reads ${SCHEMA_VERSION} (wipe the data dir: the node rejoins as a learner and is refilled from its peers)`);
    }
    const hard = meta('hard_state');
    this.hard = hard === undefined ? EMPTY_HARD_STATE : (JSON.parse(hard) as HardState);
    const bounds = this.db.prepare<[], { n: number; lo: number | null; hi: number | null }>(
      'SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM log',
    ).get()!;
    if (bounds.n > 0 && (bounds.lo !== 1 || bounds.hi !== bounds.n)) {
      throw new LogCorruptError(`${path}: log is not contiguous from 1 (count ${bounds.n}, min ${bounds.lo}, max ${bounds.hi})`);
    }
    this.last = bounds.hi ?? 0;
    this.tailFrom = this.last + 1;
    this.insert = this.db.prepare(
      'INSERT INTO log (seq, epoch, client_id, ts_ms, command, result, state_hash) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.at = this.db.prepare('SELECT * FROM log WHERE seq = ?');
    this.epochOf = this.db.prepare('SELECT epoch FROM log WHERE seq = ?');
    this.byClient = this.db.prepare('SELECT * FROM log WHERE client_id = ?');
    this.from = this.db.prepare('SELECT * FROM log WHERE seq >= ? ORDER BY seq');
    this.range = this.db.prepare('SELECT * FROM log WHERE seq >= ? AND seq <= ? ORDER BY seq');
    this.firstAbove = this.db.prepare('SELECT min(seq) AS s FROM log WHERE epoch > ?');
    this.del = this.db.prepare('DELETE FROM log WHERE seq > ?');
    this.putMeta = this.db.prepare('INSERT INTO log_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    // Every client id in the log, so a new id (nearly every command) needs no index lookup.
    for (const row of this.db.prepare<[], { client_id: string }>('SELECT client_id FROM log').iterate()) this.clientIds.add(row.client_id);
    this.appendTx = this.db.transaction((entries: readonly LogEntry[]) => {
      for (const e of entries) {
        this.insert.run(e.seq, e.epoch, e.clientId, e.tsMs, JSON.stringify(e.command), JSON.stringify(e.result), e.stateHash);
      }
    });
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

  epochAt(seq: number): number | undefined {
    if (seq === 0) return 0;
    if (seq < 0 || seq > this.last) return undefined;
    if (seq >= this.tailFrom) return this.tail[seq - this.tailFrom]!.epoch;
    return this.epochOf.get(seq)?.epoch;
  }

  lastSeqOfEpochAtMost(epoch: number): number {
    const next = this.firstAbove.get(epoch);
    return next?.s == null ? this.last : next.s - 1;
  }

  entries(from: number, to: number): LogEntry[] {
    assert(from >= 1 && to <= this.last && from <= to + 1, `entries ${from}..${to} outside 1..${this.last}`);
    if (from >= this.tailFrom) return this.tail.slice(from - this.tailFrom, to - this.tailFrom + 1);
    return this.range.all(from, to).map(toEntry);
  }

  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    const problem = appendProblem(this.last, this.epochAt(this.last)!, entries);
    assert(problem === null, problem ?? '');
    onDisk('log append', () => this.appendTx(entries));
    this.last += entries.length;
    for (const e of entries) this.clientIds.add(e.clientId);
    // Entries are immutable once logged: the caller's objects are frozen, kept and shared.
    for (const e of entries) this.tail.push(freezeEntry(e));
    if (this.tail.length > TAIL_MAX) {
      const drop = this.tail.length - TAIL_MAX / 2;
      this.tail.splice(0, drop);
      this.tailFrom += drop;
    }
  }

  findByClientId(clientId: string): LogEntry | undefined {
    if (!this.clientIds.mayContain(clientId)) return undefined;
    const row = this.byClient.get(clientId);
    return row === undefined ? undefined : toEntry(row);
  }

  *entriesFrom(fromSeq: number): IterableIterator<LogEntry> {
    for (const row of this.from.iterate(fromSeq)) yield toEntry(row);
  }

  entryAt(seq: number): LogEntry | undefined {
    if (seq >= this.tailFrom && seq <= this.last) return this.tail[seq - this.tailFrom];
    const row = this.at.get(seq);
    return row === undefined ? undefined : toEntry(row);
  }

  truncateAfter(seq: number): number {
    assert(seq >= 0 && seq <= this.last, `truncate to ${seq} outside 0..${this.last}`);
    const removed = onDisk('log truncate', () => this.del.run(seq).changes);
    this.last = seq;
    if (seq + 1 < this.tailFrom) {
      this.tail = [];
      this.tailFrom = seq + 1;
    } else {
      this.tail.length = seq + 1 - this.tailFrom;
    }
    return removed;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function toEntry(row: Row): LogEntry {
  return {
    epoch: row.epoch,
    seq: row.seq as Seq,
    clientId: row.client_id,
    tsMs: row.ts_ms,
    command: JSON.parse(row.command) as Command,
    result: JSON.parse(row.result) as Result,
    stateHash: row.state_hash,
  };
}

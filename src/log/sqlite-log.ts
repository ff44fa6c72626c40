// CommandLog on SQLite (better-sqlite3) in WAL mode with synchronous=FULL: a batch is one
// transaction, so one fsync covers the whole group commit and a crash leaves all or none of it.
// Commands and results are stored as JSON text (integers only, so JSON is exact).
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { assert } from '../domain/assert.js';
import type { Command, Result, Seq } from '../domain/types.js';
import { LogCorruptError, type CommandLog, type LogEntry } from './command-log.js';

interface Row {
  epoch: number;
  seq: number;
  client_id: string;
  ts_ms: number;
  command: string;
  result: string;
  state_hash: string;
}

const SCHEMA_VERSION = 2;

export class SqliteCommandLog implements CommandLog {
  private readonly db: Database.Database;
  private last: number;
  private readonly insert: Database.Statement<[number, number, string, number, string, string, string]>;
  private readonly at: Database.Statement<[number], Row>;
  private readonly byClient: Database.Statement<[string], Row>;
  private readonly from: Database.Statement<[number], Row>;
  private readonly appendTx: (entries: readonly LogEntry[]) => void;

  constructor(readonly path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // FULL: every commit is fsynced before it returns; the core acks only after that.
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
    const version = this.db.prepare<[], { value: string }>(`SELECT value FROM log_meta WHERE key = 'schema'`).get();
    if (version === undefined) {
      this.db.prepare(`INSERT INTO log_meta (key, value) VALUES ('schema', ?)`).run(String(SCHEMA_VERSION));
    } else if (version.value !== String(SCHEMA_VERSION)) {
      throw new LogCorruptError(`${path}: log schema ${version.value}, this build reads ${SCHEMA_VERSION}`);
    }
    const bounds = this.db.prepare<[], { n: number; lo: number | null; hi: number | null }>(
      'SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM log',
    ).get()!;
    if (bounds.n > 0 && (bounds.lo !== 1 || bounds.hi !== bounds.n)) {
      throw new LogCorruptError(`${path}: log is not contiguous from 1 (count ${bounds.n}, min ${bounds.lo}, max ${bounds.hi})`);
    }
    this.last = bounds.hi ?? 0;
    this.insert = this.db.prepare(
      'INSERT INTO log (seq, epoch, client_id, ts_ms, command, result, state_hash) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.at = this.db.prepare('SELECT * FROM log WHERE seq = ?');
    this.byClient = this.db.prepare('SELECT * FROM log WHERE client_id = ?');
    this.from = this.db.prepare('SELECT * FROM log WHERE seq >= ? ORDER BY seq');
    this.appendTx = this.db.transaction((entries: readonly LogEntry[]) => {
      for (const e of entries) {
        this.insert.run(e.seq, e.epoch, e.clientId, e.tsMs, JSON.stringify(e.command), JSON.stringify(e.result), e.stateHash);
      }
    });
  }

  lastSeq(): number {
    return this.last;
  }

  appendBatch(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    let expected = this.last + 1;
    let epoch = this.lastEpoch();
    for (const e of entries) {
      assert(e.seq === expected, `log append out of order: got seq ${e.seq}, expected ${expected}`);
      assert(e.epoch >= epoch, `log append with epoch ${e.epoch} after epoch ${epoch}`);
      expected += 1;
      epoch = e.epoch;
    }
    this.appendTx(entries);
    this.last = expected - 1;
  }

  findByClientId(clientId: string): LogEntry | undefined {
    const row = this.byClient.get(clientId);
    return row === undefined ? undefined : toEntry(row);
  }

  *entriesFrom(fromSeq: number): IterableIterator<LogEntry> {
    for (const row of this.from.iterate(fromSeq)) yield toEntry(row);
  }

  entryAt(seq: number): LogEntry | undefined {
    const row = this.at.get(seq);
    return row === undefined ? undefined : toEntry(row);
  }

  lastEpoch(): number {
    return this.last === 0 ? 0 : this.at.get(this.last)!.epoch;
  }

  epochEnd(epoch: number): number {
    const next = this.db.prepare<[number], { s: number | null }>('SELECT min(seq) AS s FROM log WHERE epoch > ?').get(epoch);
    return next?.s == null ? this.last : next.s - 1;
  }

  truncateAfter(seq: number): number {
    assert(seq >= 0 && seq <= this.last, `truncate to ${seq} outside 0..${this.last}`);
    const removed = this.db.prepare('DELETE FROM log WHERE seq > ?').run(seq).changes;
    this.last = seq;
    return removed;
  }

  currentEpoch(): number {
    const row = this.db.prepare<[], { value: string }>(`SELECT value FROM log_meta WHERE key = 'current_epoch'`).get();
    return Math.max(row ? Number(row.value) : 0, this.lastEpoch());
  }

  setCurrentEpoch(epoch: number): void {
    assert(epoch >= this.currentEpoch(), `current epoch may not go back (${epoch} < ${this.currentEpoch()})`);
    this.db
      .prepare(`INSERT INTO log_meta (key, value) VALUES ('current_epoch', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`)
      .run(String(epoch));
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

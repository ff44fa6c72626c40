// One contract suite run against every CommandLog implementation (the entries and Raft's hard state),
// plus SQLite-only durability and disk-error checks.
import { describe, it, expect, afterEach } from 'vitest';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StorageError, type CommandLog, type LogEntry } from '../../src/log/command-log.js';
import { SqliteCommandLog } from '../../src/log/sqlite-log.js';
import { MemoryCommandLog } from '../../src/log/memory-log.js';
import type { Seq } from '../../src/domain/types.js';

function entry(seq: number, clientId = `c${seq}`): LogEntry {
  return {
    epoch: seq < 50 ? 1 : 2,
    seq: seq as Seq,
    clientId,
    tsMs: 1_700_000_000_000 + seq,
    command: { type: 'deposit', account: 'alice', amount: 100 } as LogEntry['command'],
    result: { status: 'accepted', collateral: 100 * seq } as LogEntry['result'],
    stateHash: `h${seq}`,
  };
}

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sm-log-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

const impls: Array<[string, () => CommandLog]> = [
  ['memory', () => new MemoryCommandLog()],
  ['sqlite', () => new SqliteCommandLog(join(tempDir(), 'log.db'), { idempotencyWindow: 20 })],
];

describe.each(impls)('CommandLog contract: %s', (_name, make) => {
  it('starts empty and appends contiguous batches', () => {
    const log = make();
    expect(log.lastSeq()).toBe(0);
    log.append([entry(1), entry(2)]);
    log.append([entry(3)]);
    expect(log.lastSeq()).toBe(3);
    expect([...log.entriesFrom(2)].map((e) => e.seq)).toEqual([2, 3]);
    expect([...log.entriesFrom(1)][0]).toEqual(entry(1));
    log.close();
  });

  it('refuses a gap or a rewind without writing anything', () => {
    const log = make();
    log.append([entry(1)]);
    expect(() => log.append([entry(3)])).toThrow(/out of order/);
    expect(() => log.append([entry(2), entry(4)])).toThrow(/out of order/);
    expect(() => log.append([entry(1, 'x')])).toThrow(/out of order/);
    expect(log.lastSeq()).toBe(1);
    expect([...log.entriesFrom(1)]).toHaveLength(1);
    log.close();
  });

  it('finds entries by client id and refuses a reused id atomically', () => {
    const log = make();
    log.append([entry(1, 'k1'), entry(2, 'k2')]);
    expect(log.findByClientId('k2')?.seq).toBe(2);
    expect(log.findByClientId('nope')).toBeUndefined();
    expect(() => log.append([entry(3, 'k3'), entry(4, 'k1')])).toThrow();
    expect(log.lastSeq()).toBe(2);
    expect(log.findByClientId('k3')).toBeUndefined();
    log.append([entry(3, 'k3')]);
    expect(log.lastSeq()).toBe(3);
    log.close();
  });

  it('tracks epochs: lastSeqOfEpochAtMost finds where another lineage diverges, truncateAfter drops the tail', () => {
    const log = make();
    expect(log.epochAt(log.lastSeq())).toBe(0);
    log.append(Array.from({ length: 60 }, (_, i) => entry(i + 1)));
    expect(log.epochAt(60)).toBe(2);
    expect(log.epochAt(49)).toBe(1);
    expect(log.epochAt(61)).toBeUndefined();
    expect(log.entryAt(49)?.epoch).toBe(1);
    expect(log.lastSeqOfEpochAtMost(0)).toBe(0);
    expect(log.lastSeqOfEpochAtMost(1)).toBe(49);
    expect(log.lastSeqOfEpochAtMost(2)).toBe(60);
    expect(log.lastSeqOfEpochAtMost(7)).toBe(60);
    expect(log.entries(48, 51).map((e) => [e.seq, e.epoch])).toEqual([[48, 1], [49, 1], [50, 2], [51, 2]]);
    expect(() => log.append([{ ...entry(61), epoch: 1 }])).toThrow(/epoch/);
    expect(log.truncateAfter(55)).toBe(5);
    expect(log.lastSeq()).toBe(55);
    expect(log.epochAt(56)).toBeUndefined();
    expect(log.findByClientId('c56')).toBeUndefined();
    expect(log.entryAt(56)).toBeUndefined();
    log.append([{ ...entry(56), clientId: 'c56-new' }]);
    expect(log.entryAt(56)?.clientId).toBe('c56-new');
    expect(log.entries(55, 56).map((e) => e.clientId)).toEqual(['c55', 'c56-new']);
    log.close();
  });

  it('retention drops a committed prefix and moves the base; a reset starts the log after a given base', () => {
    const log = make();
    for (let s = 1; s <= 60; s += 10) log.append(Array.from({ length: 10 }, (_, i) => entry(s + i)));
    expect(log.base()).toEqual({ seq: 0, epoch: 0, stateHash: '' });
    const dropped = log.dropThrough(25);
    // Whole stored batches only (SQLite: 1..20 here, the batch 21..30 stays); memory: exactly 25.
    expect([20, 25]).toContain(dropped);
    const base = log.base();
    expect(base.seq).toBe(dropped);
    expect(base).toEqual({ seq: base.seq, epoch: 1, stateHash: `h${base.seq}` });
    expect(log.epochAt(base.seq)).toBe(1);
    expect(log.epochAt(base.seq - 1)).toBeUndefined();
    expect(log.entryAt(base.seq)).toBeUndefined();
    expect(log.entryAt(base.seq + 1)?.seq).toBe(base.seq + 1);
    expect([...log.entriesFrom(1)][0]!.seq).toBe(base.seq + 1);
    expect(log.findByClientId('c3')).toBeUndefined();
    expect(log.lastSeqOfEpochAtMost(0)).toBe(base.seq);
    expect(log.lastSeq()).toBe(60);
    expect(() => log.truncateAfter(base.seq - 1)).toThrow();
    log.resetTo({ seq: 500, epoch: 3, stateHash: 'h500' });
    expect(log.lastSeq()).toBe(500);
    expect(log.epochAt(500)).toBe(3);
    expect(log.entryAt(60)).toBeUndefined();
    expect(log.findByClientId('c60')).toBeUndefined();
    log.append([{ ...entry(501), epoch: 3 }]);
    expect(log.entries(501, 501)[0]!.clientId).toBe('c501');
    log.close();
  });

  it('keeps the Raft hard state (cluster id, epoch, vote, learner)', () => {
    const log = make();
    expect(log.hardState()).toEqual({ clusterId: null, epoch: 0, votedFor: null, learner: false });
    log.setHardState({ clusterId: 'c-1', epoch: 3, votedFor: 'core-b', learner: true });
    expect(log.hardState()).toEqual({ clusterId: 'c-1', epoch: 3, votedFor: 'core-b', learner: true });
    log.close();
  });

  it('entries are immutable once logged: mutating a returned entry changes nothing', () => {
    const log = make();
    log.append([entry(1)]);
    for (const e of [log.findByClientId('c1')!, log.entries(1, 1)[0]!, log.entryAt(1)!]) {
      try {
        (e.result as { collateral?: number }).collateral = -1; // a copy, or frozen (TypeError)
      } catch (err) {
        expect(err).toBeInstanceOf(TypeError);
      }
    }
    expect(log.findByClientId('c1')).toEqual(entry(1));
    expect(log.entries(1, 1)[0]).toEqual(entry(1));
    log.close();
  });
});

describe('SqliteCommandLog', () => {
  it('survives reopen with the same entries and lastSeq', () => {
    const path = join(tempDir(), 'log.db');
    const a = new SqliteCommandLog(path);
    a.append(Array.from({ length: 100 }, (_, i) => entry(i + 1)));
    a.close();
    const b = new SqliteCommandLog(path);
    expect(b.lastSeq()).toBe(100);
    expect([...b.entriesFrom(1)]).toEqual(Array.from({ length: 100 }, (_, i) => entry(i + 1)));
    expect(() => b.append([entry(100)])).toThrow(/out of order/);
    b.append([entry(101)]);
    b.close();
  });

  it('keeps the hard state and serves old entries from disk after reopen', () => {
    const path = join(tempDir(), 'log.db');
    const a = new SqliteCommandLog(path);
    a.append(Array.from({ length: 20_000 }, (_, i) => entry(i + 1)));
    a.setHardState({ clusterId: 'c-9', epoch: 4, votedFor: 'core-a', learner: false });
    // Beyond the in-memory tail: read back from SQLite.
    expect(a.entries(1, 2)).toEqual([entry(1), entry(2)]);
    expect(a.epochAt(10)).toBe(1);
    a.close();
    const b = new SqliteCommandLog(path);
    expect(b.hardState()).toEqual({ clusterId: 'c-9', epoch: 4, votedFor: 'core-a', learner: false });
    expect(b.entries(19_999, 20_000)).toEqual([entry(19_999), entry(20_000)]);
    expect(b.truncateAfter(19_990)).toBe(10);
    b.append([{ ...entry(19_991), clientId: 'after-truncate' }]);
    expect(b.entryAt(19_991)?.clientId).toBe('after-truncate');
    b.close();
  });

  it('remembers client ids over its idempotency window, exactly, through truncation and reopen', () => {
    const path = join(tempDir(), 'log.db');
    const a = new SqliteCommandLog(path, { idempotencyWindow: 5 });
    a.append(Array.from({ length: 8 }, (_, i) => entry(i + 1)));
    // Window 5 at last 8: seqs 4..8 remembered, 1..3 forgotten (a retry that late is a new command).
    expect([1, 2, 3, 4, 8].map((s) => a.findByClientId(`c${s}`)?.seq)).toEqual([undefined, undefined, undefined, 4, 8]);
    expect(a.idempotency()).toEqual({ ids: 5, window: 5 });
    expect(() => a.append([{ ...entry(9), clientId: 'c4' }])).toThrow(/duplicate client id/);
    // Truncating 8..6 brings 1..3 back into the window: read back from the file.
    expect(a.truncateAfter(5)).toBe(3);
    expect([1, 2, 5, 6].map((s) => a.findByClientId(`c${s}`)?.seq)).toEqual([1, 2, 5, undefined]);
    expect(a.idempotency().ids).toBe(5);
    a.append([{ ...entry(6), clientId: 'x6' }, { ...entry(7), clientId: 'x7' }]);
    a.close();
    const b = new SqliteCommandLog(path, { idempotencyWindow: 5 });
    expect([2, 3, 5].map((s) => b.findByClientId(`c${s}`)?.seq)).toEqual([undefined, 3, 5]);
    expect(b.findByClientId('x7')?.seq).toBe(7);
    expect(b.findByClientId('c7')).toBeUndefined();
    b.close();
  });

  it('a file from another schema version is refused with a way out', () => {
    const path = join(tempDir(), 'log.db');
    new SqliteCommandLog(path).close();
    const db = new Database(path);
    db.prepare(`UPDATE log_meta SET value = '3' WHERE key = 'schema'`).run();
    db.close();
    expect(() => new SqliteCommandLog(path)).toThrow(/log schema 3.*wipe the data dir/);
  });

  it('retention archives what it drops to a segment file and survives reopen; never inside the idempotency window', () => {
    const d = tempDir();
    const path = join(d, 'log.db');
    const a = new SqliteCommandLog(path, { idempotencyWindow: 1000 });
    for (let s = 1; s <= 3000; s += 100) a.append(Array.from({ length: 100 }, (_, i) => entry(s + i)));
    // Asked for 2500, but the newest 1000 stay for idempotency: through 2000.
    expect(a.dropThrough(2500)).toBe(2000);
    expect(a.findByClientId('c2001')?.seq).toBe(2001);
    a.close();
    const b = new SqliteCommandLog(path, { idempotencyWindow: 1000 });
    expect(b.base().seq).toBe(2000);
    expect(b.lastSeq()).toBe(3000);
    expect(b.entries(2001, 2002).map((e) => e.seq)).toEqual([2001, 2002]);
    b.close();
    const archive = new Database(join(d, 'archive', 'log-00000000000001-00000000002000.db'), { readonly: true });
    expect(archive.prepare<[], { n: number }>('SELECT sum(n) AS n FROM log_batch').get()!.n).toBe(2000);
    archive.close();
  });

  it('truncating an uncommitted tail after retention dropped the window\'s oldest entries keeps the log usable', () => {
    const log = new SqliteCommandLog(join(tempDir(), 'log.db'), { idempotencyWindow: 1000 });
    for (let s = 1; s <= 3000; s += 100) log.append(Array.from({ length: 100 }, (_, i) => entry(s + i)));
    // Retention at last − window, with a tail beyond the commit that a new leader then truncates.
    expect(log.dropThrough(2000)).toBe(2000);
    expect(log.truncateAfter(2950)).toBe(50);
    expect(log.findByClientId('c2950')?.seq).toBe(2950);
    expect(log.findByClientId('c2001')?.seq).toBe(2001);
    log.append([{ ...entry(2951), clientId: 'new-2951' }]);
    expect(log.lastSeq()).toBe(2951);
    log.close();
  });

  it('a full disk is a StorageError that leaves the log and the hard state as they were', () => {
    const path = join(tempDir(), 'log.db');
    const log = new SqliteCommandLog(path);
    log.append([entry(1)]);
    log.setHardState({ clusterId: 'c-1', epoch: 1, votedFor: null, learner: false });
    // Cap the file at its current size: the next page it needs makes SQLite answer SQLITE_FULL.
    const db = (log as unknown as { db: { pragma(s: string, o?: unknown): unknown } }).db;
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    const big = Array.from({ length: 200 }, (_, i) => ({ ...entry(i + 2), stateHash: 'x'.repeat(2000) }));
    expect(() => log.append(big)).toThrow(StorageError);
    expect(() => log.setHardState({ clusterId: 'c-1', epoch: 2, votedFor: 'x'.repeat(100_000), learner: false })).toThrow(StorageError);
    expect(log.lastSeq()).toBe(1);
    expect(log.hardState().epoch).toBe(1);
    db.pragma('max_page_count = 1073741823');
    log.append([entry(2)]);
    expect(log.lastSeq()).toBe(2);
    log.close();
  });
});

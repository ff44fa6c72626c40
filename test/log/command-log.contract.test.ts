// One contract suite run against every CommandLog implementation, plus SQLite-only durability checks.
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandLog, LogEntry } from '../../src/log/command-log.js';
import { SqliteCommandLog } from '../../src/log/sqlite-log.js';
import { MemoryCommandLog } from '../../src/log/memory-log.js';
import type { Seq } from '../../src/domain/types.js';

function entry(seq: number, clientId = `c${seq}`): LogEntry {
  return {
    seq: seq as Seq,
    clientId,
    tsMs: 1_700_000_000_000 + seq,
    command: { type: 'deposit', account: 'alice', amount: 100 } as LogEntry['command'],
    result: { status: 'accepted', collateral: 100 * seq } as LogEntry['result'],
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
  ['sqlite', () => new SqliteCommandLog(join(tempDir(), 'log.db'))],
];

describe.each(impls)('CommandLog contract: %s', (_name, make) => {
  it('starts empty and appends contiguous batches', () => {
    const log = make();
    expect(log.lastSeq()).toBe(0);
    log.appendBatch([entry(1), entry(2)]);
    log.appendBatch([entry(3)]);
    expect(log.lastSeq()).toBe(3);
    expect([...log.entriesFrom(2)].map((e) => e.seq)).toEqual([2, 3]);
    expect([...log.entriesFrom(1)][0]).toEqual(entry(1));
    log.close();
  });

  it('refuses a gap or a rewind without writing anything', () => {
    const log = make();
    log.appendBatch([entry(1)]);
    expect(() => log.appendBatch([entry(3)])).toThrow(/out of order/);
    expect(() => log.appendBatch([entry(2), entry(4)])).toThrow(/out of order/);
    expect(() => log.appendBatch([entry(1, 'x')])).toThrow(/out of order/);
    expect(log.lastSeq()).toBe(1);
    expect([...log.entriesFrom(1)]).toHaveLength(1);
    log.close();
  });

  it('finds entries by client id and refuses a reused id atomically', () => {
    const log = make();
    log.appendBatch([entry(1, 'k1'), entry(2, 'k2')]);
    expect(log.findByClientId('k2')?.seq).toBe(2);
    expect(log.findByClientId('nope')).toBeUndefined();
    expect(() => log.appendBatch([entry(3, 'k3'), entry(4, 'k1')])).toThrow();
    expect(log.lastSeq()).toBe(2);
    expect(log.findByClientId('k3')).toBeUndefined();
    log.appendBatch([entry(3, 'k3')]);
    expect(log.lastSeq()).toBe(3);
    log.close();
  });

  it('hands out copies: mutating a returned entry does not change the log', () => {
    const log = make();
    log.appendBatch([entry(1)]);
    const e = log.findByClientId('c1')!;
    (e.result as { collateral?: number }).collateral = -1;
    expect(log.findByClientId('c1')).toEqual(entry(1));
    log.close();
  });
});

describe('SqliteCommandLog', () => {
  it('survives reopen with the same entries and lastSeq', () => {
    const path = join(tempDir(), 'log.db');
    const a = new SqliteCommandLog(path);
    a.appendBatch(Array.from({ length: 100 }, (_, i) => entry(i + 1)));
    a.close();
    const b = new SqliteCommandLog(path);
    expect(b.lastSeq()).toBe(100);
    expect([...b.entriesFrom(1)]).toEqual(Array.from({ length: 100 }, (_, i) => entry(i + 1)));
    expect(() => b.appendBatch([entry(100)])).toThrow(/out of order/);
    b.appendBatch([entry(101)]);
    b.close();
  });
});

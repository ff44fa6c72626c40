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

  it('tracks epochs: epochEnd finds where another lineage diverges, truncateAfter drops the tail', () => {
    const log = make();
    expect(log.lastEpoch()).toBe(0);
    log.appendBatch(Array.from({ length: 60 }, (_, i) => entry(i + 1)));
    expect(log.lastEpoch()).toBe(2);
    expect(log.entryAt(49)?.epoch).toBe(1);
    expect(log.epochEnd(1)).toBe(49);
    expect(log.epochEnd(2)).toBe(60);
    expect(log.epochEnd(7)).toBe(60);
    expect(() => log.appendBatch([{ ...entry(61), epoch: 1 }])).toThrow(/epoch/);
    expect(log.truncateAfter(55)).toBe(5);
    expect(log.lastSeq()).toBe(55);
    expect(log.findByClientId('c56')).toBeUndefined();
    expect(log.entryAt(56)).toBeUndefined();
    log.appendBatch([{ ...entry(56), clientId: 'c56-new' }]);
    expect(log.entryAt(56)?.clientId).toBe('c56-new');
    log.close();
  });

  it('persists the current epoch and never lets it go back', () => {
    const log = make();
    expect(log.currentEpoch()).toBe(0);
    log.setCurrentEpoch(3);
    expect(log.currentEpoch()).toBe(3);
    expect(() => log.setCurrentEpoch(2)).toThrow(/go back/);
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

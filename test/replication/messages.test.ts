// The cluster wire codec: binary MessagePack frames round-trip every message type; text frames,
// unknown fields, malformed or non-contiguous entries are refused (the link is then closed).
import { describe, expect, it } from 'vitest';
import { packFrame } from '../../src/http/order-session.js';
import type { LogEntry } from '../../src/log/command-log.js';
import type { Command, Result, Seq } from '../../src/domain/types.js';
import { decodeMessage, encodeMessage, MSG_APPEND, MSG_VOTE, type ClusterMessage } from '../../src/replication/messages.js';

const entry = (seq: number): LogEntry => ({ epoch: 2, seq: seq as Seq, clientId: `c-${seq}`, tsMs: 1_700_000_000_000 + seq, command: { type: 'deposit', account: 'a', amount: 5 } as Command, result: { status: 'accepted', collateral: 5 * seq } as unknown as Result, stateHash: seq % 2 ? '' : 'ab'.repeat(32) });
const append: ClusterMessage = { t: MSG_APPEND, cluster: 'c1', from: 'core-a', epoch: 2, prevSeq: 9, prevEpoch: 1, entries: [entry(10), entry(11), entry(12)], commit: 9 };

describe('cluster message codec', () => {
  it('round-trips an APPEND and a VOTE as binary frames', () => {
    expect(decodeMessage(encodeMessage(append))).toEqual(append);
    const vote: ClusterMessage = { t: MSG_VOTE, cluster: 'c1', from: 'core-b', epoch: 3, pre: true, lastSeq: 12, lastEpoch: 2, transfer: true };
    expect(decodeMessage(encodeMessage(vote))).toEqual(vote);
  });

  it('refuses text frames, unknown fields, malformed and non-contiguous entries', () => {
    expect(() => decodeMessage(JSON.stringify(append))).toThrow(/binary/);
    expect(() => decodeMessage(packFrame({ ...append, extra: 1 }))).toThrow();
    expect(() => decodeMessage(packFrame({ ...append, entries: [{ ...entry(10), extra: 1 }] }))).toThrow(/fields/);
    expect(() => decodeMessage(packFrame({ ...append, entries: [{ ...entry(10), seq: 1.5 }] }))).toThrow(/seq/);
    expect(() => decodeMessage(packFrame({ ...append, entries: [{ ...entry(10), command: [1] }] }))).toThrow(/command/);
    expect(() => decodeMessage(packFrame({ ...append, entries: [entry(10), entry(12)] }))).toThrow(/expected 11/);
    expect(() => decodeMessage(Buffer.from([0xc1]))).toThrow();
  });
});

describe('APPEND encoding', () => {
  it('encodes the entries once for every follower and decodes to the same message', () => {
    const entries = [entry(10), entry(11), entry(12)];
    const a = encodeMessage({ ...append, entries, commit: 9 } as ClusterMessage);
    const b = encodeMessage({ ...append, from: 'core-a', entries: [...entries], commit: 12 } as ClusterMessage);
    expect(decodeMessage(a)).toEqual({ ...append, entries, commit: 9 });
    expect(decodeMessage(b)).toEqual({ ...append, entries, commit: 12 });
    // Another range starting at the same entry is not confused with the cached one.
    const c = encodeMessage({ ...append, entries: entries.slice(0, 2) } as ClusterMessage);
    expect((decodeMessage(c) as { entries: unknown[] }).entries).toEqual(entries.slice(0, 2));
  });
});

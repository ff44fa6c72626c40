// Cluster wire messages between core nodes (docs/replication.md, "Messages"): numbered types, one
// schema and one encode/decode pair. Every message carries the sender, its cluster id and an epoch.
//   1 HELLO        {lastSeq, lastEpoch, learner}                    who are you? (joining / learner)
//   2 HELLO_REPLY  {lastSeq, lastEpoch, learner, genesis}           genesis: a cluster id, no history
//   3 VOTE         {pre, lastSeq, lastEpoch}                        RequestVote / PreVote
//   4 VOTE_REPLY   {pre, granted}
//   5 APPEND       {prevSeq, prevEpoch, entries, commit}            AppendEntries (no entries: heartbeat)
//   6 APPEND_REPLY {ok, match, hint, lastSeq}                       ok: durable up to match; else retry from hint+1
//   7 TIMEOUT_NOW  {}                                               leader → caught-up follower: campaign now (handoff)
//   8 RESET        {base, baseEpoch, baseHash, commit}             leader → follower it holds no entries for: start your
//                                                                   log after base, take your state from a snapshot
// VOTE may carry `transfer: true` (an election started by TIMEOUT_NOW): voters skip leader stickiness.
// Frames are binary MessagePack (msgpackr, plain maps): no JSON text to build or parse per entry.
// Invariants: decode() accepts only well-formed messages (anything else throws, and the link is
// closed); entries in one APPEND are contiguous and follow prevSeq.
import { z } from 'zod';
import { Packr } from 'msgpackr';
import type { LogEntry } from '../log/command-log.js';

export type NodeId = string;

/** What Raft needs of an entry: the epoch that created it and its position. */
export interface RaftEntry {
  epoch: number;
  seq: number;
}

export const MSG_HELLO = 1;
export const MSG_HELLO_REPLY = 2;
export const MSG_VOTE = 3;
export const MSG_VOTE_REPLY = 4;
export const MSG_APPEND = 5;
export const MSG_APPEND_REPLY = 6;
export const MSG_TIMEOUT_NOW = 7;
export const MSG_RESET = 8;

interface Base {
  cluster: string | null;
  from: NodeId;
  epoch: number;
}

export type RaftMessage<E extends RaftEntry> =
  | (Base & { t: typeof MSG_HELLO; lastSeq: number; lastEpoch: number; learner: boolean })
  | (Base & { t: typeof MSG_HELLO_REPLY; lastSeq: number; lastEpoch: number; learner: boolean; genesis: boolean })
  | (Base & { t: typeof MSG_VOTE; cluster: string; pre: boolean; lastSeq: number; lastEpoch: number; transfer?: boolean })
  | (Base & { t: typeof MSG_VOTE_REPLY; cluster: string; pre: boolean; granted: boolean })
  | (Base & { t: typeof MSG_APPEND; cluster: string; prevSeq: number; prevEpoch: number; entries: E[]; commit: number })
  | (Base & { t: typeof MSG_APPEND_REPLY; cluster: string; ok: boolean; match: number; hint: number; lastSeq: number })
  | (Base & { t: typeof MSG_TIMEOUT_NOW; cluster: string })
  | (Base & { t: typeof MSG_RESET; cluster: string; base: number; baseEpoch: number; baseHash: string; commit: number });

const n = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const node = z.string().min(1).max(128);
const cluster = z.string().min(1).max(128);
const base = { from: node, epoch: n };

/**
 * An APPEND's entries are checked by hand rather than by a zod schema per entry (the same rules:
 * exactly these seven fields, integers in range, objects for command and result): a follower
 * decodes every entry the leader ships, and a schema walk per entry cost more than applying it.
 */
const ENTRY_KEYS = ['epoch', 'seq', 'clientId', 'tsMs', 'command', 'result', 'stateHash'];
function entryProblem(e: unknown): string | null {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return 'not an object';
  const r = e as Record<string, unknown>;
  const keys = Object.keys(r);
  if (keys.length !== ENTRY_KEYS.length || !ENTRY_KEYS.every((k) => k in r)) return `fields ${keys.join(',')}`;
  const int = (v: unknown, min: number) => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
  if (!int(r.epoch, 1) || !int(r.seq, 1) || !int(r.tsMs, Number.MIN_SAFE_INTEGER)) return 'bad epoch, seq or tsMs';
  if (typeof r.clientId !== 'string' || r.clientId.length > 256) return 'bad clientId';
  if (typeof r.stateHash !== 'string' || r.stateHash.length > 128) return 'bad stateHash';
  for (const k of ['command', 'result'] as const) {
    const v = r[k];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return `bad ${k}`;
  }
  return null;
}

const MessageSchema = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal(MSG_HELLO), cluster: cluster.nullable(), ...base, lastSeq: n, lastEpoch: n, learner: z.boolean() }),
  z.strictObject({ t: z.literal(MSG_HELLO_REPLY), cluster: cluster.nullable(), ...base, lastSeq: n, lastEpoch: n, learner: z.boolean(), genesis: z.boolean() }),
  z.strictObject({ t: z.literal(MSG_VOTE), cluster, ...base, pre: z.boolean(), lastSeq: n, lastEpoch: n, transfer: z.boolean().optional() }),
  z.strictObject({ t: z.literal(MSG_VOTE_REPLY), cluster, ...base, pre: z.boolean(), granted: z.boolean() }),
  z.strictObject({ t: z.literal(MSG_APPEND), cluster, ...base, prevSeq: n, prevEpoch: n, entries: z.array(z.unknown()).max(100_000), commit: n }),
  z.strictObject({ t: z.literal(MSG_APPEND_REPLY), cluster, ...base, ok: z.boolean(), match: n, hint: n, lastSeq: n }),
  z.strictObject({ t: z.literal(MSG_TIMEOUT_NOW), cluster, ...base }),
  z.strictObject({ t: z.literal(MSG_RESET), cluster, ...base, base: n, baseEpoch: n, baseHash: z.string().max(128), commit: n }),
]);

export type ClusterMessage = RaftMessage<LogEntry>;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/**
 * An APPEND's entries, encoded once however many followers they are shipped to: followers in step
 * get the same entries (the same frozen objects from the log's tail), so the encoding is cached by
 * the first entry and reused while the last one matches too.
 */
const encodedEntries = new WeakMap<object, { last: object; bytes: Buffer }>();
const KEYS = new Map<string, Buffer>();
const key = (k: string) => KEYS.get(k) ?? (KEYS.set(k, packr.pack(k)), KEYS.get(k)!);

export function encodeMessage(msg: ClusterMessage): Buffer {
  if (msg.t !== MSG_APPEND || msg.entries.length === 0) return packr.pack(msg);
  const first = msg.entries[0]!;
  const last = msg.entries[msg.entries.length - 1]!;
  let cached = encodedEntries.get(first);
  if (cached === undefined || cached.last !== last) {
    cached = { last, bytes: packr.pack(msg.entries) };
    encodedEntries.set(first, cached);
  }
  // The same map a plain pack would write (MessagePack maps are just their pairs in sequence).
  const fields = Object.entries(msg);
  const parts: Buffer[] = [Buffer.from([0x80 | fields.length])];
  for (const [k, v] of fields) parts.push(key(k), k === 'entries' ? cached.bytes : packr.pack(v));
  return Buffer.concat(parts);
}

/** Decodes and validates one binary frame; throws on anything malformed. */
export function decodeMessage(data: unknown): ClusterMessage {
  if (!Buffer.isBuffer(data)) throw new Error('cluster frames are binary MessagePack');
  const msg = MessageSchema.parse(packr.unpack(data)) as ClusterMessage;
  if (msg.t === MSG_APPEND) {
    msg.entries.forEach((e, i) => {
      const problem = entryProblem(e);
      if (problem !== null) throw new Error(`APPEND entry ${i}: ${problem}`);
      if (e.seq !== msg.prevSeq + 1 + i) throw new Error(`APPEND entry ${i} has seq ${e.seq}, expected ${msg.prevSeq + 1 + i}`);
    });
  }
  return msg;
}

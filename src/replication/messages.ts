// Cluster wire messages between core nodes (docs/replication.md, "Messages"): numbered types, one
// schema and one encode/decode pair. Every message carries the sender, its cluster id and an epoch.
//   1 HELLO        {lastSeq, lastEpoch, learner}                    who are you? (joining / learner)
//   2 HELLO_REPLY  {lastSeq, lastEpoch, learner, genesis}           genesis: a cluster id, no history
//   3 VOTE         {pre, lastSeq, lastEpoch}                        RequestVote / PreVote
//   4 VOTE_REPLY   {pre, granted}
//   5 APPEND       {prevSeq, prevEpoch, entries, commit}            AppendEntries (no entries: heartbeat)
//   6 APPEND_REPLY {ok, match, hint, lastSeq}                       ok: durable up to match; else retry from hint+1
//   7 TIMEOUT_NOW  {}                                               leader → caught-up follower: campaign now (handoff)
// VOTE may carry `transfer: true` (an election started by TIMEOUT_NOW): voters skip leader stickiness.
// Invariants: decode() accepts only well-formed messages (anything else throws, and the link is
// closed); entries in one APPEND are contiguous and follow prevSeq.
import { z } from 'zod';
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
  | (Base & { t: typeof MSG_TIMEOUT_NOW; cluster: string });

const n = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const node = z.string().min(1).max(128);
const cluster = z.string().min(1).max(128);
const base = { from: node, epoch: n };

const entry = z.strictObject({
  epoch: z.number().int().min(1),
  seq: z.number().int().min(1),
  clientId: z.string().max(256),
  tsMs: z.number().int(),
  command: z.record(z.string(), z.unknown()),
  result: z.record(z.string(), z.unknown()),
  stateHash: z.string().max(128),
});

const MessageSchema = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal(MSG_HELLO), cluster: cluster.nullable(), ...base, lastSeq: n, lastEpoch: n, learner: z.boolean() }),
  z.strictObject({ t: z.literal(MSG_HELLO_REPLY), cluster: cluster.nullable(), ...base, lastSeq: n, lastEpoch: n, learner: z.boolean(), genesis: z.boolean() }),
  z.strictObject({ t: z.literal(MSG_VOTE), cluster, ...base, pre: z.boolean(), lastSeq: n, lastEpoch: n, transfer: z.boolean().optional() }),
  z.strictObject({ t: z.literal(MSG_VOTE_REPLY), cluster, ...base, pre: z.boolean(), granted: z.boolean() }),
  z.strictObject({ t: z.literal(MSG_APPEND), cluster, ...base, prevSeq: n, prevEpoch: n, entries: z.array(entry).max(100_000), commit: n }),
  z.strictObject({ t: z.literal(MSG_APPEND_REPLY), cluster, ...base, ok: z.boolean(), match: n, hint: n, lastSeq: n }),
  z.strictObject({ t: z.literal(MSG_TIMEOUT_NOW), cluster, ...base }),
]);

export type ClusterMessage = RaftMessage<LogEntry>;

export function encodeMessage(msg: ClusterMessage): string {
  return JSON.stringify(msg);
}

/** Parses and validates one frame; throws on anything malformed. */
export function decodeMessage(data: unknown): ClusterMessage {
  const text = typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString('utf8') : String(data);
  const msg = MessageSchema.parse(JSON.parse(text)) as ClusterMessage;
  if (msg.t === MSG_APPEND) {
    msg.entries.forEach((e, i) => {
      if (e.seq !== msg.prevSeq + 1 + i) throw new Error(`APPEND entry ${i} has seq ${e.seq}, expected ${msg.prevSeq + 1 + i}`);
    });
  }
  return msg;
}

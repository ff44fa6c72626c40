// Wire protocol between the primary and its standby: JSON text frames over one WebSocket that the
// standby opens to the primary at /v1/replication, authenticated by the cluster secret
// (`Authorization: Bearer <secret>`, compared in constant time). Message types:
//   1 HELLO     standby → primary  {node, epoch: its current epoch, lastSeq, lastEpoch}
//   2 WELCOME   primary → standby  {node, epoch, truncateTo: seq | null} — truncate first, then
//               entries follow from lastSeq+1 (or truncateTo+1)
//   3 ACK       standby → primary  {seq}: every entry up to seq is durable on the standby
//   4 APPEND    primary → standby  {epoch, entries}: contiguous, in seq order, each with its
//               (epoch, seq) and the state hash after it
//   5 HEARTBEAT primary → standby  {epoch, seq: primary's last durable seq}, every heartbeatMs
//   6 FENCED    either way         {epoch}: "I know a higher epoch than yours" — the receiver is
//               stale and must stop acting on its epoch; the connection is closed after it
// Invariants: a standby never stores an entry whose epoch is below its current epoch, never acks
// an entry before it is durable, and halts (never acks again) if replaying an entry gives a
// different result or state hash than the primary's.
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import type { LogEntry } from '../log/command-log.js';

export const REPLICATION_PATH = '/v1/replication';

export const MSG_HELLO = 1;
export const MSG_WELCOME = 2;
export const MSG_ACK = 3;
export const MSG_APPEND = 4;
export const MSG_HEARTBEAT = 5;
export const MSG_FENCED = 6;

const seq = z.number().int().min(0);
const entry = z.strictObject({
  epoch: z.number().int().min(1),
  seq: z.number().int().min(1),
  clientId: z.string(),
  tsMs: z.number().int(),
  command: z.record(z.string(), z.unknown()),
  result: z.record(z.string(), z.unknown()),
  stateHash: z.string(),
});

export const ReplMessageSchema = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal(MSG_HELLO), node: z.string(), epoch: seq, lastSeq: seq, lastEpoch: seq }),
  z.strictObject({ t: z.literal(MSG_WELCOME), node: z.string(), epoch: seq, truncateTo: seq.nullable() }),
  z.strictObject({ t: z.literal(MSG_ACK), seq }),
  z.strictObject({ t: z.literal(MSG_APPEND), epoch: seq, entries: z.array(entry).min(1) }),
  z.strictObject({ t: z.literal(MSG_HEARTBEAT), epoch: seq, seq }),
  z.strictObject({ t: z.literal(MSG_FENCED), epoch: seq }),
]);

export type ReplMessage =
  | { t: typeof MSG_HELLO; node: string; epoch: number; lastSeq: number; lastEpoch: number }
  | { t: typeof MSG_WELCOME; node: string; epoch: number; truncateTo: number | null }
  | { t: typeof MSG_ACK; seq: number }
  | { t: typeof MSG_APPEND; epoch: number; entries: LogEntry[] }
  | { t: typeof MSG_HEARTBEAT; epoch: number; seq: number }
  | { t: typeof MSG_FENCED; epoch: number };

export function encodeRepl(msg: ReplMessage): string {
  return JSON.stringify(msg);
}

/** Parses and validates one frame; throws on anything malformed. */
export function decodeRepl(data: unknown): ReplMessage {
  const text = typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString('utf8') : String(data);
  return ReplMessageSchema.parse(JSON.parse(text)) as ReplMessage;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of `Authorization: Bearer <secret>`. */
export function authorizedPeer(req: IncomingMessage, secret: string): boolean {
  const header = req.headers.authorization ?? '';
  const presented = header.startsWith('Bearer ') ? header.slice(7) : '';
  return timingSafeEqual(digest(presented), digest(secret));
}

export class FencedError extends Error {
  override name = 'FencedError';
  constructor(readonly epoch: number) {
    super(`fenced: a node holds epoch ${epoch}`);
  }
}

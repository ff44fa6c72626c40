// Order-entry sessions: a persistent WebSocket to the leader (`/v1/session`) carrying many commands
// per frame in MessagePack, authenticated once with the same bearer tokens as HTTP, acks streamed
// back in request order (docs/order-entry.md has the wire format).
// Invariants: a frame's commands reach the sequencer only if the frame decoded, passed the same
// strict schema as HTTP, and every command is authorized for the session's token (still valid at
// that frame); acks leave in the order the requests came in, whatever order they complete in;
// everything is bounded — sessions (maxSessions), frame bytes, commands per frame, commands in
// flight per session (a frame over the window is answered `overloaded`, like HTTP's 429, and not
// queued), requests not yet answered (MAX_UNANSWERED_FRAMES), and unsent ack bytes (a client that
// stops reading is closed as a slow consumer). A
// session lives on one leader: when this node stops leading, requests still in flight are answered
// `not_primary` (outcome unknown: retry with the same clientIds at the new leader) and the session
// is closed with 4503.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { Packr } from 'msgpackr';
import type { Logger } from 'pino';
import type { Core } from '../publish/core.js';
import type { DomainConfig } from '../domain/types.js';
import { HaltedError, LeadershipLostError, OverloadedError } from '../engine/sequencer.js';
import { authenticate, tokenFrom } from '../auth/tokens.js';
import { authorizeCommand } from '../auth/rules.js';
import { commandSchemas, describeIssues, type CommandInput } from './schemas.js';
import { CommitTimeoutError, outcomeBody, toSubmission } from './write-routes.js';

export const SESSION_PATH = '/v1/session';
export const CLOSE_NOT_PRIMARY = 4503;
export const CLOSE_UNAUTHENTICATED = 4401;
export const CLOSE_BAD_FRAME = 4400;
export const CLOSE_SLOW_CONSUMER = 4508;
/** Requests of one session not yet answered, at most (answers leave in order). */
export const MAX_UNANSWERED_FRAMES = 4096;

export interface SessionLimits {
  maxSessions: number;
  maxFrameBytes: number;
  maxCommandsPerFrame: number;
  /** Commands a session may have submitted and not yet acknowledged. */
  maxInFlight: number;
  /** Unsent ack bytes before the session is closed as a slow consumer. */
  maxBufferedBytes: number;
}

export interface SessionServerOptions {
  core: () => Core | null;
  domain: DomainConfig;
  limits: SessionLimits;
  commitTimeoutMs: number;
  secrets: { jwtSecret: string; clusterSecret: string };
  /** Role and leader hints for not_primary answers. */
  describe: () => { role: string; epoch: number; leader?: unknown; leaderUrl?: unknown };
  logger?: Logger;
  /** Called with the code of every refused upgrade and every request answered with an error (metrics). */
  countError?: (code: string) => void;
}

/** One request's answer, held until every earlier request of the session has been answered. */
interface Slot {
  id: unknown;
  answer: Record<string, unknown> | null;
  commands: number;
}

// Plain maps and arrays on the wire (no msgpackr records), so any MessagePack library can talk to it.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

function errorOf(code: string, message: string, extra: Record<string, unknown> = {}) {
  return { error: { code, message, ...extra } };
}

export class OrderSessionServer {
  private readonly wss: WebSocketServer;
  private readonly batch: ReturnType<typeof commandSchemas>['batch'];
  private sessions = 0;
  /** Counters for status and metrics. */
  readonly stats = { opened: 0, refused: 0, frames: 0, commands: 0, overloaded: 0, closedSlow: 0 };

  constructor(private readonly opts: SessionServerOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: opts.limits.maxFrameBytes, perMessageDeflate: false });
    this.batch = commandSchemas(opts.domain, opts.limits.maxCommandsPerFrame).batch;
  }

  get open(): number {
    return this.sessions;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== SESSION_PATH) return false;
    const refuse = (status: number, code: string, message: string, extra: Record<string, unknown> = {}) => {
      this.stats.refused++;
      this.opts.countError?.(code);
      const body = JSON.stringify(errorOf(code, message, extra));
      socket.on('error', () => {});
      socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 429 ? 'Too Many Requests' : 'Service Unavailable'}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${status !== 401 ? 'Retry-After: 1\r\n' : ''}\r\n${body}`);
      return true;
    };
    if (this.sessions >= this.opts.limits.maxSessions) return refuse(429, 'too_many_sessions', `this node holds at most ${this.opts.limits.maxSessions} sessions`);
    const token = tokenFrom({ authorization: req.headers.authorization }, req.url);
    this.sessions++; // reserved now, released when the socket closes (however the upgrade ends)
    socket.once('close', () => this.sessions--);
    void authenticate(token, this.opts.secrets).then(
      (claims) => {
        if (socket.destroyed) return;
        if (!claims) return refuse(401, 'unauthenticated', 'a session needs a valid bearer token (Authorization header or ?token=)');
        const core = this.opts.core();
        if (!core) {
          const d = this.opts.describe();
          const { error } = notPrimaryBody(d, `this core node is ${d.role}; open sessions at the leader`);
          return refuse(503, error.code, error.message, error);
        }
        this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(ws, token!, core));
      },
      () => socket.destroy(),
    );
    return true;
  }

  private serve(ws: WebSocket, token: string, core: Core): void {
    this.stats.opened++;
    ws.on('error', () => ws.terminate());
    const slots: Slot[] = [];
    let inFlight = 0;
    let closing = false;
    const limits = this.opts.limits;

    const send = (msg: Record<string, unknown>) => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > limits.maxBufferedBytes) {
        this.stats.closedSlow++;
        ws.close(CLOSE_SLOW_CONSUMER, 'slow consumer: acks not read');
        return;
      }
      ws.send(packr.pack(msg));
    };
    const flush = () => {
      while (slots.length > 0 && slots[0]!.answer !== null) {
        const s = slots.shift()!;
        inFlight -= s.commands;
        send({ id: s.id, ...s.answer });
      }
    };
    const answer = (slot: Slot, body: Record<string, unknown>) => {
      if (body.error !== undefined) this.opts.countError?.((body.error as { code: string }).code);
      slot.answer = body;
      flush();
    };
    const endSession = (why: string) => {
      if (closing) return;
      closing = true;
      const d = this.opts.describe();
      send(notPrimaryBody(d, why));
      ws.close(CLOSE_NOT_PRIMARY, JSON.stringify({ code: 'not_primary', ...hint(d) }).slice(0, 120));
    };

    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (closing) return;
      this.stats.frames++;
      let frame: unknown;
      try {
        if (!isBinary) throw new Error('text frame');
        frame = packr.unpack(data);
      } catch {
        ws.close(CLOSE_BAD_FRAME, 'frames are binary MessagePack');
        return;
      }
      // Answers wait for every earlier one, so frames refused at once (not counted in the window)
      // pile up behind one slow request: bounded too.
      if (slots.length >= MAX_UNANSWERED_FRAMES) {
        this.stats.closedSlow++;
        ws.close(CLOSE_SLOW_CONSUMER, `more than ${MAX_UNANSWERED_FRAMES} requests unanswered`);
        closing = true;
        return;
      }
      const id = typeof frame === 'object' && frame !== null && 'id' in frame ? (frame as { id: unknown }).id : null;
      const slot: Slot = { id: typeof id === 'number' || typeof id === 'string' ? id : null, answer: null, commands: 0 };
      slots.push(slot);
      const { id: _drop, ...body } = (typeof frame === 'object' && frame !== null ? frame : {}) as Record<string, unknown>;
      const parsed = this.batch.safeParse(body);
      if (!parsed.success) {
        const { code, issues } = describeIssues(parsed.error);
        return answer(slot, errorOf(code, 'frame rejected by validation: send {id, commands: [...]}', { issues }));
      }
      const inputs: CommandInput[] = parsed.data.commands;
      const ids = new Set<string>();
      for (const i of inputs) {
        if (ids.has(i.clientId)) return answer(slot, errorOf('duplicate_client_id_in_batch', `clientId ${i.clientId} appears twice`));
        ids.add(i.clientId);
      }
      if (inFlight + inputs.length > limits.maxInFlight) {
        this.stats.overloaded++;
        return answer(slot, errorOf('overloaded', `session window full: ${inFlight} commands in flight, at most ${limits.maxInFlight}; wait for acks`, { inFlight, maxInFlight: limits.maxInFlight }));
      }
      slot.commands = inputs.length;
      inFlight += inputs.length;
      void this.submit(token, core, inputs).then((result) => {
        answer(slot, result.body);
        if (result.endSession) endSession(result.endSession);
      });
    });
  }

  /** Authorizes and submits one frame's commands; the answer body, and whether the session must end. */
  private async submit(token: string, core: Core, inputs: CommandInput[]): Promise<{ body: Record<string, unknown>; endSession?: string }> {
    const claims = await authenticate(token, this.opts.secrets);
    if (!claims) return { body: errorOf('unauthenticated', 'the session token expired: open a new session') , endSession: 'token expired' };
    for (const [index, input] of inputs.entries()) {
      const decision = authorizeCommand(claims, toSubmission(input).command);
      if (!decision.ok) return { body: errorOf(decision.code, decision.reason, { index, clientId: input.clientId }) };
    }
    if (this.opts.core() !== core) {
      const why = 'this node is no longer the leader: retry with the same clientIds at the new leader';
      return { body: notPrimaryBody(this.opts.describe(), why), endSession: why };
    }
    this.stats.commands += inputs.length;
    let timer: NodeJS.Timeout | undefined;
    try {
      const outcomes = await Promise.race([
        core.sequencer.submit(inputs.map(toSubmission)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new CommitTimeoutError(this.opts.commitTimeoutMs)), this.opts.commitTimeoutMs);
        }),
      ]);
      return { body: { results: outcomes.map(outcomeBody) } };
    } catch (err) {
      if (err instanceof CommitTimeoutError) return { body: errorOf('commit_timeout', err.message) };
      if (err instanceof OverloadedError) return { body: errorOf('overloaded', err.message, { queued: err.queued, maxQueue: err.maxQueue }) };
      if (err instanceof LeadershipLostError) return { body: notPrimaryBody(this.opts.describe(), err.message), endSession: err.message };
      if (err instanceof HaltedError) return { body: errorOf('halted', err.message), endSession: err.message };
      this.opts.logger?.error({ err: err instanceof Error ? err.stack : String(err) }, 'order session: unexpected submit failure');
      return { body: errorOf('internal', 'unexpected failure; the outcome is unknown: retry with the same clientIds'), endSession: 'internal error' };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * This node stopped leading: every session is told (a frame without id) and closed with 4503.
   * Requests still unacknowledged have an unknown outcome: the client retries them, with the same
   * clientIds, at the new leader.
   */
  endAll(why: string): void {
    const d = this.opts.describe();
    const msg = packr.pack(notPrimaryBody(d, why));
    for (const ws of this.wss.clients) {
      if (ws.readyState === ws.OPEN) ws.send(msg);
      ws.close(CLOSE_NOT_PRIMARY, JSON.stringify({ code: 'not_primary', ...hint(d) }).slice(0, 120));
    }
  }

  close(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

function hint(d: { leader?: unknown; leaderUrl?: unknown }): { leader?: string; leaderUrl?: string } {
  return {
    ...(typeof d.leader === 'string' ? { leader: d.leader } : {}),
    ...(typeof d.leaderUrl === 'string' ? { leaderUrl: d.leaderUrl } : {}),
  };
}

function notPrimaryBody(d: { role: string; epoch: number; leader?: unknown; leaderUrl?: unknown }, why: string) {
  return errorOf('not_primary', why, { role: d.role, epoch: d.epoch, ...hint(d) });
}

/** Encodes a frame the way the server reads it (tests, the client library, benches). */
export function packFrame(frame: unknown): Buffer {
  return packr.pack(frame);
}

/** Decodes a frame the server sent. */
export function unpackFrame(data: Uint8Array): any {
  return packr.unpack(data);
}

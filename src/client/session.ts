// One order-entry session (WS /v1/session, docs/order-entry.md) as the client uses it: requests are
// MessagePack frames {id, commands}, answers come back in request order as {id, results} or
// {id, error}. A session lives on one leader: when it ends (4503 not_primary, a dropped socket),
// every request it had not answered fails with a retryable StatemirrorError, and the caller resends
// the same commands, with the same clientIds, wherever the leader is now.
// Invariants: at most `maxPending` requests unanswered (more fail with `overloaded` before they are
// sent); every pending request is settled exactly once (answer, error frame, or the close).
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { StatemirrorError, type CommandAnswer, type WireCommand } from './types.js';

// Plain maps and arrays, as the server speaks (no msgpackr records).
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

interface Pending {
  resolve: (answers: CommandAnswer[]) => void;
  reject: (err: StatemirrorError) => void;
}

export class OrderSession {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private ended: StatemirrorError | null = null;
  /** The leader the server named when it ended the session (not_primary), if any. */
  leaderUrl: string | null = null;

  private constructor(
    private readonly ws: WebSocket,
    readonly url: string,
    private readonly maxPending: number,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('close', (code: number, reason: Buffer) => this.end(new StatemirrorError(code === 4503 ? 'not_primary' : 'unreachable', `session at ${url} closed (${code} ${reason.toString()})`, 503, this.leaderUrl ? { leaderUrl: this.leaderUrl } : {})));
    ws.on('error', () => {}); // the close that follows settles everything
  }

  /**
   * Opens a session at `baseUrl`. Refused upgrades become the server's own error (its JSON body):
   * `not_primary` with `leaderUrl`, `unauthenticated`, `too_many_sessions`, or `unreachable`.
   */
  static open(baseUrl: string, token: string, opts: { timeoutMs: number; maxPending: number }): Promise<OrderSession> {
    const url = `${baseUrl.replace(/^http/, 'ws')}/v1/session`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, handshakeTimeout: opts.timeoutMs, perMessageDeflate: false });
      ws.once('open', () => resolve(new OrderSession(ws, baseUrl, opts.maxPending)));
      ws.once('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.length < 64 && chunks.push(c));
        res.on('end', () => {
          ws.terminate();
          reject(errorFromBody(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
        });
        res.on('error', () => reject(new StatemirrorError('unreachable', `session upgrade at ${url} failed`)));
      });
      ws.once('error', (err) => reject(new StatemirrorError('unreachable', `session at ${url}: ${err.message}`)));
    });
  }

  get open(): boolean {
    return this.ended === null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends one request; resolves with its answers (the batch answer), or fails with the server's error. */
  request(commands: WireCommand[]): Promise<CommandAnswer[]> {
    if (this.ended) return Promise.reject(this.ended);
    if (this.pending.size >= this.maxPending) return Promise.reject(new StatemirrorError('overloaded', `more than ${this.maxPending} session requests unanswered`, 429));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(packr.pack({ id, commands }), (err) => {
        if (err) this.settle(id, undefined, new StatemirrorError('unreachable', `session send failed: ${err.message}`));
      });
    });
  }

  close(): void {
    this.end(new StatemirrorError('closed', 'client closed'));
    this.ws.close();
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    let frame: { id?: number; results?: CommandAnswer[]; error?: { code?: string; message?: string; [k: string]: unknown } };
    try {
      if (!isBinary) throw new Error('text frame');
      frame = packr.unpack(data) as typeof frame;
    } catch {
      this.ws.terminate();
      return;
    }
    if (frame.id === undefined) {
      // The server's goodbye before 4503: remember where the leader is.
      if (typeof frame.error?.leaderUrl === 'string') this.leaderUrl = frame.error.leaderUrl;
      return;
    }
    if (frame.error) {
      const { code, message, ...details } = frame.error;
      if (typeof details.leaderUrl === 'string') this.leaderUrl = details.leaderUrl;
      this.settle(frame.id, undefined, new StatemirrorError(String(code ?? 'bad_response'), String(message ?? 'session error'), 0, details));
      return;
    }
    this.settle(frame.id, Array.isArray(frame.results) ? frame.results : [], undefined);
  }

  private settle(id: number, answers: CommandAnswer[] | undefined, err: StatemirrorError | undefined): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (err) p.reject(err);
    else p.resolve(answers!);
  }

  private end(err: StatemirrorError): void {
    if (this.ended) return;
    this.ended = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/** An HTTP error answer (the server's JSON shape) as a StatemirrorError. */
export function errorFromBody(status: number, text: string): StatemirrorError {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; [k: string]: unknown } };
    if (body.error && typeof body.error.code === 'string') {
      const { code, message, ...details } = body.error;
      return new StatemirrorError(code, typeof message === 'string' ? message : code, status, details);
    }
  } catch {
    // not JSON: fall through
  }
  return new StatemirrorError(status >= 500 ? 'unreachable' : 'bad_response', `HTTP ${status}: ${text.slice(0, 200)}`, status);
}

// StatemirrorClient: what a program needs to talk to a statemirror cluster without hand-rolling
// leader discovery, retries and read-your-writes.
// - Writes go to the leader: any core URL first, then wherever a `not_primary` answer points
//   (`leaderUrl`). A write whose outcome is unknown or transient (connection error, not_primary,
//   commit_timeout, overloaded, halted) is sent again with the SAME clientIds, with capped
//   exponential backoff and jitter, until `timeoutMs`: the core's idempotency makes a resend of a
//   committed command answer `duplicate: true` with its original seq, never apply it twice.
//   With `session: 'auto'` writes use an order-entry session at the leader (WS /v1/session) and
//   fall back to HTTP when the node does not offer one.
// - Reads go to the nearest region: round trips to each read node's /v1/status are measured (and
//   measured again every `probeIntervalMs`); a read tries regions nearest first and moves on after
//   a connection error, a 5xx or `seq_not_reached`.
// - Read-your-writes: the highest seq this client has had acknowledged is sent as the next read's
//   `minSeq`, so a read never shows state older than this client's own writes.
// Invariants: a clientId is fixed before the first attempt and never changes across retries;
// business rejections and request errors (4xx) are never retried; at most `maxPending` commands
// are in flight in this client (more fail at once with `overloaded`); close() ends every timer and
// socket.
import { randomUUID } from 'node:crypto';
import { OrderSession, errorFromBody } from './session.js';
import {
  RETRYABLE_CODES,
  StatemirrorError,
  type AccountRead,
  type BookRead,
  type CommandAnswer,
  type CommandInput,
  type PositionsRead,
  type ReadMeta,
  type TradesRead,
  type WireCommand,
} from './types.js';

export interface ClientOptions {
  /** Base URLs of the core nodes (any order; any of them may lead). */
  coreUrls: string[];
  /** Base URLs of the read nodes; reads go to the nearest. Default: the core nodes (the leader answers reads). */
  regionUrls?: string[];
  /** Bearer token (`statemirror token …`). */
  token: string;
  /** Deadline for one call, retries included (default 10 000 ms). */
  timeoutMs?: number;
  /** 'auto' (default): writes over an order-entry session when the leader offers one; 'never': HTTP only. */
  session?: 'auto' | 'never';
  /** Send the highest acknowledged seq as minSeq on reads (default true). */
  readYourWrites?: boolean;
  /** Commands per request or session frame (default 100; the core's maxCommandsPerRequest bounds HTTP). */
  batchSize?: number;
  /** Commands in flight in this client at once (default 10 000); more fail with `overloaded`. */
  maxPending?: number;
  /** How often region round trips are measured again (default 30 000 ms; 0: only once). */
  probeIntervalMs?: number;
  /** Backoff between attempts: first and maximum delay (default 25 and 1000 ms). */
  backoffMs?: { first: number; max: number };
}

export interface ReadOptions {
  /** Wait until the region holds this seq (default: this client's last acknowledged seq, with readYourWrites). */
  minSeq?: number;
  timeoutMs?: number;
}

interface RegionRank {
  url: string;
  rttMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const trimSlash = (u: string) => u.replace(/\/+$/, '');

export class StatemirrorClient {
  private readonly coreUrls: string[];
  private readonly regionUrls: string[];
  private readonly timeoutMs: number;
  private readonly batchSize: number;
  private readonly maxPending: number;
  private readonly backoff: { first: number; max: number };
  private leaderUrl: string | null = null;
  private nextCore = 0;
  private sessionMode: 'auto' | 'never';
  private session: OrderSession | null = null;
  private opening: Promise<OrderSession | null> | null = null;
  private ranked: RegionRank[] | null = null;
  private probing: Promise<void> | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private pendingCommands = 0;
  private closed = false;
  /** The highest seq this client has had acknowledged (0: none yet). */
  lastSeq = 0;
  /** Where the last read came from and the seq it reflects. */
  lastRead: ReadMeta | null = null;

  constructor(readonly opts: ClientOptions) {
    if (opts.coreUrls.length === 0) throw new Error('coreUrls: at least one core node');
    this.coreUrls = opts.coreUrls.map(trimSlash);
    this.regionUrls = (opts.regionUrls?.length ? opts.regionUrls : opts.coreUrls).map(trimSlash);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.batchSize = opts.batchSize ?? 100;
    this.maxPending = opts.maxPending ?? 10_000;
    this.backoff = opts.backoffMs ?? { first: 25, max: 1000 };
    this.sessionMode = opts.session ?? 'auto';
    const every = opts.probeIntervalMs ?? 30_000;
    if (every > 0 && this.regionUrls.length > 1) {
      this.probeTimer = setInterval(() => void this.measureRegions().catch(() => {}), every);
      this.probeTimer.unref();
    }
  }

  /** The core node this client believes leads (null until one answered). */
  get leader(): string | null {
    return this.leaderUrl;
  }

  /** Whether writes go over an order-entry session right now (else HTTP). */
  get usingSession(): boolean {
    return this.session?.open ?? false;
  }

  /** Regions nearest first, with the measured round trip (measures them if not done yet). */
  async regions(): Promise<RegionRank[]> {
    if (!this.ranked) await this.measureRegions();
    return this.ranked!.map((r) => ({ ...r }));
  }

  // ---- writes ---------------------------------------------------------------------------------

  deposit(account: string, amount: number, clientId?: string): Promise<CommandAnswer> {
    return this.one({ type: 'deposit', account, amount, ...(clientId ? { clientId } : {}) });
  }

  withdraw(account: string, amount: number, clientId?: string): Promise<CommandAnswer> {
    return this.one({ type: 'withdraw', account, amount, ...(clientId ? { clientId } : {}) });
  }

  placeOrder(order: Omit<Extract<CommandInput, { type: 'place_order' }>, 'type'>): Promise<CommandAnswer> {
    return this.one({ type: 'place_order', ...order });
  }

  cancelOrder(account: string, orderId: number, clientId?: string): Promise<CommandAnswer> {
    return this.one({ type: 'cancel_order', account, orderId, ...(clientId ? { clientId } : {}) });
  }

  /**
   * One command. A business rejection (insufficient_collateral, …) is committed with a seq but
   * thrown as a StatemirrorError with its reject code (details.answer holds the stored answer).
   */
  async one(command: CommandInput): Promise<CommandAnswer> {
    const [answer] = await this.submit([command]);
    if (answer!.result.status === 'rejected') {
      throw new StatemirrorError(answer!.result.code, answer!.result.detail ?? `rejected: ${answer!.result.code}`, 0, { seq: answer!.seq, clientId: answer!.clientId, answer });
    }
    return answer!;
  }

  /**
   * Many commands, in order, at most batchSize per request; resolves with one answer per command
   * (business rejections included as results). Throws on request errors (4xx) and when the
   * deadline passes with the outcome still unknown (resend with the same clientIds to find out).
   */
  async submit(commands: CommandInput[]): Promise<CommandAnswer[]> {
    if (this.closed) throw new StatemirrorError('closed', 'client closed');
    if (this.pendingCommands + commands.length > this.maxPending) {
      throw new StatemirrorError('overloaded', `more than ${this.maxPending} commands in flight in this client`, 429);
    }
    const wire: WireCommand[] = commands.map((c) => ({ ...c, clientId: c.clientId ?? randomUUID() }) as WireCommand);
    this.pendingCommands += wire.length;
    try {
      const chunks: Promise<CommandAnswer[]>[] = [];
      for (let i = 0; i < wire.length; i += this.batchSize) chunks.push(this.sendWithRetry(wire.slice(i, i + this.batchSize)));
      const answers = (await Promise.all(chunks)).flat();
      for (const a of answers) if (typeof a.seq === 'number' && a.seq > this.lastSeq) this.lastSeq = a.seq;
      return answers;
    } finally {
      this.pendingCommands -= wire.length;
    }
  }

  private async sendWithRetry(batch: WireCommand[]): Promise<CommandAnswer[]> {
    const deadline = performance.now() + this.timeoutMs;
    let delay = this.backoff.first;
    let last: StatemirrorError | null = null;
    for (;;) {
      if (this.closed) throw new StatemirrorError('closed', 'client closed');
      try {
        const answers = await this.sendOnce(batch, deadline);
        for (const a of answers as Array<CommandAnswer & { error?: { code: string; message: string } }>) {
          // A clientId reused for a different command: a request error, surfaced, never retried.
          if (a.error) throw new StatemirrorError(a.error.code, a.error.message, 409, { ...a.error });
        }
        return answers;
      } catch (err) {
        const e = err instanceof StatemirrorError ? err : new StatemirrorError('unreachable', err instanceof Error ? err.message : String(err));
        if (!RETRYABLE_CODES.has(e.code)) throw e;
        last = e;
        const hinted = typeof e.details.leaderUrl === 'string' ? trimSlash(e.details.leaderUrl) : null;
        if (hinted && hinted !== this.leaderUrl) {
          this.leaderUrl = hinted; // go there at once
        } else {
          this.leaderUrl = null;
          this.nextCore = (this.nextCore + 1) % this.coreUrls.length;
        }
        const retryAfterMs = typeof e.details.retryAfterMs === 'number' ? e.details.retryAfterMs : 0;
        const wait = Math.max(retryAfterMs, hinted ? 0 : delay * (0.5 + Math.random()));
        if (performance.now() + wait >= deadline) break;
        await sleep(wait);
        delay = Math.min(this.backoff.max, delay * 2);
      }
    }
    throw new StatemirrorError(last?.code ?? 'timeout', `no acknowledgement within ${this.timeoutMs} ms (outcome unknown: resend with the same clientIds): ${last?.message ?? ''}`, last?.status ?? 0, {
      ...(last?.details ?? {}),
      clientIds: batch.map((c) => c.clientId),
    });
  }

  private target(): string {
    return this.leaderUrl ?? this.coreUrls[this.nextCore]!;
  }

  private async sendOnce(batch: WireCommand[], deadline: number): Promise<CommandAnswer[]> {
    const url = this.target();
    if (this.sessionMode === 'auto') {
      const session = await this.sessionAt(url, deadline);
      if (session) {
        const answers = await session.request(batch);
        this.leaderUrl = session.url;
        return answers;
      }
    }
    const res = await this.fetchJson(`${url}/v1/commands`, deadline, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.opts.token}` },
      body: JSON.stringify({ commands: batch }),
    });
    this.leaderUrl = url;
    return (res.body as { results: CommandAnswer[] }).results;
  }

  /** The open session at `url`, opening one if needed; null when the node offers none (use HTTP). */
  private async sessionAt(url: string, deadline: number): Promise<OrderSession | null> {
    if (this.session?.open && this.session.url === url) return this.session;
    if (this.session && !this.session.open) this.session = null;
    if (this.session && this.session.url !== url) {
      this.session.close();
      this.session = null;
    }
    this.opening ??= OrderSession.open(url, this.opts.token, { timeoutMs: Math.max(100, Math.ceil(deadline - performance.now())), maxPending: 4096 })
      .then(
        (s) => {
          if (this.closed) {
            s.close();
            return null;
          }
          this.session = s;
          return s;
        },
        (err: StatemirrorError) => {
          // No session endpoint here (an older node, a proxy without WebSocket): HTTP from now on.
          if (err.status === 404 || err.status === 400 || err.status === 405 || err.status === 426) {
            this.sessionMode = 'never';
            return null;
          }
          // Every session slot of the leader is taken: this attempt goes over HTTP instead.
          if (err.code === 'too_many_sessions') return null;
          throw err;
        },
      )
      .finally(() => (this.opening = null));
    return this.opening;
  }

  // ---- reads ----------------------------------------------------------------------------------

  account(id: string, opts: ReadOptions = {}): Promise<AccountRead> {
    return this.read(`/v1/accounts/${encodeURIComponent(id)}`, opts, true);
  }

  positions(id: string, opts: ReadOptions = {}): Promise<PositionsRead> {
    return this.read(`/v1/accounts/${encodeURIComponent(id)}/positions`, opts, true);
  }

  book(market: string, opts: ReadOptions = {}): Promise<BookRead> {
    return this.read(`/v1/markets/${encodeURIComponent(market)}/book`, opts, false);
  }

  trades(market: string, limit = 100, opts: ReadOptions = {}): Promise<TradesRead> {
    return this.read(`/v1/markets/${encodeURIComponent(market)}/trades?limit=${limit}`, opts, false);
  }

  /** The nearest region's /v1/status (no minSeq). */
  status(): Promise<Record<string, unknown>> {
    return this.read('/v1/status', { minSeq: 0 }, false);
  }

  private async read<T>(path: string, opts: ReadOptions, auth: boolean): Promise<T> {
    if (this.closed) throw new StatemirrorError('closed', 'client closed');
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const deadline = performance.now() + timeoutMs;
    const minSeq = opts.minSeq ?? (this.opts.readYourWrites === false ? 0 : this.lastSeq);
    const order = (await this.regions()).map((r) => r.url);
    let delay = this.backoff.first;
    let last: StatemirrorError | null = null;
    for (;;) {
      for (const base of order) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        // Wait at a region for a part of the time left, so a stuck one doesn't eat the deadline.
        const waitMs = Math.max(0, Math.min(5000, Math.floor(left / 2)));
        const sep = path.includes('?') ? '&' : '?';
        const url = minSeq > 0 ? `${base}${path}${sep}minSeq=${minSeq}&waitMs=${waitMs}` : `${base}${path}`;
        try {
          const res = await this.fetchJson(url, deadline, { headers: auth ? { authorization: `Bearer ${this.opts.token}` } : {} });
          this.lastRead = { seq: Number(res.headers.get('x-statemirror-seq') ?? 0), region: res.headers.get('x-statemirror-region'), url: base };
          return res.body as T;
        } catch (err) {
          const e = err instanceof StatemirrorError ? err : new StatemirrorError('unreachable', String(err));
          // Another region may have it: not there yet, unreachable, or failing.
          if (e.code !== 'seq_not_reached' && e.code !== 'unreachable' && e.status < 500) throw e;
          last = e;
        }
      }
      const wait = delay * (0.5 + Math.random());
      if (performance.now() + wait >= deadline) break;
      await sleep(wait);
      delay = Math.min(this.backoff.max, delay * 2);
    }
    throw new StatemirrorError(last?.code ?? 'timeout', `no region answered ${path} within ${timeoutMs} ms: ${last?.message ?? ''}`, last?.status ?? 0, last?.details ?? {});
  }

  /** Measures each region's round trip (3 status requests, the median); unreachable ones go last. */
  measureRegions(): Promise<void> {
    this.probing ??= (async () => {
      const ranks = await Promise.all(
        this.regionUrls.map(async (url) => {
          const samples: number[] = [];
          for (let i = 0; i < 3; i++) {
            const t0 = performance.now();
            try {
              const res = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(2000) });
              await res.body?.cancel();
              if (res.status >= 500) break;
              samples.push(performance.now() - t0);
            } catch {
              break;
            }
          }
          samples.sort((a, b) => a - b);
          return { url, rttMs: samples.length === 3 ? samples[1]! : Number.POSITIVE_INFINITY };
        }),
      );
      this.ranked = ranks.sort((a, b) => a.rttMs - b.rttMs);
    })().finally(() => (this.probing = null));
    return this.probing;
  }

  // ---- plumbing -------------------------------------------------------------------------------

  /** One HTTP exchange: the JSON body on 2xx, else the server's error (connection errors: `unreachable`). */
  private async fetchJson(url: string, deadline: number, init: RequestInit): Promise<{ body: unknown; headers: Headers }> {
    const left = Math.max(1, Math.ceil(deadline - performance.now()));
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { ...init, signal: AbortSignal.timeout(left) });
      text = await res.text();
    } catch (err) {
      throw new StatemirrorError('unreachable', `${url}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (res.status >= 200 && res.status < 300) {
      try {
        return { body: JSON.parse(text), headers: res.headers };
      } catch {
        throw new StatemirrorError('bad_response', `${url}: answer is not JSON`, res.status);
      }
    }
    const e = errorFromBody(res.status, text);
    const retryAfter = Number(res.headers.get('retry-after'));
    if (Number.isFinite(retryAfter) && retryAfter > 0) e.details.retryAfterMs = Math.min(retryAfter * 1000, 5000);
    throw e;
  }

  /** Ends the session and the probe timer; calls after close() fail with `closed`. */
  close(): void {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.session?.close();
    this.session = null;
  }
}

// The cluster overview every node serves at GET /v1/overview (and the /cluster page and
// `statemirror status` draw): this node polls every node's public /v1/status — itself included,
// core nodes and read nodes alike — and feeds the answers to a ClusterHistory (history.ts).
// Polling is lazy: it runs about once a second only while someone asked for the overview in the
// last minute (a page polls every second; `statemirror status` asks once), so an unwatched cluster
// pays nothing. A request after an idle spell waits for one fresh poll.
// Invariants: bounded — at most maxTargets nodes, `concurrency` requests in flight, each with a
// timeout and a capped body, one poll at a time; addresses come from the config and are
// overridden by setTarget() (startCluster feeds ephemeral ports once every node is bound).
import { nodeUrl, type Config } from '../../config/schema.js';
import { ClusterHistory, type ClusterHistoryOptions, type ClusterSnapshot, type NodeKind, type NodeTarget, type PollResult } from './history.js';

export interface Overview extends ClusterSnapshot {
  /** The node that answered (it polled the others). */
  self: string;
  pollIntervalMs: number;
}

export interface OverviewOptions {
  /** This node's name (a core node's, or a region's). */
  self: string;
  targets?: NodeTarget[];
  /** Time between polls while watched (default 1000). */
  intervalMs?: number;
  /** Per-request timeout (default 800). */
  timeoutMs?: number;
  /** Stop polling this long after the last request (default 60 000). */
  idleAfterMs?: number;
  /** Requests in flight at once (default 8). */
  concurrency?: number;
  /** A status body larger than this is an error (default 256 KiB). */
  maxStatusBytes?: number;
  history?: ClusterHistoryOptions;
  /** Wall-clock ms (event times, chart axis). */
  now?: () => number;
  /** Fetches one node's status (tests pass fakes). */
  fetchStatus?: (url: string, signal: AbortSignal, maxBytes: number) => Promise<unknown>;
}

export const MAX_TARGETS = 128;

/** Every node the config names, at its configured address (`url`, else http://host:port; core nodes first, then regions). */
export function configTargets(config: Config): NodeTarget[] {
  return [
    ...config.core.nodes.map((n) => ({ name: n.name, kind: 'core' as const, url: nodeUrl(n) })),
    ...config.regions.map((r) => ({ name: r.name, kind: 'region' as const, url: nodeUrl(r) })),
  ];
}

export class OverviewAggregator {
  private readonly targets = new Map<string, NodeTarget>();
  private readonly history: ClusterHistory;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly idleAfterMs: number;
  private readonly concurrency: number;
  private readonly maxStatusBytes: number;
  private readonly now: () => number;
  private readonly fetchStatus: NonNullable<OverviewOptions['fetchStatus']>;
  private readonly abort = new AbortController();
  private inflight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastWantedAt = -Infinity;
  private lastPollAt = -Infinity;
  private stopped = false;

  constructor(private readonly opts: OverviewOptions) {
    this.history = new ClusterHistory(opts.history);
    this.intervalMs = opts.intervalMs ?? 1000;
    this.timeoutMs = opts.timeoutMs ?? 800;
    this.idleAfterMs = opts.idleAfterMs ?? 60_000;
    this.concurrency = opts.concurrency ?? 8;
    this.maxStatusBytes = opts.maxStatusBytes ?? 256 * 1024;
    this.now = opts.now ?? Date.now;
    this.fetchStatus = opts.fetchStatus ?? fetchJson;
    for (const t of opts.targets ?? []) this.setTarget(t.name, t.kind, t.url);
  }

  /** Adds a node or changes its address (kept in first-seen order: core nodes, then regions). */
  setTarget(name: string, kind: NodeKind, url: string): void {
    if (!this.targets.has(name) && this.targets.size >= MAX_TARGETS) throw new Error(`the cluster view polls at most ${MAX_TARGETS} nodes`);
    this.targets.set(name, { name, kind, url: url.replace(/\/+$/, '') });
  }

  /** The overview now; after an idle spell, waits for one fresh poll first. Keeps polling a minute. */
  async read(): Promise<Overview> {
    this.lastWantedAt = this.now();
    if (this.now() - this.lastPollAt > 2 * this.intervalMs) await this.poll();
    this.schedule();
    return { self: this.opts.self, pollIntervalMs: this.intervalMs, ...this.history.snapshot() };
  }

  /** Polls every node once (joins the poll in flight, if any). */
  poll(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.inflight ??= this.pollAll().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    if (this.now() - this.lastWantedAt > this.idleAfterMs) return; // nobody is watching: go idle
    const wait = Math.max(0, this.lastPollAt + this.intervalMs - this.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.poll().then(() => this.schedule());
    }, wait);
    this.timer.unref();
  }

  private async pollAll(): Promise<void> {
    const targets = [...this.targets.values()];
    const results = new Map<string, PollResult>();
    let next = 0;
    const worker = async () => {
      while (next < targets.length && !this.stopped) {
        const t = targets[next++]!;
        const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.timeoutMs)]);
        try {
          results.set(t.name, { ok: true, status: await this.fetchStatus(t.url, signal, this.maxStatusBytes) });
        } catch (err) {
          results.set(t.name, { ok: false, error: describeError(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, targets.length) }, worker));
    if (this.stopped) return;
    const at = this.now();
    this.lastPollAt = at;
    this.history.ingest(at, targets, results);
  }
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timed out';
    const code = (err.cause as { code?: unknown } | undefined)?.code;
    return typeof code === 'string' ? code : err.message;
  }
  return String(err);
}

/** GET url/v1/status as JSON, refusing bodies over maxBytes. */
async function fetchJson(url: string, signal: AbortSignal, maxBytes: number): Promise<unknown> {
  const res = await fetch(`${url}/v1/status`, { signal, headers: { accept: 'application/json' } });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new Error(`status larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

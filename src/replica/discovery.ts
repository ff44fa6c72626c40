// Upstream discovery: polls every upstream candidate (both core nodes, or one relay region) for
// `GET /v1/sync/info` and picks the generation to follow — the primary (or relay) with the highest
// epoch.
// Invariants: a generation from an epoch below the highest one seen is refused (a fenced primary's);
// an upstream whose doc layout differs from this node's config is refused; at most one poll runs at
// a time; a failure is logged once per distinct reason and the node keeps serving what it has.
import type { Logger } from 'pino';

/** What `GET /v1/sync/info` answers. */
export interface SyncInfo {
  generation: string | null;
  seq: number;
  epoch?: number;
  role: string;
  docs: string[];
}

export interface DiscoveryOptions {
  region: string;
  upstreamUrls: string[];
  /** This node's doc names: an upstream must serve exactly these. */
  names: readonly string[];
  /** The bearer token for the upstream (a cluster token). */
  token: () => string;
  /** Called with the generation to follow and the upstream serving it. */
  onFound: (generation: string, url: string) => void;
  logger?: Logger;
}

export class UpstreamDiscovery {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = false;
  /** The last failure's message (null after a success). */
  lastError: string | null = null;
  /** Polls that failed, since start (metrics). */
  errors = 0;
  /** Upstream's seq at the last poll (a lower bound of what exists). */
  upstreamSeq = 0;
  /** Highest primary epoch seen: a generation from a lower epoch is a fenced primary's, refused. */
  maxEpoch = 0;

  constructor(private readonly opts: DiscoveryOptions) {}

  /** Polls every `everyMs`, and once now. */
  start(everyMs: number): void {
    this.timer = setInterval(() => void this.discover(), everyMs);
    void this.discover();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** One poll (skipped while one is running or after stop). */
  async discover(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      const answers = await Promise.allSettled(
        this.opts.upstreamUrls.map(async (url) => {
          const res = await fetch(`${url}/v1/sync/info`, { signal: AbortSignal.timeout(3000), headers: { authorization: `Bearer ${this.opts.token()}` } });
          if (!res.ok) throw new Error(`${url}/v1/sync/info answered ${res.status}`);
          return { url, info: (await res.json()) as SyncInfo };
        }),
      );
      if (this.stopped) return;
      const candidates = answers
        .flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []))
        .filter(({ info }) => info.generation !== null && (info.role === 'primary' || info.role === 'replica'));
      if (candidates.length === 0) {
        const reasons = answers.map((a) => (a.status === 'rejected' ? String((a.reason as Error)?.message ?? a.reason) : `${a.value.url}: ${a.value.info.role}`));
        throw new Error(`no upstream serves a generation (${reasons.join('; ')})`);
      }
      const best = candidates.reduce((a, b) => ((b.info.epoch ?? 0) > (a.info.epoch ?? 0) ? b : a));
      const epoch = best.info.epoch ?? 0;
      if (epoch < this.maxEpoch) throw new Error(`upstream offers epoch ${epoch}, below epoch ${this.maxEpoch} already seen: fenced`);
      if (best.info.docs.join(',') !== this.opts.names.join(',')) {
        throw new Error(`upstream doc layout differs from this node's config (upstream: ${best.info.docs.length} docs)`);
      }
      this.lastError = null;
      this.upstreamSeq = best.info.seq;
      this.maxEpoch = epoch;
      this.opts.onFound(best.info.generation!, best.url);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.errors += 1;
      if (message !== this.lastError) this.opts.logger?.warn({ region: this.opts.region, err: message }, 'upstream discovery failed');
      this.lastError = message;
    } finally {
      this.running = false;
    }
  }
}

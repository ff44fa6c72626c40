// A regional replica without its HTTP face: it discovers the upstream generation (discovery.ts),
// mirrors and persists it (generation-sync.ts, store.ts), re-serves the docs as read-only rooms
// with per-account views (rooms/, views.ts) and answers the ReadModel from its local copy
// (read-model.ts). node/region-node.ts adds the HTTP server, the routes, the dashboard and the
// authorization of its rooms.
// Invariants: reads are answered from exactly one, complete generation; completeness per doc comes
// from the stamps (layout.completeSeq), so `minSeq` is exact; nothing is written to the mirrored
// docs except what arrives from upstream; its rooms drop client updates (SyncServer).
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { AccountView, BookLevel, TradeView } from '../domain/types.js';
import { META, docNames, type Layout } from '../publish/layout.js';
import { SyncServer, type SyncServerOptions } from '../rooms/room-server.js';
import { UpstreamDiscovery } from './discovery.js';
import { GenerationSync } from './generation-sync.js';
import { SeqWaiters, accountOf, bookOf, scopeDocs, seqOf, tradesOf, type MarketBook, type ReadModel, type ReadScope } from './read-model.js';
import { ReplicaStore } from './store.js';
import { AccountViews } from './views.js';

export interface ReplicaOptions {
  region: string;
  /**
   * http://host:port of each upstream candidate (normally through a LinkProxy): both core nodes,
   * or one relay region. The node follows the primary with the highest epoch among them.
   */
  upstreamUrls: string[];
  layout: Layout;
  /** Persist docs here; omit for an in-memory node. */
  dataDir?: string;
  maxConnections: number;
  /** Live pages and sockets per page (rooms/room-server.ts); default: maxConnections pages. */
  maxPages?: number;
  maxSocketsPerPage?: number;
  /** Who may sync which room (passed in by node/: rooms and replica never import auth). */
  authorize?: SyncServerOptions['authorize'];
  /** How long a replaced generation is still served to downstream readers (handover). */
  retireGraceMs?: number;
  /** How often the upstream's generation is checked (also checked at once when a room closes). */
  discoveryIntervalMs?: number;
  logger?: Logger;
}

export class Replica extends EventEmitter<{ advanced: []; swapped: [string]; droppedClientMessage: [string] }> implements ReadModel {
  readonly region: string;
  protected readonly sync: SyncServer;
  private readonly store: ReplicaStore | null;
  private readonly names: string[];
  private readonly generations: GenerationSync;
  private readonly discovery: UpstreamDiscovery;
  private readonly views: AccountViews;
  private readonly waiters: SeqWaiters;
  private clusterToken = '';

  constructor(readonly opts: ReplicaOptions) {
    super();
    this.setMaxListeners(100);
    this.region = opts.region;
    this.names = docNames(opts.layout);
    this.store = opts.dataDir ? new ReplicaStore(opts.dataDir) : null;
    this.sync = new SyncServer({
      maxConnections: opts.maxConnections,
      ...(opts.maxPages !== undefined ? { maxPages: opts.maxPages } : {}),
      ...(opts.maxSocketsPerPage !== undefined ? { maxSocketsPerPage: opts.maxSocketsPerPage } : {}),
      ...(opts.authorize ? { authorize: opts.authorize } : {}),
      onRefused: (info) => opts.logger?.warn({ region: opts.region, ...info }, 'sync room refused'),
      onDroppedClientUpdate: (doc) => this.emit('droppedClientMessage', doc),
    });
    this.views = new AccountViews(this);
    this.waiters = new SeqWaiters((scope) => this.seqFor(scope));
    this.discovery = new UpstreamDiscovery({
      region: opts.region,
      upstreamUrls: opts.upstreamUrls,
      names: this.names,
      token: () => this.clusterToken,
      onFound: (generation, url) => this.generations.follow(generation, url),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    this.generations = new GenerationSync({
      region: opts.region,
      names: this.names,
      store: this.store,
      sync: this.sync,
      resolve: (name) => this.views.open(name),
      release: (name) => this.views.close(name),
      token: () => this.clusterToken,
      onGone: () => void this.discovery.discover(),
      onAdvanced: () => this.advanced(),
      onAccountsChanged: (ids) => this.views.markChanged(ids),
      onSwapped: (generation) => this.emit('swapped', generation),
      ...(opts.retireGraceMs !== undefined ? { retireGraceMs: opts.retireGraceMs } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
  }

  get droppedClientMessages(): number {
    return this.sync.droppedClientMessages;
  }

  /** The token this node presents to its upstream (a cluster token, minted by node/). */
  protected setClusterToken(token: string): void {
    this.clusterToken = token;
  }

  /** Serves whatever this node persisted before it stopped, until upstream says otherwise. */
  protected loadPersisted(): void {
    this.generations.loadPersisted((epoch) => {
      this.discovery.maxEpoch = epoch;
    });
  }

  /** Starts polling the upstream candidates (and polls once now). */
  protected startDiscovery(): void {
    this.discovery.start(this.opts.discoveryIntervalMs ?? 1000);
  }

  private advanced(): void {
    this.views.flush();
    this.waiters.check();
    this.emit('advanced');
  }

  /** What `/v1/sync/info` answers, or null before anything was synced. */
  syncInfo(): { generation: string; seq: number; epoch: number; docs: string[]; role: 'replica' } | null {
    const gen = this.generations.current;
    if (gen === null) return null;
    return { generation: gen.id, seq: this.seqFor({ kind: 'all' }), epoch: this.discovery.maxEpoch, docs: [...gen.docs.keys()], role: 'replica' };
  }

  // ---- ReadModel ----

  generation(): string | null {
    return this.generations.current?.id ?? null;
  }

  /** Resolves once the node serves some generation (persisted or synced); rejects after timeoutMs. */
  ready(timeoutMs: number): Promise<void> {
    if (this.generations.current) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('swapped', on);
        reject(new Error(`read node ${this.region} did not sync from ${this.opts.upstreamUrls.join(' or ')} within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = () => {
        clearTimeout(timer);
        resolve();
      };
      this.once('swapped', on);
    });
  }

  seqFor(scope: ReadScope): number {
    return seqOf(this.generations.current, scopeDocs(this.opts.layout, this.names, scope));
  }

  waitFor(scope: ReadScope, minSeq: number, timeoutMs: number): Promise<boolean> {
    return this.waiters.wait(scope, minSeq, timeoutMs);
  }

  account(id: string): AccountView | undefined {
    return accountOf(this.generations.current, this.opts.layout, id);
  }

  hasMarket(symbol: string): boolean {
    return this.opts.layout.markets.includes(symbol);
  }

  book(symbol: string): MarketBook | undefined {
    return bookOf(this.generations.current, symbol);
  }

  trades(symbol: string, limit: number): TradeView[] {
    return tradesOf(this.generations.current, symbol, limit);
  }

  status(): Record<string, unknown> {
    const current = this.generations.current;
    const meta = current?.meta.getMap(META);
    const commitTsMs = meta?.get('tsMs');
    const lastCommitAgeMs = typeof commitTsMs === 'number' ? Math.max(0, Date.now() - commitTsMs) : null;
    const upstreamSeq = this.discovery.upstreamSeq;
    return {
      role: 'replica',
      upstream: current?.url ?? null,
      epoch: this.discovery.maxEpoch,
      upstreamError: this.discovery.lastError,
      stateHash: meta?.get('stateHash') ?? null,
      metaSeq: meta?.get('seq') ?? 0,
      // Wall-clock age of the newest commit this node holds (all regions share one machine's
      // clock); it grows while the core is idle, so read it beside upstreamSeq.
      lastCommitAgeMs,
      upstreamSeq,
      // How far behind upstream this node is, in time: 0 once it holds upstream's seq (an idle core
      // is not lag), else the age of its newest commit; null before any state.
      lagMs: current === null ? null : this.seqFor({ kind: 'all' }) >= upstreamSeq ? 0 : lastCommitAgeMs,
      upstreamErrors: this.discovery.errors,
      syncingGeneration: this.generations.next?.id ?? null,
      accounts: meta?.get('accounts') ?? 0,
      connections: this.sync.connections,
      pages: this.sync.pageCount,
      refusedByLimit: this.sync.refusedByLimit,
      droppedClientMessages: this.sync.droppedClientMessages,
      process: processStats(),
    };
  }

  /** Stops discovery, ends every wait and destroys every generation; closes the store. */
  protected stopReplica(): void {
    this.discovery.stop();
    this.waiters.cancelAll();
    this.generations.destroy();
  }

  protected closeStore(): void {
    this.store?.close();
  }
}

/** This process's CPU (µs, since start) and memory: what a node costs, for benches and operators. */
export function processStats(): { cpuUserUs: number; cpuSystemUs: number; rssBytes: number } {
  const cpu = process.cpuUsage();
  return { cpuUserUs: cpu.user, cpuSystemUs: cpu.system, rssBytes: process.memoryUsage.rss() };
}

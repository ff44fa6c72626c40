// A regional read node. It mirrors the core's Yjs docs from its upstream (the core, or another
// region acting as a relay) over y-websocket, persists them locally, serves reads over HTTP from
// its local copy and re-serves the docs as read-only rooms to browsers and downstream regions.
// Invariants:
// - It only ever holds docs of one upstream generation per Generation object, and answers reads
//   from exactly one. A new generation (core restart, failover, compaction) is synced in the
//   background and swapped in only once every doc has synced, so reads never see a half-built copy;
//   until then the previous, consistent copy keeps serving, and after the swap it is still served
//   to downstream readers for a grace period (handover).
// - Nothing is written to the docs except what arrives from upstream; its own rooms drop client
//   updates (SyncServer).
// - Completeness per doc is computed from stamps (layout.completeSeq), so `minSeq` is exact.
import { EventEmitter } from 'node:events';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { WebSocket } from 'ws';
import type { Logger } from 'pino';
import { Hono } from 'hono';
import { ACCOUNT_ID, type AccountView, type BookLevel, type TradeView } from '../domain/types.js';
import {
  ACCOUNT_VIEW_PREFIX, ACCOUNTS, BOOK, META, META_DOC, STAMP, TRADES,
  accountShardDoc, completeSeq, docNames, marketDoc, shardOf, type Layout,
} from '../publish/layout.js';
import { SyncServer } from '../rooms/room-server.js';
import { tokenGate } from '../auth/rules.js';
import { mountReadRoutes, type ReadLimits, type ReadModel, type ReadScope } from '../http/read-routes.js';
import { requestError } from '../http/errors.js';
import { listen, type RunningServer } from '../http/server.js';
import { ReplicaStore } from '../replica/store.js';
import { signToken } from '../auth/tokens.js';
import { dashboardHtml, dashboardScript } from '../replica/dashboard/page.js';

/** Per-account browser views one node keeps at once (each is one small doc). */
const MAX_VIEWS = 10_000;

export interface ReadNodeOptions {
  region: string;
  /**
   * http://host:port of each upstream candidate (normally through a LinkProxy): both core nodes,
   * or one relay region. The node follows the primary with the highest epoch among them.
   */
  upstreamUrls: string[];
  layout: Layout;
  host?: string;
  port?: number;
  /** Persist docs here; omit for an in-memory node. */
  dataDir?: string;
  readLimits: ReadLimits;
  maxConnections: number;
  /** User JWT secret (reads, browser rooms) and cluster secret (this node's upstream links). */
  secrets: { jwtSecret: string; clusterSecret: string };
  /** How long a replaced generation is still served to downstream readers (handover). */
  retireGraceMs?: number;
  /** How often the upstream's generation is checked (also checked at once when a room closes). */
  discoveryIntervalMs?: number;
  logger?: Logger;
}

const LOAD_ORIGIN = Symbol('load');

interface SyncInfo {
  generation: string | null;
  seq: number;
  epoch?: number;
  role: string;
  docs: string[];
}

/** One generation's docs and the providers keeping them in sync with upstream. */
class Generation {
  readonly docs = new Map<string, Y.Doc>();
  readonly providers = new Map<string, WebsocketProvider>();
  private readonly synced = new Set<string>();
  private destroyed = false;

  url: string | null = null;

  constructor(readonly id: string, names: readonly string[]) {
    for (const name of names) this.docs.set(name, new Y.Doc({ gc: true }));
  }

  doc(name: string): Y.Doc | undefined {
    return this.docs.get(name);
  }

  get meta(): Y.Doc {
    return this.docs.get(META_DOC)!;
  }

  get connected(): boolean {
    return this.providers.size > 0;
  }

  get allSynced(): boolean {
    return this.synced.size === this.docs.size;
  }

  connect(upstreamUrl: string, token: string, onSynced: () => void, onGone: () => void): void {
    if (this.destroyed || this.connected) return;
    this.url = upstreamUrl;
    // y-websocket registers one process 'exit' listener per provider: that is expected, not a leak.
    process.setMaxListeners(process.getMaxListeners() + this.docs.size);
    const wsBase = upstreamUrl.replace(/^http/, 'ws') + `/sync/${this.id}`;
    for (const [name, doc] of this.docs) {
      const provider = new WebsocketProvider(wsBase, name, doc, {
        // The cluster token: upstream rooms (account shards) are closed to anyone else.
        params: { token },
        WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
        disableBc: true,
        maxBackoffTime: 1000,
      });
      // Presence is meaningless for a mirror, and the upstream drops it anyway.
      provider.awareness.setLocalState(null);
      provider.on('sync', (isSynced: boolean) => {
        if (isSynced && !this.synced.has(name)) {
          this.synced.add(name);
          onSynced();
        }
      });
      // 4410 (generation gone) and other 44xx closes are terminal for the provider.
      provider.on('closed', () => onGone());
      this.providers.set(name, provider);
    }
  }

  destroy(): void {
    this.destroyed = true;
    if (this.providers.size > 0) process.setMaxListeners(Math.max(10, process.getMaxListeners() - this.providers.size));
    for (const p of this.providers.values()) p.destroy();
    this.providers.clear();
    for (const d of this.docs.values()) d.destroy();
  }
}

interface Waiter {
  scope: ReadScope;
  minSeq: number;
  done: (ok: boolean) => void;
}

export class ReadNode extends EventEmitter<{ advanced: []; swapped: [string]; droppedClientMessage: [string] }> implements ReadModel {
  readonly region: string;
  private current: Generation | null = null;
  private next: Generation | null = null;
  private readonly store: ReplicaStore | null;
  private readonly sync: SyncServer;
  private server: RunningServer | null = null;
  private discoveryTimer: NodeJS.Timeout | null = null;
  private discovering = false;
  private readonly waiters = new Set<Waiter>();
  private readonly names: string[];
  private stopped = false;
  private lastDiscoveryError: string | null = null;
  private readonly views = new Map<string, { doc: Y.Doc; value: unknown; seq: number; refs: number }>();
  /** Generations replaced by a newer one, still served until their grace timer retires them. */
  private readonly retiring = new Map<Generation, NodeJS.Timeout>();
  private clusterToken = '';
  /** Upstream's seq at the last discovery poll (a lower bound of what exists). */
  private upstreamSeq = 0;
  /** Highest primary epoch seen: a generation from a lower epoch is a fenced primary's, refused. */
  private maxEpoch = 0;

  constructor(readonly opts: ReadNodeOptions) {
    super();
    this.setMaxListeners(100);
    this.region = opts.region;
    this.names = docNames(opts.layout);
    this.store = opts.dataDir ? new ReplicaStore(opts.dataDir) : null;
    this.sync = new SyncServer({
      maxConnections: opts.maxConnections,
      authorize: tokenGate(opts.secrets),
      onRefused: (info) => opts.logger?.warn({ region: opts.region, ...info }, 'sync room refused'),
      onDroppedClientUpdate: (doc) => this.emit('droppedClientMessage', doc),
    });
  }

  get url(): string {
    if (!this.server) throw new Error('read node not started');
    return this.server.url;
  }

  get port(): number {
    if (!this.server) throw new Error('read node not started');
    return this.server.port;
  }

  get droppedClientMessages(): number {
    return this.sync.droppedClientMessages;
  }

  async start(): Promise<this> {
    this.clusterToken = await signToken(this.opts.secrets.clusterSecret, { sub: this.region, role: 'replica' }, 0);
    this.loadPersisted();
    const app = new Hono();
    app.get('/', (c) => c.redirect('/dashboard'));
    app.get('/dashboard', (c) => c.html(dashboardHtml(this.region)));
    app.get('/dashboard.js', async (c) => {
      c.header('content-type', 'text/javascript; charset=utf-8');
      c.header('cache-control', 'no-cache');
      return c.body(await dashboardScript());
    });
    mountReadRoutes(app, this, this.opts.readLimits, this.opts.secrets);
    app.get('/v1/sync/info', (c) => {
      const gen = this.current;
      if (gen === null) return requestError(c, 'seq_not_reached', 'read node has not synced any state yet', { seq: 0 });
      return c.json({ generation: gen.id, seq: this.seqFor({ kind: 'all' }), epoch: this.maxEpoch, docs: [...gen.docs.keys()], role: 'replica' });
    });
    app.notFound((c) => requestError(c, 'not_found', `no route ${c.req.method} ${c.req.path}`));
    this.server = await listen(app, this.opts.host ?? '127.0.0.1', this.opts.port ?? 0, {
      sync: this.sync,
      maxConnections: this.opts.maxConnections,
    });
    const every = this.opts.discoveryIntervalMs ?? 1000;
    this.discoveryTimer = setInterval(() => void this.discover(), every);
    void this.discover();
    return this;
  }

  /** Serves whatever this node persisted before it stopped, until upstream says otherwise. */
  private loadPersisted(): void {
    const genId = this.store?.servingGeneration();
    if (!this.store || !genId) return;
    const gen = new Generation(genId, this.names);
    const stored = this.store.load(genId);
    for (const [name, updates] of stored) {
      const doc = gen.doc(name);
      if (!doc) continue;
      Y.transact(doc, () => {
        for (const u of updates) Y.applyUpdate(doc, u, LOAD_ORIGIN);
      }, LOAD_ORIGIN);
    }
    const epoch = gen.meta.getMap(META).get('epoch');
    if (typeof epoch === 'number') this.maxEpoch = epoch;
    this.opts.logger?.info({ region: this.region, generation: genId, epoch }, 'loaded persisted docs');
    this.install(gen);
  }

  /**
   * Makes `gen` the served generation (it must be complete); the previous one is retired after the
   * handover grace. A freshly
   * synced generation is written to the store whole first: its updates arrived before this listener.
   */
  private install(gen: Generation, persistWhole = false): void {
    const old = this.current;
    this.current = gen;
    for (const [name, doc] of gen.docs) {
      if (persistWhole) this.store?.compact(gen.id, name, Y.encodeStateAsUpdate(doc));
      doc.on('update', (update: Uint8Array, origin: unknown) => {
        // Only the served generation is persisted; a retiring one just streams until it retires.
        if (origin !== LOAD_ORIGIN && this.store && this.current === gen) {
          this.store.append(gen.id, name, update);
          if (this.store.needsCompaction(gen.id, name)) this.store.compact(gen.id, name, Y.encodeStateAsUpdate(doc));
        }
        this.advanced();
      });
    }
    this.store?.setServing(gen.id);
    // Handover: the previous generation stays served (and keeps syncing from upstream) for a
    // grace period, so downstream regions keep advancing while they sync this one.
    this.sync.serve({ generation: gen.id, docs: gen.docs, resolve: (name) => this.openView(name), release: (name) => this.closeView(name) }, { keepPrevious: true });
    if (old && old !== gen) {
      const timer = setTimeout(() => {
        this.retiring.delete(old);
        this.sync.retire(old.id);
        old.destroy();
      }, this.opts.retireGraceMs ?? 15_000);
      this.retiring.set(old, timer);
    }
    this.opts.logger?.info({ region: this.region, generation: gen.id, seq: this.seqFor({ kind: 'all' }) }, 'serving generation');
    this.emit('swapped', gen.id);
    this.advanced();
  }

  private async discover(): Promise<void> {
    if (this.discovering || this.stopped) return;
    this.discovering = true;
    try {
      const answers = await Promise.allSettled(
        this.opts.upstreamUrls.map(async (url) => {
          const res = await fetch(`${url}/v1/sync/info`, { signal: AbortSignal.timeout(3000), headers: { authorization: `Bearer ${this.clusterToken}` } });
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
      if (best.info.docs.join(',') !== this.names.join(',')) {
        throw new Error(`upstream doc layout differs from this node's config (upstream: ${best.info.docs.length} docs)`);
      }
      this.lastDiscoveryError = null;
      this.upstreamSeq = best.info.seq;
      this.maxEpoch = epoch;
      this.follow(best.info.generation!, best.url);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message !== this.lastDiscoveryError) this.opts.logger?.warn({ region: this.region, err: message }, 'upstream discovery failed');
      this.lastDiscoveryError = message;
    } finally {
      this.discovering = false;
    }
  }

  private follow(generation: string, url: string): void {
    const cur = this.current;
    if (cur && cur.id === generation) {
      if (!cur.connected) cur.connect(url, this.clusterToken, () => this.advanced(), () => void this.discover());
      if (this.next) {
        this.next.destroy();
        this.next = null;
      }
      return;
    }
    if (this.next?.id === generation) return;
    if (this.next) {
      this.next.destroy();
      this.store?.dropGeneration(this.next.id);
    }
    this.opts.logger?.info({ region: this.region, generation, serving: cur?.id ?? null }, 'syncing new upstream generation');
    const gen = new Generation(generation, this.names);
    this.next = gen;
    gen.connect(
      url,
      this.clusterToken,
      () => {
        if (this.next === gen && gen.allSynced) {
          this.next = null;
          this.install(gen, true);
        }
      },
      () => void this.discover(),
    );
  }

  /**
   * A per-account view doc for browsers (the shard docs hold many accounts, so a browser with an
   * account token gets only this): written only by this node, from its own copy, bounded in number.
   */
  private openView(name: string): Y.Doc | undefined {
    if (!name.startsWith(ACCOUNT_VIEW_PREFIX)) return undefined;
    const id = name.slice(ACCOUNT_VIEW_PREFIX.length);
    if (!ACCOUNT_ID.test(id)) return undefined;
    // View docs are written only by this node, so one doc serves the account's room in every
    // generation being served (refs counts those rooms).
    const existing = this.views.get(id);
    if (existing) {
      existing.refs += 1;
      return existing.doc;
    }
    if (this.views.size >= MAX_VIEWS) return undefined;
    const view = { doc: new Y.Doc({ gc: true }), value: undefined as unknown, seq: -1, refs: 1 };
    this.views.set(id, view);
    this.refreshView(id, view);
    return view.doc;
  }

  private closeView(name: string): void {
    const id = name.slice(ACCOUNT_VIEW_PREFIX.length);
    const view = this.views.get(id);
    if (!view || --view.refs > 0) return;
    this.views.delete(id);
    view.doc.destroy();
  }

  private refreshView(id: string, view: { doc: Y.Doc; value: unknown; seq: number }): void {
    const value = this.account(id);
    const seq = this.seqFor({ kind: 'account', id });
    if (value === view.value && seq === view.seq) return;
    view.doc.transact(() => {
      // Yjs hands out the same object until the value changes, so identity is the change test.
      if (value !== view.value) {
        if (value === undefined) view.doc.getMap('view').delete('account');
        else view.doc.getMap('view').set('account', value);
      }
      if (seq !== view.seq) view.doc.getMap(STAMP).set('seq', seq);
    });
    view.value = value;
    view.seq = seq;
  }

  private advanced(): void {
    for (const [id, view] of this.views) this.refreshView(id, view);
    for (const w of this.waiters) if (this.seqFor(w.scope) >= w.minSeq) w.done(true);
    this.emit('advanced');
  }

  // ---- ReadModel ----

  generation(): string | null {
    return this.current?.id ?? null;
  }

  /** Resolves once the node serves some generation (persisted or synced); rejects after timeoutMs. */
  ready(timeoutMs: number): Promise<void> {
    if (this.current) return Promise.resolve();
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

  private scopeDocs(scope: ReadScope): string[] {
    if (scope.kind === 'account') return [accountShardDoc(shardOf(scope.id, this.opts.layout.accountShards))];
    if (scope.kind === 'market') return [marketDoc(scope.symbol)];
    return this.names;
  }

  seqFor(scope: ReadScope): number {
    const gen = this.current;
    if (!gen) return 0;
    let seq = Number.POSITIVE_INFINITY;
    for (const name of this.scopeDocs(scope)) seq = Math.min(seq, completeSeq(name, gen.doc(name)!, gen.meta));
    return Number.isFinite(seq) ? seq : 0;
  }

  waitFor(scope: ReadScope, minSeq: number, timeoutMs: number): Promise<boolean> {
    if (this.seqFor(scope) >= minSeq) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        scope,
        minSeq,
        done: (ok) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => waiter.done(false), timeoutMs);
      this.waiters.add(waiter);
    });
  }

  account(id: string): AccountView | undefined {
    const doc = this.current?.doc(accountShardDoc(shardOf(id, this.opts.layout.accountShards)));
    return doc?.getMap<AccountView>(ACCOUNTS).get(id);
  }

  hasMarket(symbol: string): boolean {
    return this.opts.layout.markets.includes(symbol);
  }

  book(symbol: string): { bids: BookLevel[]; asks: BookLevel[] } | undefined {
    const doc = this.current?.doc(marketDoc(symbol));
    if (!doc) return undefined;
    const map = doc.getMap<BookLevel[]>(BOOK);
    return { bids: map.get('bids') ?? [], asks: map.get('asks') ?? [] };
  }

  trades(symbol: string, limit: number): TradeView[] {
    const doc = this.current?.doc(marketDoc(symbol));
    if (!doc || limit === 0) return [];
    const arr = doc.getArray<TradeView>(TRADES);
    return arr.slice(Math.max(0, arr.length - limit));
  }

  status(): Record<string, unknown> {
    const meta = this.current?.meta.getMap(META);
    const commitTsMs = meta?.get('tsMs');
    return {
      role: 'replica',
      upstream: this.current?.url ?? null,
      epoch: this.maxEpoch,
      upstreamError: this.lastDiscoveryError,
      stateHash: meta?.get('stateHash') ?? null,
      metaSeq: meta?.get('seq') ?? 0,
      // Wall-clock age of the newest commit this node holds (all regions share one machine's
      // clock); it grows while the core is idle, so read it beside upstreamSeq.
      lastCommitAgeMs: typeof commitTsMs === 'number' ? Math.max(0, Date.now() - commitTsMs) : null,
      upstreamSeq: this.upstreamSeq,
      syncingGeneration: this.next?.id ?? null,
      accounts: meta?.get('accounts') ?? 0,
      connections: this.sync.connections,
      droppedClientMessages: this.sync.droppedClientMessages,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.discoveryTimer) clearInterval(this.discoveryTimer);
    for (const w of [...this.waiters]) w.done(false);
    this.next?.destroy();
    for (const [gen, timer] of this.retiring) {
      clearTimeout(timer);
      gen.destroy();
    }
    this.retiring.clear();
    this.current?.destroy();
    await this.server?.close();
    this.store?.close();
  }
}

// Generation sync: mirrors one upstream generation's docs with y-websocket's WebsocketProvider,
// persists the served one (store.ts), syncs a new generation in the background and swaps it in
// only once every doc has synced, and keeps serving a replaced generation to downstream readers for
// a grace period (handover).
// Invariants:
// - It only ever holds docs of one upstream generation per Generation object, and the served one
//   (`current`) is always complete: a new generation (core restart, failover, compaction) is
//   installed only when all of its docs have synced; until then the previous copy keeps serving.
// - Nothing is written to the docs except what arrives from upstream (or the persisted copy of it).
// - Only the served generation is persisted; a retiring one just streams until it retires.
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { WebSocket } from 'ws';
import type { Logger } from 'pino';
import { ACCOUNTS, META, META_DOC, accountShardDoc } from '../publish/layout.js';

const ACCOUNT_SHARD_PREFIX = accountShardDoc(0).replace(/0$/, '');
import type { SyncServer } from '../rooms/room-server.js';
import { seqOf, type DocSource } from './read-model.js';
import type { ReplicaStore } from './store.js';

const LOAD_ORIGIN = Symbol('load');

/** One generation's docs and the providers keeping them in sync with upstream. */
export class Generation implements DocSource {
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

  /**
   * Providers a terminal close (4410 while the upstream restarts and has not served this
   * generation yet, a 44xx refusal) stopped for good. They are resumed when discovery finds the
   * generation again; left alone, that doc would never advance again.
   */
  get stopped(): number {
    let n = 0;
    for (const p of this.providers.values()) if (!p.shouldConnect) n++;
    return n;
  }

  /** Resumes every stopped provider (see `stopped`), at the same upstream. */
  resume(): void {
    if (this.destroyed) return;
    for (const p of this.providers.values()) if (!p.shouldConnect) p.connect();
  }

  /** Closes every provider (to connect again elsewhere); the docs keep what they hold. */
  disconnect(): void {
    if (this.providers.size > 0) process.setMaxListeners(Math.max(10, process.getMaxListeners() - this.providers.size));
    for (const p of this.providers.values()) p.destroy();
    this.providers.clear();
  }

  get allSynced(): boolean {
    return this.synced.size === this.docs.size;
  }

  /** `page`: this node's page id upstream, so its sockets (one per doc) count once there. */
  connect(upstreamUrl: string, token: string, page: string, onSynced: () => void, onGone: () => void): void {
    if (this.destroyed || this.connected) return;
    this.url = upstreamUrl;
    // y-websocket registers one process 'exit' listener per provider: that is expected, not a leak.
    process.setMaxListeners(process.getMaxListeners() + this.docs.size);
    const wsBase = upstreamUrl.replace(/^http/, 'ws') + `/sync/${this.id}`;
    for (const [name, doc] of this.docs) {
      const provider = new WebsocketProvider(wsBase, name, doc, {
        // The cluster token: upstream rooms (account shards) are closed to anyone else.
        params: { token, page },
        WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
        disableBc: true,
        maxBackoffTime: 1000,
      });
      // Presence is meaningless for a mirror, and the upstream drops it anyway.
      provider.awareness.setLocalState(null);
      // A mirror never sends updates upstream (the rooms drop them anyway), and the provider's
      // 'update' listener would make Yjs re-encode every transaction it applies just to find
      // nothing to send: detach it (y-websocket keeps it as _updateHandler; destroy() detaches
      // it again harmlessly).
      const handler = (provider as unknown as { _updateHandler?: (...args: unknown[]) => void })._updateHandler;
      if (handler) doc.off('update', handler);
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
    this.disconnect();
    for (const d of this.docs.values()) d.destroy();
  }
}

export interface GenerationSyncOptions {
  region: string;
  names: readonly string[];
  store: ReplicaStore | null;
  /** The rooms re-serving the docs (to browsers and downstream regions). */
  sync: SyncServer;
  /** On-demand docs of the rooms (per-account views). */
  resolve: (name: string) => Y.Doc | undefined;
  release: (name: string) => void;
  /** The cluster token for the upstream rooms. */
  token: () => string;
  /** A room closed for good (e.g. generation gone): check upstream again. */
  onGone: () => void;
  /** The copy advanced (an update arrived, or a generation was swapped in). */
  onAdvanced: () => void;
  /** Account ids an update changed in the served generation (`all` when a generation is swapped in). */
  onAccountsChanged?: (ids: Iterable<string> | 'all') => void;
  /** A generation is now the served one. */
  onSwapped: (generation: string) => void;
  /** How long a replaced generation is still served to downstream readers (handover). */
  retireGraceMs?: number;
  logger?: Logger;
}

export class GenerationSync {
  /** The served generation (complete), or null before anything was loaded or synced. */
  current: Generation | null = null;
  /** The generation being synced in the background. */
  next: Generation | null = null;
  /** Generations replaced by a newer one, still served until their grace timer retires them. */
  private readonly retiring = new Map<Generation, NodeJS.Timeout>();

  constructor(private readonly opts: GenerationSyncOptions) {}

  /** The page id this node's sockets of `gen` present upstream (region + generation). */
  private page(gen: Generation): string {
    return `${this.opts.region}-${gen.id.slice(0, 8)}`.replace(/[^A-Za-z0-9_-]/g, '_');
  }

  /**
   * Serves whatever this node persisted before it stopped, until upstream says otherwise;
   * `onEpoch` learns the persisted copy's primary epoch before it is served.
   */
  loadPersisted(onEpoch: (epoch: number) => void): void {
    const { store } = this.opts;
    const genId = store?.servingGeneration();
    if (!store || !genId) return;
    const gen = new Generation(genId, this.opts.names);
    const stored = store.load(genId);
    for (const [name, updates] of stored) {
      const doc = gen.doc(name);
      if (!doc) continue;
      Y.transact(doc, () => {
        for (const u of updates) Y.applyUpdate(doc, u, LOAD_ORIGIN);
      }, LOAD_ORIGIN);
    }
    const epoch = gen.meta.getMap(META).get('epoch');
    if (typeof epoch === 'number') onEpoch(epoch);
    this.opts.logger?.info({ region: this.opts.region, generation: genId, epoch }, 'loaded persisted docs');
    this.install(gen);
  }

  /**
   * Makes `gen` the served generation (it must be complete); the previous one is retired after the
   * handover grace. A freshly synced generation is written to the store whole first: its updates
   * arrived before this listener.
   */
  private install(gen: Generation, persistWhole = false): void {
    const { store } = this.opts;
    const old = this.current;
    this.current = gen;
    this.opts.onAccountsChanged?.('all');
    for (const [name, doc] of gen.docs) {
      if (persistWhole) store?.compact(gen.id, name, Y.encodeStateAsUpdate(doc));
      // Which accounts an update touched, so only their browser views are rewritten.
      if (name.startsWith(ACCOUNT_SHARD_PREFIX)) {
        doc.getMap(ACCOUNTS).observe((event) => {
          if (this.current === gen) this.opts.onAccountsChanged?.(event.keysChanged);
        });
      }
      // An 'update' listener makes Yjs encode every transaction it applies: only a node that
      // persists needs those bytes. Advancing needs no bytes ('afterTransaction' encodes nothing).
      if (store) {
        doc.on('update', (update: Uint8Array, origin: unknown) => {
          // Only the served generation is persisted; a retiring one just streams until it retires.
          if (origin !== LOAD_ORIGIN && this.current === gen) {
            store.append(gen.id, name, update);
            if (store.needsCompaction(gen.id, name)) store.compact(gen.id, name, Y.encodeStateAsUpdate(doc));
          }
        });
      }
      doc.on('afterTransaction', () => this.opts.onAdvanced());
    }
    store?.setServing(gen.id);
    // Handover: the previous generation stays served (and keeps syncing from upstream) for a
    // grace period, so downstream regions keep advancing while they sync this one.
    this.opts.sync.serve({ generation: gen.id, docs: gen.docs, resolve: this.opts.resolve, release: this.opts.release }, { keepPrevious: true });
    if (old && old !== gen) {
      const timer = setTimeout(() => {
        this.retiring.delete(old);
        this.opts.sync.retire(old.id);
        old.destroy();
      }, this.opts.retireGraceMs ?? 15_000);
      this.retiring.set(old, timer);
    }
    this.opts.logger?.info({ region: this.opts.region, generation: gen.id, seq: seqOf(gen, this.opts.names) }, 'serving generation');
    this.opts.onSwapped(gen.id);
    this.opts.onAdvanced();
  }

  /** Follows `generation` at `url`: reconnects the served one, or syncs a new one in the background. */
  follow(generation: string, url: string): void {
    const cur = this.current;
    if (cur && cur.id === generation) {
      // The same generation, now at another upstream: move every doc's connection there.
      if (cur.connected && cur.url !== url) cur.disconnect();
      if (cur.stopped > 0) cur.resume();
      if (!cur.connected) cur.connect(url, this.opts.token(), this.page(cur), () => this.opts.onAdvanced(), () => this.opts.onGone());
      if (this.next) {
        this.next.destroy();
        this.next = null;
      }
      return;
    }
    if (this.next?.id === generation) {
      // Syncing it already; a terminal close (the upstream restarting) stopped some docs: resume.
      if (this.next.url === url && this.next.stopped > 0) this.next.resume();
      if (this.next.url === url) return;
    }
    if (this.next) {
      this.next.destroy();
      this.opts.store?.dropGeneration(this.next.id);
    }
    this.opts.logger?.info({ region: this.opts.region, generation, serving: cur?.id ?? null }, 'syncing new upstream generation');
    const gen = new Generation(generation, this.opts.names);
    this.next = gen;
    gen.connect(
      url,
      this.opts.token(),
      this.page(gen),
      () => {
        if (this.next === gen && gen.allSynced) {
          this.next = null;
          this.install(gen, true);
        }
      },
      () => this.opts.onGone(),
    );
  }

  /** Destroys every generation (served, syncing, retiring). */
  destroy(): void {
    this.next?.destroy();
    for (const [gen, timer] of this.retiring) {
      clearTimeout(timer);
      gen.destroy();
    }
    this.retiring.clear();
    this.current?.destroy();
  }
}

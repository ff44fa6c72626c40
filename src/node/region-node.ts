// A regional read node: the wiring of a Replica (replica/: discovery, generation sync, store,
// views, read model) to its HTTP face — the read routes, `/v1/sync/info`, the dashboard — and the
// authorization of its rooms (auth/). The node mirrors the core's Yjs docs from its upstream (the
// core, or another region acting as a relay), serves reads from its local copy and re-serves the
// docs as read-only rooms to browsers and downstream regions.
// Invariants: the replica below never imports http/ or auth/; this file is the only place a region
// is wired to them. Reads come from exactly one complete generation (see replica/generation-sync.ts).
import type { Logger } from 'pino';
import { Hono } from 'hono';
import type { Layout } from '../publish/layout.js';
import { Replica } from '../replica/replica.js';
import { dashboardHtml, dashboardScript } from '../replica/dashboard/page.js';
import { signToken } from '../auth/tokens.js';
import { tokenGate } from '../auth/rules.js';
import { mountReadRoutes, type ReadLimits } from '../http/read-routes.js';
import { errorBody, errorCounter, markError, requestError } from '../http/errors.js';
import { listen, type RunningServer } from '../http/server.js';
import { OverviewAggregator } from './cluster-view/overview.js';
import { mountClusterView } from './cluster-view/routes.js';
import { ReadNodeMetrics, mountMetrics } from './metrics.js';
import { apiDocument } from '../http/api-doc.js';
import type { NodeTarget } from './cluster-view/history.js';

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
  maxPages?: number;
  maxSocketsPerPage?: number;
  /** User JWT secret (reads, browser rooms) and cluster secret (this node's upstream links). */
  secrets: { jwtSecret: string; clusterSecret: string };
  /** How long a replaced generation is still served to downstream readers (handover). */
  retireGraceMs?: number;
  /** How often the upstream's generation is checked (also checked at once when a room closes). */
  discoveryIntervalMs?: number;
  /** Every node the cluster view (/v1/overview, /cluster) polls; this node is added once bound. */
  clusterTargets?: NodeTarget[];
  logger?: Logger;
}

export class ReadNode extends Replica {
  private server: RunningServer | null = null;
  /** The HTTP app (its routes are what /openapi.json documents; tests compare the two). */
  app: Hono | null = null;
  /** The cluster view (GET /v1/overview, /cluster): polls every node's status while watched. */
  readonly overview: OverviewAggregator;
  /** Prometheus metrics (GET /metrics): this node's own registry. */
  readonly metrics: ReadNodeMetrics;

  constructor(readonly nodeOpts: ReadNodeOptions) {
    super({
      region: nodeOpts.region,
      upstreamUrls: nodeOpts.upstreamUrls,
      layout: nodeOpts.layout,
      ...(nodeOpts.dataDir !== undefined ? { dataDir: nodeOpts.dataDir } : {}),
      maxConnections: nodeOpts.maxConnections,
      ...(nodeOpts.maxPages !== undefined ? { maxPages: nodeOpts.maxPages } : {}),
      ...(nodeOpts.maxSocketsPerPage !== undefined ? { maxSocketsPerPage: nodeOpts.maxSocketsPerPage } : {}),
      authorize: tokenGate(nodeOpts.secrets),
      ...(nodeOpts.retireGraceMs !== undefined ? { retireGraceMs: nodeOpts.retireGraceMs } : {}),
      ...(nodeOpts.discoveryIntervalMs !== undefined ? { discoveryIntervalMs: nodeOpts.discoveryIntervalMs } : {}),
      ...(nodeOpts.logger ? { logger: nodeOpts.logger } : {}),
    });
    this.overview = new OverviewAggregator({ self: nodeOpts.region, targets: nodeOpts.clusterTargets ?? [] });
    this.metrics = new ReadNodeMetrics(nodeOpts.region);
    this.metrics.attach(() => ({ seq: this.seqFor({ kind: 'all' }), generation: this.generation(), status: this.status(), rooms: this.sync }));
    this.on('swapped', this.metrics.onSwapped);
  }

  get url(): string {
    if (!this.server) throw new Error('read node not started');
    return this.server.url;
  }

  get port(): number {
    if (!this.server) throw new Error('read node not started');
    return this.server.port;
  }

  async start(): Promise<this> {
    this.setClusterToken(await signToken(this.nodeOpts.secrets.clusterSecret, { sub: this.region, role: 'replica' }, 0));
    this.loadPersisted();
    const app = new Hono();
    app.use('*', errorCounter(this.metrics.countError));
    app.get('/', (c) => c.redirect('/dashboard'));
    app.get('/dashboard', (c) => c.html(dashboardHtml(this.region)));
    app.get('/dashboard.js', async (c) => {
      c.header('content-type', 'text/javascript; charset=utf-8');
      c.header('cache-control', 'no-cache');
      return c.body(await dashboardScript());
    });
    mountReadRoutes(app, this, this.nodeOpts.readLimits, this.nodeOpts.secrets);
    mountClusterView(app, this.overview, this.region);
    mountMetrics(app, this.metrics.registry, this.metrics.refresh);
    const doc = apiDocument({ kind: 'read', readLimits: this.nodeOpts.readLimits });
    app.get('/openapi.json', (c) => c.json(doc));
    this.app = app;
    app.get('/v1/sync/info', (c) => {
      const info = this.syncInfo();
      if (info === null) return requestError(c, 'seq_not_reached', 'read node has not synced any state yet', { seq: 0 });
      return c.json(info);
    });
    app.notFound((c) => requestError(c, 'not_found', `no route ${c.req.method} ${c.req.path}`));
    // A throw in a route still answers the error shape (hono's default is a text/plain 500).
    app.onError((err, c) => {
      this.nodeOpts.logger?.error({ err, region: this.region }, 'unhandled error');
      markError(c, 'internal');
      return c.json(errorBody('internal', 'internal error'), 500);
    });
    this.server = await listen(app, this.nodeOpts.host ?? '127.0.0.1', this.nodeOpts.port ?? 0, {
      sync: this.sync,
      maxConnections: this.nodeOpts.maxConnections,
      countError: this.metrics.countError,
    });
    this.metrics.trackServer(this.server.server);
    this.overview.setTarget(this.region, 'region', this.server.url);
    this.startDiscovery();
    return this;
  }

  async stop(): Promise<void> {
    this.overview.stop();
    this.stopReplica();
    await this.server?.close();
    this.closeStore();
  }
}

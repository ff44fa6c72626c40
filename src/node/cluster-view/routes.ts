// The cluster view's routes, mounted by every core node and read node: GET /v1/overview (JSON: the
// core nodes' and regions' table, lag history and events, from overview.ts), GET /cluster (the
// live page) and GET /cluster.js (its script). Public, like /v1/status. Not under /v1/cluster,
// which is the Raft link's (cluster secret).
import type { Hono } from 'hono';
import type { OverviewAggregator } from './overview.js';
import { clusterHtml, clusterScript } from './page.js';

export function mountClusterView(app: Hono, overview: OverviewAggregator, self: string): void {
  app.get('/v1/overview', async (c) => {
    c.header('cache-control', 'no-store');
    return c.json(await overview.read());
  });
  app.get('/cluster', (c) => c.html(clusterHtml(self)));
  app.get('/cluster.js', async (c) => {
    c.header('content-type', 'text/javascript; charset=utf-8');
    c.header('cache-control', 'no-cache');
    return c.body(await clusterScript());
  });
}

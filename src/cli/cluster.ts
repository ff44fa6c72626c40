// Wires a whole local (simulated) cluster from a Config: the core nodes (a Raft cluster), then
// every region in upstream order, each behind LinkProxies that apply its configured link (latency,
// jitter, loss) to every byte it pulls from upstream — one proxy per upstream candidate (each core node,
// or the relay region). Invariant: a region's upstream is started before the region, so every
// proxy has a live target address. This is the only src/ file that uses sim/
// (LinkProxy and the seeded PRNG), as .dependency-cruiser.cjs allows for src/cli alone.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { linkFor, type Config, type RegionConfig } from '../config/schema.js';
import { CoreNode } from '../node/core-node.js';
import { configTargets } from '../node/cluster-view/overview.js';
import { LinkProxy } from '../../sim/link-proxy.js';
import { mixSeed } from '../../sim/prng.js';
import { ReadNode } from '../node/region-node.js';

export interface RegionNode {
  config: RegionConfig;
  node: ReadNode;
  proxies: LinkProxy[];
  url: string;
  close(): Promise<void>;
}

export interface RegionStartOptions {
  /** Where the region's upstream candidates listen (each core node, or the relay region). */
  upstreams: Array<{ host: string; port: number }>;
  /**
   * Real links instead: the upstream candidates' base URLs (http:// or https://, e.g. behind a
   * TLS-terminating proxy), dialled directly with no simulated link (`replica --upstream URL`).
   */
  upstreamUrls?: string[];
  /** Override the configured port (tests use 0). */
  port?: number;
  /** Override the data dir; null for an in-memory node. */
  dataDir?: string | null;
  seed?: number;
  logger?: Logger;
  discoveryIntervalMs?: number;
}

/** Starts one region: its inbound link proxies and its read node. */
export async function startRegion(config: Config, region: RegionConfig, opts: RegionStartOptions): Promise<RegionNode> {
  const link = linkFor(config, region);
  const proxies: LinkProxy[] = [];
  try {
    for (const [i, up] of (opts.upstreamUrls ? [] : opts.upstreams).entries()) {
      const proxy = new LinkProxy({
        name: `${region.upstream}${opts.upstreams.length > 1 ? `#${i}` : ''}->${region.name}`,
        targetHost: up.host,
        targetPort: up.port,
        link: { latencyMs: link.latencyMs, jitterMs: link.jitterMs, lossPct: link.lossPct },
        seed: opts.seed ?? mixSeed(0x5eed, config.regions.indexOf(region) * 8 + i),
        ...(opts.logger ? { logger: opts.logger } : {}),
      });
      proxies.push(proxy);
      await proxy.start();
    }
  } catch (err) {
    await Promise.all(proxies.map((p) => p.stop()));
    throw err;
  }
  const dataDir = opts.dataDir === undefined ? (region.dataDir ?? join('data', region.name)) : opts.dataDir;
  const node = new ReadNode({
    region: region.name,
    upstreamUrls: opts.upstreamUrls ?? proxies.map((p) => `http://127.0.0.1:${p.port}`),
    layout: { accountShards: config.publish.accountShards, markets: config.domain.markets.map((m) => m.symbol) },
    host: region.host,
    port: opts.port ?? region.port,
    ...(dataDir !== null ? { dataDir } : {}),
    readLimits: config.readNode,
    maxConnections: config.readNode.maxConnections,
    maxPages: config.readNode.maxPages,
    maxSocketsPerPage: config.readNode.maxSocketsPerPage,
    secrets: { jwtSecret: config.auth.jwtSecret, clusterSecret: config.replication.clusterSecret },
    retireGraceMs: config.publish.compactGraceMs,
    clusterTargets: configTargets(config),
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.discoveryIntervalMs ? { discoveryIntervalMs: opts.discoveryIntervalMs } : {}),
  });
  await node.start();
  return {
    config: region,
    node,
    proxies,
    url: node.url,
    async close() {
      await node.stop();
      await Promise.all(proxies.map((p) => p.stop()));
    },
  };
}

/** Regions ordered so each comes after its upstream. */
export function upstreamOrder(config: Config): RegionConfig[] {
  const out: RegionConfig[] = [];
  const placed = new Set<string>(['core']);
  while (out.length < config.regions.length) {
    const ready = config.regions.filter((r) => !placed.has(r.name) && placed.has(r.upstream));
    if (ready.length === 0) throw new Error('region upstreams form a cycle'); // parseConfig rules this out
    for (const r of ready) {
      out.push(r);
      placed.add(r.name);
    }
  }
  return out;
}

export interface Cluster {
  cores: CoreNode[];
  regions: Map<string, RegionNode>;
  /** The core node that is primary now. */
  primary(): CoreNode | undefined;
  close(): Promise<void>;
}

export interface ClusterOptions {
  /** Bind everything to port 0 (tests, benchmarks). */
  ephemeralPorts?: boolean;
  /** Root for data dirs (core nodes under <root>/<node>); null keeps read nodes in memory. */
  dataRoot?: string | null;
  logger?: Logger;
  discoveryIntervalMs?: number;
  /** Wait this long for each region to sync before starting the next (0: don't wait). */
  waitReadyMs?: number;
}

export async function startCluster(config: Config, opts: ClusterOptions = {}): Promise<Cluster> {
  const cores = config.core.nodes.map(
    (n) =>
      new CoreNode(config, {
        nodeName: n.name,
        ...(opts.ephemeralPorts ? { port: 0 } : {}),
        ...(opts.dataRoot ? { dataDir: join(opts.dataRoot, n.name) } : {}),
        ...(opts.logger ? { logger: opts.logger } : {}),
      }),
  );
  // Bind every node first, so peers with ephemeral ports can be told each other's address.
  await Promise.all(cores.map((c) => c.listen()));
  for (const c of cores) for (const peer of cores) if (peer !== c) c.setPeerUrl(peer.name, peer.url);
  for (const c of cores) c.begin();
  // Regions discover the leader themselves; waiting here only makes `up` print a primary.
  await Promise.any(cores.map((c) => c.waitForRole('primary', 30_000)));
  const regions = new Map<string, RegionNode>();
  const close = async () => {
    // Downstream first, so no region sees its upstream vanish mid-shutdown and starts reconnecting.
    for (const r of [...regions.values()].reverse()) await r.close();
    await Promise.all(cores.map((c) => c.close()));
  };
  try {
    for (const region of upstreamOrder(config)) {
      const parent = regions.get(region.upstream);
      const started = await startRegion(config, region, {
        upstreams: parent ? [{ host: parent.config.host, port: parent.node.port }] : cores.map((c) => ({ host: c.server.host, port: c.port })),
        ...(opts.ephemeralPorts ? { port: 0 } : {}),
        ...(opts.dataRoot !== undefined ? { dataDir: opts.dataRoot === null ? null : join(opts.dataRoot, region.name) } : {}),
        ...(opts.logger ? { logger: opts.logger } : {}),
        ...(opts.discoveryIntervalMs ? { discoveryIntervalMs: opts.discoveryIntervalMs } : {}),
      });
      regions.set(region.name, started);
      // Downstream regions discover through this one, which answers only once it has state.
      if (opts.waitReadyMs !== 0) await started.node.ready(opts.waitReadyMs ?? 30_000);
    }
  } catch (err) {
    await close();
    throw err;
  }
  // Every node's cluster view polls every node at the address it actually bound (ephemeral ports).
  const everyone = [...cores.map((c) => ({ name: c.name, kind: 'core' as const, url: c.url })), ...[...regions.values()].map((r) => ({ name: r.config.name, kind: 'region' as const, url: r.url }))];
  for (const view of [...cores.map((c) => c.overview), ...[...regions.values()].map((r) => r.node.overview)]) {
    for (const t of everyone) view.setTarget(t.name, t.kind, t.url);
  }
  return { cores, regions, primary: () => cores.find((c) => c.role === 'primary'), close };
}

// Wires a whole local cluster from a Config: the core, then every region in upstream order, each
// behind a LinkProxy that applies its configured link (latency, jitter, loss) to every byte it
// pulls from upstream. Invariant: a region's upstream is started before the region, so every
// proxy has a live target address.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { linkFor, type Config, type RegionConfig } from '../config/schema.js';
import { startCoreNode, type CoreNode } from '../core/core-node.js';
import { LinkProxy, mixSeed } from '../net/index.js';
import { ReadNode } from '../replica/read-node.js';

export interface RegionNode {
  config: RegionConfig;
  node: ReadNode;
  proxy: LinkProxy;
  url: string;
  close(): Promise<void>;
}

export interface RegionStartOptions {
  /** host:port the region's upstream listens on. */
  upstreamHost: string;
  upstreamPort: number;
  /** Override the configured port (tests use 0). */
  port?: number;
  /** Override the data dir; null for an in-memory node. */
  dataDir?: string | null;
  seed?: number;
  logger?: Logger;
  discoveryIntervalMs?: number;
}

/** Starts one region: its inbound link proxy and its read node. */
export async function startRegion(config: Config, region: RegionConfig, opts: RegionStartOptions): Promise<RegionNode> {
  const link = linkFor(config, region);
  const proxy = new LinkProxy({
    name: `${region.upstream}->${region.name}`,
    targetHost: opts.upstreamHost,
    targetPort: opts.upstreamPort,
    link: { latencyMs: link.latencyMs, jitterMs: link.jitterMs, lossPct: link.lossPct },
    seed: opts.seed ?? mixSeed(0x5eed, config.regions.indexOf(region)),
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  const { host, port } = await proxy.start();
  const dataDir = opts.dataDir === undefined ? (region.dataDir ?? join('data', region.name)) : opts.dataDir;
  const node = new ReadNode({
    region: region.name,
    upstreamUrl: `http://${host}:${port}`,
    layout: { accountShards: config.publish.accountShards, markets: config.domain.markets.map((m) => m.symbol) },
    host: region.host,
    port: opts.port ?? region.port,
    ...(dataDir !== null ? { dataDir } : {}),
    readLimits: config.readNode,
    maxConnections: config.readNode.maxConnections,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.discoveryIntervalMs ? { discoveryIntervalMs: opts.discoveryIntervalMs } : {}),
  });
  await node.start();
  return {
    config: region,
    node,
    proxy,
    url: node.url,
    async close() {
      await node.stop();
      await proxy.stop();
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
  core: CoreNode;
  regions: Map<string, RegionNode>;
  close(): Promise<void>;
}

export interface ClusterOptions {
  /** Bind everything to port 0 (tests, benchmarks). */
  ephemeralPorts?: boolean;
  /** Root for data dirs; null keeps read nodes in memory and puts the core log under coreDataDir. */
  dataRoot?: string | null;
  coreDataDir?: string;
  logger?: Logger;
  discoveryIntervalMs?: number;
  /** Wait this long for each region to sync before starting the next (0: don't wait). */
  waitReadyMs?: number;
}

export async function startCluster(config: Config, opts: ClusterOptions = {}): Promise<Cluster> {
  const core = await startCoreNode(config, {
    ...(opts.ephemeralPorts ? { port: 0 } : {}),
    ...(opts.coreDataDir ? { dataDir: opts.coreDataDir } : opts.dataRoot ? { dataDir: join(opts.dataRoot, 'core') } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  const regions = new Map<string, RegionNode>();
  try {
    for (const region of upstreamOrder(config)) {
      const parent = regions.get(region.upstream);
      const started = await startRegion(config, region, {
        upstreamHost: parent ? parent.config.host : core.server.host,
        upstreamPort: parent ? parent.node.port : core.port,
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
    for (const r of [...regions.values()].reverse()) await r.close();
    await core.close();
    throw err;
  }
  return {
    core,
    regions,
    async close() {
      // Downstream first, so no region sees its upstream vanish mid-shutdown and starts reconnecting.
      for (const r of [...regions.values()].reverse()) await r.close();
      await core.close();
    },
  };
}

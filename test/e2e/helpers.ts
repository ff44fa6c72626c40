// Shared helpers for end-to-end tests: a small cluster config, tokens, JSON HTTP calls (with an
// operator token unless told otherwise), and bounded waits on events (never sleeps).
import type { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { afterEach } from 'vitest';
import { startCluster, startRegion, type Cluster, type ClusterOptions, type RegionNode } from '../../src/cli/cluster.js';
import { CoreProcesses, freePort } from '../../sim/process-cluster.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../../src/auth/tokens.js';
import { parseConfig, type Config } from '../../src/config/schema.js';

export function testConfig(
  overrides: {
    links?: Array<{ from: string; to: string; latencyMs: number; jitterMs?: number }>;
    coreNodes?: 1 | 2 | 3;
    replication?: Record<string, unknown>;
    publish?: Record<string, unknown>;
  } = {},
): Config {
  const nodes = [
    { name: 'core-a', host: '127.0.0.1', port: 0, dataDir: 'unused-a' },
    { name: 'core-b', host: '127.0.0.1', port: 0, dataDir: 'unused-b' },
    { name: 'core-c', host: '127.0.0.1', port: 0, dataDir: 'unused-c' },
  ].slice(0, overrides.coreNodes ?? 1);
  return parseConfig({
    core: { nodes, maxBatch: 256, maxQueue: 10_000, maxBodyBytes: 65_536, maxCommandsPerRequest: 100 },
    replication: { heartbeatMs: 50, electionTimeoutMs: 300, commitTimeoutMs: 3000, ...overrides.replication },
    domain: {
      markets: [{ symbol: 'BTC-USD' }, { symbol: 'ETH-USD' }],
      leverage: 10,
      limits: { maxOpenOrdersPerAccount: 50, maxPriceTicks: 10_000_000, maxQtyLots: 1_000_000, maxAmount: 1_000_000_000_000, maxAccounts: 100_000 },
    },
    // firstGenerationSyncMax 0: every leader that takes over a non-empty state writes its first
    // generation over many turns, so the failover tests cover that path too.
    publish: { accountShards: 4, bookDepth: 20, tradesKept: 50, firstGenerationSyncMax: 0, ...overrides.publish },
    readNode: { minSeqWaitMsMax: 10_000, minSeqWaitMsDefault: 5_000, maxConnections: 256 },
    regions: [
      { name: 'near', port: 0, upstream: 'core' },
      { name: 'far', port: 0, upstream: 'near' },
    ],
    links: overrides.links ?? [
      { from: 'core', to: 'near', latencyMs: 2, jitterMs: 1 },
      { from: 'near', to: 'far', latencyMs: 25, jitterMs: 3 },
    ],
  });
}

export function tempDir(prefix = 'sm-e2e-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * For a test file whose tests each start their own cluster: returns `start`, which starts one on
 * ephemeral ports with its core nodes on disk in a fresh temp dir, and registers an afterEach
 * that closes it and removes the dir.
 */
export function clusterPerTest(prefix: string): (config: Config, opts?: Omit<ClusterOptions, 'ephemeralPorts' | 'dataRoot'>) => Promise<Cluster> {
  let cluster: Cluster | null = null;
  let dir: string | null = null;
  afterEach(async () => {
    await cluster?.close();
    cluster = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  });
  return async (config, opts = {}) => {
    dir = tempDir(prefix);
    cluster = await startCluster(config, { ephemeralPorts: true, dataRoot: dir, ...opts });
    return cluster;
  };
}

/**
 * fetch, retried once when a pooled keep-alive socket turns out to be closed (a server restarted
 * behind it). Safe for POST too: every command carries a clientId, so a retry never applies twice.
 */
async function fetchRetry(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw err;
    return fetch(url, init);
  }
}

/** An operator token signed with `config`'s JWT secret (testConfig()'s, i.e. the default, unless given). */
export const operatorToken = (config: Config = testConfig()): Promise<string> => signToken(config.auth.jwtSecret, { sub: 'operator', role: 'operator' });

/** A token that acts for and reads account `id` only. */
export const accountToken = (config: Config, id: string): Promise<string> => signToken(config.auth.jwtSecret, { sub: id, role: 'account' });

let defaultToken: Promise<string> | undefined;
/** `token` undefined: the default operator token; null: no Authorization header. */
async function authHeader(token: string | null | undefined): Promise<Record<string, string>> {
  if (token === null) return {};
  return { authorization: `Bearer ${token ?? (await (defaultToken ??= operatorToken()))}` };
}

export async function post(url: string, body: unknown, token?: string | null): Promise<{ status: number; body: any }> {
  const headers = { 'content-type': 'application/json', ...(await authHeader(token)) };
  const res = await fetchRetry(url, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

export async function get(url: string, token?: string | null): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetchRetry(url, { headers: await authHeader(token) });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

/** Resolves with the event's args the first time `pred` holds, rejects after timeoutMs. */
export function waitForEvent<T extends unknown[]>(
  emitter: EventEmitter,
  event: string,
  pred: (...args: T) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${event}`));
    }, timeoutMs);
    const on = (...args: unknown[]) => {
      if (!pred(...(args as T))) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(args as T);
    };
    emitter.on(event, on);
  });
}

/** The secrets a read node needs, from a config. */
export const secretsOf = (c: Config) => ({ jwtSecret: c.auth.jwtSecret, clusterSecret: c.replication.clusterSecret });

/**
 * Three core nodes as real processes (SIGKILL is a real crash) on free ports, with testConfig()'s
 * regions as read nodes in this process (near follows the core, far follows near), each started
 * once its upstream has state. stop() ends everything and removes the temp dir.
 */
export interface ProcessCluster {
  dir: string;
  config: Config;
  cores: CoreProcesses;
  regions: RegionNode[];
  stop(): Promise<void>;
}

export async function startProcessCluster(prefix: string): Promise<ProcessCluster> {
  const dir = tempDir(prefix);
  const raw = structuredClone(testConfig({ coreNodes: 3, replication: { heartbeatMs: 50, electionTimeoutMs: 300, commitTimeoutMs: 2000 } })) as any;
  for (const n of raw.core.nodes) Object.assign(n, { port: await freePort(), dataDir: join(dir, n.name) });
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(raw));
  const config = parseConfig(raw);
  const cores = new CoreProcesses({ configPath, urls: Object.fromEntries(config.core.nodes.map((n) => [n.name, `http://127.0.0.1:${n.port}`])) });
  const regions: RegionNode[] = [];
  const stop = async () => {
    for (const r of [...regions].reverse()) await r.close();
    await cores.stopAll();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(cores.names.map((n) => cores.start(n)));
    await cores.waitFor((s) => s.role === 'primary', 30_000, 'a leader');
    for (const region of config.regions) {
      const parent = regions.find((r) => r.config.name === region.upstream);
      const upstreams = parent ? [{ host: '127.0.0.1', port: parent.node.port }] : config.core.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }));
      const node = await startRegion(config, region, { upstreams, dataDir: null, discoveryIntervalMs: 100 });
      regions.push(node);
      await node.node.ready(30_000);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir, config, cores, regions, stop };
}

// Runs a core as a network node: the Core, its HTTP API and its read-only y-websocket rooms on one
// port. Used by the CLI and by end-to-end tests (port 0).
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { createCoreApp } from '../api/core-app.js';
import { listen, type RunningServer } from '../api/http-server.js';
import { SyncServer } from '../publish/sync-server.js';
import { Core } from './core.js';
import type { Clock } from './sequencer.js';

export interface CoreNode {
  core: Core;
  server: RunningServer;
  sync: SyncServer;
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startCoreNode(
  config: Config,
  opts: { host?: string; port?: number; dataDir?: string; logger?: Logger; clock?: Clock } = {},
): Promise<CoreNode> {
  const core = new Core({
    domain: config.domain,
    layout: { accountShards: config.publish.accountShards, markets: config.domain.markets.map((m) => m.symbol) },
    bookDepth: config.publish.bookDepth,
    tradesKept: config.publish.tradesKept,
    maxBatch: config.core.maxBatch,
    maxQueue: config.core.maxQueue,
    dataDir: opts.dataDir ?? config.core.dataDir,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  const sync = new SyncServer({ maxConnections: config.readNode.maxConnections });
  sync.serve({ generation: core.publisher.generation, docs: core.publisher.docs });
  const app = createCoreApp({
    core,
    region: 'core',
    role: 'primary',
    maxBodyBytes: config.core.maxBodyBytes,
    maxCommandsPerRequest: config.core.maxCommandsPerRequest,
    readLimits: config.readNode,
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  const server = await listen(app, opts.host ?? config.core.host, opts.port ?? config.core.port, { sync });
  return {
    core,
    server,
    sync,
    url: server.url,
    port: server.port,
    async close() {
      await server.close();
      core.close();
    },
  };
}

// A read node as its own process (no link proxy in the process, so its CPU is the read node's
// alone): `node --import tsx bench/proc/read-node.ts <config> <upstreamUrl[,url...]> <dataDir|-> [region]`.
// Prints "READY <url>" on stdout once it serves a generation. For benches only.
import { loadConfig } from '../../src/config/schema.js';
import { ReadNode } from '../../src/node/region-node.js';

const [configPath, upstream, dataDir, region] = process.argv.slice(2);
const config = loadConfig(configPath);
const node = new ReadNode({
  region: region ?? 'bench',
  upstreamUrls: upstream!.split(','),
  layout: { accountShards: config.publish.accountShards, markets: config.domain.markets.map((m) => m.symbol) },
  port: 0,
  ...(dataDir && dataDir !== '-' ? { dataDir } : {}),
  readLimits: config.readNode,
  maxConnections: config.readNode.maxConnections,
  maxPages: config.readNode.maxPages,
  maxSocketsPerPage: config.readNode.maxSocketsPerPage,
  secrets: { jwtSecret: config.auth.jwtSecret, clusterSecret: config.replication.clusterSecret },
  discoveryIntervalMs: 200,
});
await node.start();
await node.ready(30_000);
process.stdout.write(`READY ${node.url}\n`);
for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => void node.stop().finally(() => process.exit(0)));

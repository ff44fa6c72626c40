// The statemirror command line: `core` runs the core alone, `replica --region R` one read node
// (with its inbound simulated link), `up` the whole local cluster from regions.config.json (or the
// embedded defaults) and prints where everything listens. Ctrl-C / SIGTERM stop cleanly: HTTP and
// sync servers close, logs and stores are closed after their last write.
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadConfig, pathLatencyMs, type Config } from '../config/schema.js';
import { CoreNode } from '../core/core-node.js';
import { startCluster, startRegion } from './cluster.js';

const USAGE = `usage: statemirror <command> [options]

commands:
  up                      start the core and every region's read node (npm start)
  core [--node NAME]      start one core node (primary or standby, decided with its peer)
       [--force-primary]  become primary even if the peer can't be reached (it must be dead)
  replica --region NAME   start one region's read node (its upstream must be running)

options:
  --config PATH           cluster config (default ./regions.config.json, else embedded defaults)
  --log-level LEVEL       pino level (default info)
`;

function onShutdown(close: () => Promise<void>, logger: pino.Logger): void {
  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'stopping');
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')).join('\n');
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      region: { type: 'string' },
      node: { type: 'string' },
      'force-primary': { type: 'boolean', default: false },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    process.stdout.write(USAGE);
    process.exit(command || values.help ? 0 : 2);
  }
  const logger = pino({ level: values['log-level'] }, pino.destination(2));
  const config: Config = loadConfig(values.config);

  if (command === 'core') {
    const node = new CoreNode(config, {
      ...(values.node ? { nodeName: values.node } : {}),
      forcePrimary: values['force-primary'],
      logger,
    });
    // Shutdown handlers first: a node waiting for its peer must still stop on Ctrl-C.
    onShutdown(() => node.close(), logger);
    await node.listen();
    logger.info({ node: node.name, url: node.url }, 'core node listening; deciding role');
    await node.elect();
    logger.info({ node: node.name, role: node.role, seq: node.log.lastSeq(), epoch: node.log.currentEpoch() }, 'core node ready');
    return;
  }
  if (command === 'replica') {
    const region = config.regions.find((r) => r.name === values.region);
    if (!region) throw new Error(`--region must be one of: ${config.regions.map((r) => r.name).join(', ')}`);
    const upstreams = region.upstream === 'core' ? config.core.nodes : [config.regions.find((r) => r.name === region.upstream)!];
    const node = await startRegion(config, region, { upstreams: upstreams.map((u) => ({ host: u.host, port: u.port })), logger });
    logger.info({ region: region.name, url: node.url, upstream: region.upstream }, 'read node listening');
    onShutdown(() => node.close(), logger);
    return;
  }
  if (command === 'up') {
    const cluster = await startCluster(config, { logger });
    const rows = [
      ['node', 'url', 'upstream', 'role / link one-way', 'core->node floor'],
      ...cluster.cores.map((c) => [c.name, c.url, '-', c.role, '-']),
      ...[...cluster.regions.values()].map((r) => {
        const link = config.links.find((l) => l.from === r.config.upstream && l.to === r.config.name)!;
        return [r.config.name, r.url, r.config.upstream, `${link.latencyMs} ms ± ${link.jitterMs}`, `${pathLatencyMs(config, r.config)} ms`];
      }),
    ];
    process.stdout.write(`\nstatemirror is up (data under ./data). Ctrl-C stops it.\n\n${table(rows)}\n\n`);
    const primary = cluster.primary() ?? cluster.cores[0]!;
    process.stdout.write(`try:\n  curl -s -XPOST ${primary.url}/v1/commands -H 'content-type: application/json' \\\n    -d '{"clientId":"d1","type":"deposit","account":"alice","amount":1000000}'\n`);
    const first = [...cluster.regions.values()].at(-1)!;
    process.stdout.write(`  curl -s '${first.url}/v1/accounts/alice?minSeq=1'\n\n`);
    onShutdown(() => cluster.close(), logger);
    return;
  }
  process.stderr.write(`unknown command ${command}\n${USAGE}`);
  process.exit(2);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`statemirror: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

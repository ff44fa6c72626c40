// The statemirror command line: `core` runs the core alone, `replica --region R` one read node
// (with its inbound simulated link), `up` the whole local cluster from regions.config.json (or the
// embedded defaults) and prints where everything listens plus demo tokens, `status` prints the
// cluster table (GET /v1/overview of one node), `token` signs a bearer token with the config's JWT
// secret. Logs are pretty on a terminal and JSON otherwise (logging.ts); `up` writes them to a file
// and shows only warnings. Ctrl-C / SIGTERM stop cleanly: HTTP and sync servers close, logs and
// stores are closed after their last write.
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { signToken, type Claims } from '../auth/tokens.js';
import { ACCOUNT_ID } from '../domain/types.js';
import { loadConfig, pathLatencyMs, type Config } from '../config/schema.js';
import { CoreNode } from '../node/core-node.js';
import { configTargets } from '../node/cluster-view/overview.js';
import { startCluster, startRegion } from './cluster.js';
import { defaultLogFile, fileAndStderrLogger, stderrLogger } from './logging.js';
import { runStatus, table } from './status.js';

const USAGE = `usage: statemirror <command> [options]

commands:
  up                      start the core and every region's read node (npm start)
  core [--node NAME]      start one core node of the Raft cluster in core.nodes (elections pick the leader)
       [--peer NAME=URL]  reach peer NAME at URL instead of its configured address (repeatable)
  replica --region NAME   start one region's read node (its upstream must be running), reaching its
                          upstream through the config's simulated link, or over the real network
    [--upstream URL]      at URL (repeatable: each core node, or the relay region; http(s)://host[:port],
                          e.g. a TLS proxy in front of it), or at the upstreams' configured \`url\`s
  status [--url URL]      print the cluster table (core nodes, regions, lag, events) from one node's
         [--watch]        GET /v1/overview (default: the first node of the config that answers);
                          --watch redraws it every second
  token --role operator   print an operator token (any account, deposits/withdrawals, every read)
  token --account ID      print a token that acts for and reads account ID only
        [--ttl-s N]       lifetime in seconds (default 86400; 0 = no expiry)

options:
  --config PATH           cluster config (default ./regions.config.json, else embedded defaults)
  --log-level LEVEL       pino level (default info); logs are human-readable on a terminal, JSON otherwise
  --log-file PATH         up only: where the full log goes (default: data/statemirror.log, beside the
                          first core node's data dir); the terminal shows warnings and errors only
`;

function onShutdown(close: () => Promise<void>, logger: Logger): void {
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

/** The claims `token` signs: `--role operator`, or `--account ID` (optionally with `--role account`). */
function tokenClaims(role: string | undefined, account: string | undefined): Claims {
  if (role === 'operator' && account === undefined) return { sub: 'operator', role: 'operator' };
  if ((role === undefined || role === 'account') && account !== undefined) {
    if (!ACCOUNT_ID.test(account)) throw new Error('--account: 1-64 of A-Z a-z 0-9 _ . -');
    return { sub: account, role: 'account' };
  }
  throw new Error('token needs --role operator or --account ID (cluster tokens are made by the nodes themselves)');
}

function ttlSeconds(raw: string | undefined): number {
  const n = Number(raw);
  if (!/^\d{1,10}$/.test(raw ?? '') || !Number.isSafeInteger(n)) throw new Error('--ttl-s must be a non-negative integer (0 = no expiry)');
  return n;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      region: { type: 'string' },
      node: { type: 'string' },
      peer: { type: 'string', multiple: true },
      upstream: { type: 'string', multiple: true },
      // The primary/standby era's override: accepted, ignored (elections decide; a majority must be up).
      'force-primary': { type: 'boolean', default: false },
      role: { type: 'string' },
      account: { type: 'string' },
      'ttl-s': { type: 'string', default: '86400' },
      'log-level': { type: 'string', default: 'info' },
      'log-file': { type: 'string' },
      url: { type: 'string' },
      watch: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    process.stdout.write(USAGE);
    process.exit(command || values.help ? 0 : 2);
  }
  const config: Config = loadConfig(values.config);
  if (command === 'status') {
    if (values.url !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(values.url)) throw new Error('--url must be http(s)://host:port of a core node or read node');
    const urls = values.url !== undefined ? [values.url] : configTargets(config).map((t) => t.url);
    await runStatus({ urls, watch: values.watch, out: process.stdout });
    return;
  }
  const logFile = values['log-file'] ?? defaultLogFile(config.core.nodes[0]!.dataDir);
  const logger = command === 'up' ? fileAndStderrLogger(values['log-level'], logFile) : stderrLogger(values['log-level']);

  if (command === 'core') {
    // --peer NAME=URL: reach that peer at URL instead of its configured address (a proxy, a NAT).
    const peerUrls: Record<string, string> = {};
    for (const p of values.peer ?? []) {
      const m = /^([a-z0-9][a-z0-9-]{0,31})=(https?:\/\/\S+)$/.exec(p);
      if (!m || !config.core.nodes.some((n) => n.name === m[1])) throw new Error(`--peer must be NAME=http://host:port with NAME one of ${config.core.nodes.map((n) => n.name).join(', ')}`);
      peerUrls[m[1]!] = m[2]!;
    }
    if (values['force-primary']) logger.warn('--force-primary is ignored: the Raft cluster elects its leader, and a majority of core.nodes must be up');
    const node = new CoreNode(config, { ...(values.node ? { nodeName: values.node } : {}), peerUrls, logger });
    onShutdown(() => node.close(), logger);
    await node.start();
    logger.info({ node: node.name, url: node.url, peers: config.core.nodes.length - 1, epoch: node.raft.epoch, lastSeq: node.log.lastSeq() }, 'core node listening; joining the cluster (elections decide the leader)');
    return;
  }
  if (command === 'token') {
    process.stdout.write(`${await signToken(config.auth.jwtSecret, tokenClaims(values.role, values.account), ttlSeconds(values['ttl-s']))}\n`);
    return;
  }
  if (command === 'replica') {
    const region = config.regions.find((r) => r.name === values.region);
    if (!region) throw new Error(`--region must be one of: ${config.regions.map((r) => r.name).join(', ')}`);
    const upstreams = region.upstream === 'core' ? config.core.nodes : [config.regions.find((r) => r.name === region.upstream)!];
    // Real links (no simulated latency), http or https (wss for the sync sockets): --upstream URL,
    // else the upstreams' configured `url`s when every one has one (docs/deploy.md).
    for (const u of values.upstream ?? []) if (!/^https?:\/\/[^/\s]+\/?$/.test(u)) throw new Error('--upstream must be http(s)://host[:port] of a core node or of the relay region');
    const configured = upstreams.every((u) => u.url !== undefined) ? upstreams.map((u) => u.url!) : undefined;
    const upstreamUrls = values.upstream?.map((u) => u.replace(/\/$/, '')) ?? configured;
    const node = await startRegion(config, region, { upstreams: upstreams.map((u) => ({ host: u.host, port: u.port })), ...(upstreamUrls ? { upstreamUrls } : {}), logger });
    logger.info({ region: region.name, url: node.url, upstream: region.upstream, ...(upstreamUrls ? { upstreamUrls } : {}) }, 'read node listening');
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
    const primary = cluster.primary() ?? cluster.cores[0]!;
    const first = [...cluster.regions.values()].at(-1)!;
    const operator = await signToken(config.auth.jwtSecret, { sub: 'operator', role: 'operator' });
    const alice = await signToken(config.auth.jwtSecret, { sub: 'alice', role: 'account' });
    // One write, tokens before "try:": a reader that waits for "try:" has the tokens too.
    process.stdout.write(
      [
        '',
        'statemirror is up. Ctrl-C stops it.',
        `data under ${dirname(config.core.nodes[0]!.dataDir)}/; the full log is in ${logFile} (only warnings and errors show here)`,
        '',
        table(rows),
        '',
        'tokens (24 h; deposits need the operator token, ALICE_TOKEN acts and reads for alice only;',
        '        more with `statemirror token --role operator` / `--account ID`):',
        `  export OPERATOR_TOKEN=${operator}`,
        `  export ALICE_TOKEN=${alice}`,
        '',
        'try:',
        `  curl -s -XPOST ${primary.url}/v1/commands -H 'content-type: application/json' -H "authorization: Bearer $OPERATOR_TOKEN" \\`,
        `    -d '{"clientId":"d1","type":"deposit","account":"alice","amount":1000000}'`,
        `  curl -s -H "authorization: Bearer $ALICE_TOKEN" '${first.url}/v1/accounts/alice?minSeq=1'`,
        '',
        'live cluster view (roles, epochs, lag per region, failovers; every node serves it, a read node outlives any',
        'core node), or `statemirror status [--watch]`:',
        `  ${[...cluster.regions.values()][0]?.url ?? primary.url}/cluster`,
        '',
        "live dashboards (alice's positions, PnL and the book, synced from each region):",
        ...[...cluster.regions.values()].map((r) => `  ${r.url}/dashboard?account=alice&token=${alice}`),
        '',
      ].join('\n'),
    );
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

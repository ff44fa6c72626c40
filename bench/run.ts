// The latency benchmark (`npm run bench`). Starts the cluster from regions.config.json (primary +
// standby core, every region behind its simulated links) on ephemeral ports, drives an open-loop
// write load (commands/s over accounts and markets) with concurrent reads at every region, and
// reports, all measured in this one run on this one machine:
//   1. per region: commit→visible lag p50/p99/p999 (HdrHistogram), beside the configured one-way
//      path latency (the physical floor) and two baselines crossing the same simulated links:
//      (a) a replica polling the core over HTTP, (b) Redis primary→replica replication;
//   2. core: durable commands/s and ack latency, beside a raw better-sqlite3 batched append of the
//      same payloads (the ceiling);
//   3. read node: GET req/s and p99, beside a bare hono route serving the same objects from a Map;
//   4. a fresh replica's catch-up time for N accounts across the farthest link;
//   5. Yjs state size vs plain JSON size as updates accumulate (growth must stay bounded).
// Read ratios, not absolute numbers: the machines are noisy. Report: bench/results/bench-<time>.{md,html,svg}.
//
//   npm run bench -- --rate 500 --duration 20 --accounts 1000
//   npm run bench -- --quick          (small sizes: a smoke run in well under a minute)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { SingleBar } from 'cli-progress';
import { signToken } from '../src/auth/tokens.js';
import { loadConfig, parseConfig, pathLatencyMs, type Config, type RegionConfig } from '../src/config/schema.js';
import { startCluster, type Cluster } from '../src/cli/cluster.js';
import { mulberry32 } from '../sim/prng.js';
import type { LinkSpec } from '../sim/index.js';
import type { CommittedBatch } from '../src/engine/sequencer.js';
import { CoreProcesses, freePort } from '../sim/process-cluster.js';
import { LagTracker } from './lib/lag.js';
import { fmt, histogram, ratio, recordMs, summarize, type Summary } from './lib/stats.js';
import { RedisUnavailableError, startPollingReplica, startRedisReplication } from './lib/baselines.js';
import { measureCoreWrites, measureRawSqliteAppend, measureReads, startBareHono } from './lib/throughput.js';
import { measureCatchUp } from './lib/catch-up.js';
import { measureYjsGrowth } from './lib/yjs-growth.js';

const USAGE = `usage: npm run bench -- [options]
  --config PATH            cluster config (default ./regions.config.json, else embedded defaults)
  --rate N                 write commands per second (default 400)
  --duration S             seconds of mixed load for the lag measurement (default 20)
  --accounts N             accounts the load spreads over (default 1000)
  --markets N              markets used (default: all configured)
  --read-rate N            GETs per second per region during the load (default 100)
  --poll-interval-ms N     polling-replica baseline interval (default 25)
  --throughput-seconds S   each throughput phase (default 5)
  --catchup-accounts N     accounts for the fresh-replica catch-up (default 100000)
  --growth-updates N       updates for the Yjs growth measurement (default 1000000)
  --skip-redis             don't run the Redis baseline
  --seed N                 load PRNG seed (default random, printed)
  --quick                  small everything (smoke run)
`;

const { values } = parseArgs({
  options: {
    config: { type: 'string' },
    rate: { type: 'string', default: '400' },
    duration: { type: 'string', default: '20' },
    accounts: { type: 'string', default: '1000' },
    markets: { type: 'string' },
    'read-rate': { type: 'string', default: '100' },
    'poll-interval-ms': { type: 'string', default: '25' },
    'throughput-seconds': { type: 'string', default: '5' },
    'catchup-accounts': { type: 'string', default: '100000' },
    'growth-updates': { type: 'string', default: '1000000' },
    'skip-redis': { type: 'boolean', default: false },
    seed: { type: 'string' },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const num = (name: keyof typeof values, quick: number): number => {
  if (values.quick) return quick;
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`--${name} must be a non-negative number\n${USAGE}`);
    process.exit(2);
  }
  return n;
};
const opts = {
  rate: num('rate', 200),
  durationS: num('duration', 5),
  accounts: Math.max(2, num('accounts', 200)),
  readRate: num('read-rate', 50),
  pollIntervalMs: num('poll-interval-ms', 25),
  throughputS: num('throughput-seconds', 2),
  catchupAccounts: num('catchup-accounts', 10_000),
  growthUpdates: num('growth-updates', 50_000),
  seed: values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31),
};

const dir = mkdtempSync(join(tmpdir(), 'sm-bench-'));
const cleanups: Array<() => Promise<unknown> | unknown> = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve().then(c).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

const log = (line: string) => process.stderr.write(`${line}\n`);

/** The one-way path from the core to a region, as one link (latencies and jitters add up). */
function pathLink(config: Config, region: RegionConfig): LinkSpec {
  let jitterMs = 0;
  let lossPct = 0;
  let r: RegionConfig | undefined = region;
  while (r) {
    const link = config.links.find((l) => l.from === r!.upstream && l.to === r!.name)!;
    jitterMs += link.jitterMs;
    lossPct = 100 - ((100 - lossPct) * (100 - link.lossPct)) / 100;
    const up: string = r.upstream;
    r = up === 'core' ? undefined : config.regions.find((x) => x.name === up);
  }
  return { latencyMs: pathLatencyMs(config, region), jitterMs, lossPct };
}

interface LagRow {
  region: string;
  floorMs: number;
  ours: Summary;
  poll: Summary;
  redis: Summary | null;
  reads: Summary;
}

/** Writes (deposits included) and reads of every account: an operator token for the cluster's JWT secret. */
const operatorToken = (config: Config): Promise<string> => signToken(config.auth.jwtSecret, { sub: 'bench', role: 'operator' });

async function post(url: string, body: unknown, token: string): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

async function lagPhase(config: Config, cluster: Cluster): Promise<{ rows: LagRow[]; failovers: number; sent: number; rejectedHttp: number; saturated: number; redisNote: string | null; wallS: number }> {
  const primary = cluster.primary()!;
  const core = primary.core!;
  const rng = mulberry32(opts.seed);
  const markets = config.domain.markets.map((m) => m.symbol).slice(0, values.markets ? Math.max(1, Number(values.markets)) : undefined);
  const accounts = Array.from({ length: opts.accounts }, (_, i) => `bench-${i}`);
  const token = await operatorToken(config);

  // Seed every account with collateral before measuring (batched, through the API).
  for (let i = 0; i < accounts.length; i += 200) {
    const commands = accounts.slice(i, i + 200).map((a) => ({ clientId: `seed-${a}`, type: 'deposit', account: a, amount: 1_000_000_000 }));
    const r = await post(`${primary.url}/v1/commands`, { commands }, token);
    if (r.status !== 200) throw new Error(`seeding failed: ${r.status} ${JSON.stringify(r.json)}`);
  }
  for (const r of cluster.regions.values()) await r.node.waitFor({ kind: 'all' }, core.seq, 30_000);

  const lag = new LagTracker(core.seq);
  const regions = [...cluster.regions.values()];
  for (const r of regions) {
    lag.addObserver(`ours:${r.config.name}`);
    lag.addObserver(`poll:${r.config.name}`);
  }
  const onCommit = (batch: CommittedBatch) => lag.committed(batch.entries[0]!.seq, batch.lastSeq, performance.now());
  core.on('committed', onCommit);
  const onAdvanced = regions.map((r) => {
    const name = `ours:${r.config.name}`;
    const f = () => lag.seen(name, r.node.seqFor({ kind: 'all' }), performance.now());
    r.node.on('advanced', f);
    return () => r.node.off('advanced', f);
  });
  // Baselines through the same path links.
  const pollers = await Promise.all(
    regions.map((r) =>
      startPollingReplica({
        name: r.config.name,
        coreUrl: primary.url,
        link: pathLink(config, r.config),
        intervalMs: opts.pollIntervalMs,
        onSeen: (s) => lag.seen(`poll:${r.config.name}`, s.seq, s.atMs),
      }),
    ),
  );
  cleanups.push(() => Promise.all(pollers.map((p) => p.stop())));
  let redisNote: string | null = null;
  let onCommitRedis: ((batch: CommittedBatch) => void) | null = null;
  let redis: Awaited<ReturnType<typeof startRedisReplication>> | null = null;
  if (!values['skip-redis']) {
    try {
      for (const r of regions) lag.addObserver(`redis:${r.config.name}`);
      redis = await startRedisReplication({
        replicas: regions.map((r) => ({ name: r.config.name, link: pathLink(config, r.config), onSeen: (s) => lag.seen(`redis:${r.config.name}`, s.seq, s.atMs) })),
      });
      cleanups.push(() => redis?.stop());
      redisNote = `Redis ${redis.version}`;
      const rc = redis;
      // Redis carries the same payload at the same moment: the touched accounts' views.
      onCommitRedis = (batch) => {
        const payload: Record<string, string> = {};
        for (const id of batch.effects.accounts) payload[`acct:${id}`] = JSON.stringify(core.machine.account(id));
        rc.publish(batch.lastSeq, payload).catch(() => {});
      };
      core.on('committed', onCommitRedis);
    } catch (err) {
      if (!(err instanceof RedisUnavailableError)) throw err;
      redisNote = `skipped: ${err.message}`;
    }
  } else redisNote = 'skipped (--skip-redis)';

  // Open-loop writes: every 10 ms, send what the rate owes; never more than maxInFlight at once.
  const readHists = new Map(regions.map((r) => [r.config.name, histogram()]));
  let sent = 0;
  let rejectedHttp = 0;
  let saturated = 0;
  let inFlight = 0;
  const maxInFlight = 4096;
  let owed = 0;
  let readOwed = 0;
  let readsSent = 0;
  const started = performance.now();
  const endAt = started + opts.durationS * 1000;
  let nextId = 0;
  const command = () => {
    const account = accounts[Math.floor(rng() * accounts.length)]!;
    const id = `b${opts.seed}-${nextId++}`;
    if (rng() < 0.25) return { clientId: id, type: 'deposit', account, amount: 1 + Math.floor(rng() * 1000) };
    const side = rng() < 0.5 ? 'buy' : 'sell';
    const market = markets[Math.floor(rng() * markets.length)]!;
    const price = 10_000 + Math.floor((rng() - 0.5) * 40);
    return { clientId: id, type: 'place_order', account, market, side, price, qty: 1 + Math.floor(rng() * 5), tif: rng() < 0.5 ? 'IOC' : 'GTC' };
  };
  const bar = new SingleBar({ format: 'load [{bar}] {percentage}% | {value}/{total} s | sent {sent} | committed {seq} | in flight {inflight}', hideCursor: true, stream: process.stderr });
  bar.start(opts.durationS, 0, { sent: 0, seq: core.seq, inflight: 0 });
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const now = performance.now();
      if (now >= endAt) {
        clearInterval(tick);
        resolve();
        return;
      }
      // Owed from elapsed time, not per tick: a late timer must not lower the offered rate.
      owed = Math.floor(((now - started) / 1000) * opts.rate) - sent - saturated;
      while (owed >= 1) {
        owed -= 1;
        if (inFlight >= maxInFlight) {
          saturated += 1;
          continue;
        }
        inFlight += 1;
        sent += 1;
        post(`${primary.url}/v1/commands`, command(), token)
          .then((r) => {
            if (r.status >= 500 || r.status === 429) rejectedHttp += 1;
          })
          .catch(() => (rejectedHttp += 1))
          .finally(() => (inFlight -= 1));
      }
      readOwed = Math.floor(((now - started) / 1000) * opts.readRate) - readsSent;
      while (readOwed >= 1) {
        readOwed -= 1;
        readsSent += 1;
        for (const r of regions) {
          const t0 = performance.now();
          fetch(`${r.url}/v1/accounts/${accounts[Math.floor(rng() * accounts.length)]}`, { headers: { authorization: `Bearer ${token}` } })
            .then((res) => res.arrayBuffer())
            .then(() => recordMs(readHists.get(r.config.name)!, performance.now() - t0))
            .catch(() => {});
        }
      }
      bar.update(Math.min(opts.durationS, Math.floor((now - started) / 1000)), { sent, seq: core.seq, inflight: inFlight });
    }, 10);
  });
  bar.update(opts.durationS, { sent, seq: core.seq, inflight: inFlight });
  bar.stop();
  const wallS = (performance.now() - started) / 1000;
  // Let everything in flight land, then let every observer catch up to the last commit (bounded).
  const deadline = performance.now() + 30_000;
  while (inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const finalSeq = core.seq;
  for (const r of regions) await r.node.waitFor({ kind: 'all' }, finalSeq, 30_000);
  const observersDone = () => regions.every((r) => lag.visibleOf(`poll:${r.config.name}`) >= finalSeq && (!redis || lag.visibleOf(`redis:${r.config.name}`) >= finalSeq));
  while (!observersDone() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  core.off('committed', onCommit);
  for (const off of onAdvanced) off();
  if (onCommitRedis) core.off('committed', onCommitRedis);
  await Promise.all(pollers.map((p) => p.stop()));
  await redis?.stop();

  const rows = regions.map((r) => ({
    region: r.config.name,
    floorMs: pathLatencyMs(config, r.config),
    ours: summarize(lag.histogramOf(`ours:${r.config.name}`)),
    poll: summarize(lag.histogramOf(`poll:${r.config.name}`)),
    redis: redis ? summarize(lag.histogramOf(`redis:${r.config.name}`)) : null,
    reads: summarize(readHists.get(r.config.name)!),
  }));
  // A failover during the load would show as lag spikes and refused writes: say so in the report.
  const failovers = (cluster.primary()?.core?.epoch ?? core.epoch) - core.epoch;
  return { rows, sent, rejectedHttp, saturated, redisNote, wallS, failovers };
}

/** Runs the configured core nodes as real processes on free ports for the duration of `fn`. */
async function withCoreProcesses<T>(config: Config, fn: (primaryUrl: string) => Promise<T>): Promise<T> {
  const ports = await Promise.all(config.core.nodes.map(() => freePort()));
  const raw = {
    ...config,
    core: { ...config.core, nodes: config.core.nodes.map((n, i) => ({ ...n, port: ports[i]!, dataDir: join(dir, `proc-${n.name}`) })) },
  };
  const configPath = join(dir, 'proc-config.json');
  writeFileSync(configPath, JSON.stringify(raw));
  const procs = new CoreProcesses({ configPath, urls: Object.fromEntries(raw.core.nodes.map((n) => [n.name, `http://127.0.0.1:${n.port}`])) });
  cleanups.push(() => procs.stopAll());
  try {
    await Promise.all(procs.names.map((n) => procs.start(n)));
    const twoNodes = procs.names.length > 1;
    const primary = await procs.waitFor((s) => s.role === 'primary' && (!twoNodes || s.replication?.standby != null), 20_000, 'a primary (with its standby)');
    return await fn(procs.url(primary.node));
  } finally {
    await procs.stopAll();
  }
}

function svgChart(rows: LagRow[]): string {
  // Grouped bars per region: p50 and p99 for ours / poll / redis, with the floor as a line.
  const series: Array<[string, string, (r: LagRow) => Summary | null]> = [
    ['statemirror', '#2b6cb0', (r) => r.ours],
    ['HTTP poll', '#dd6b20', (r) => r.poll],
    ['Redis', '#c53030', (r) => r.redis],
  ];
  const max = Math.max(1, ...rows.flatMap((r) => series.map(([, , f]) => f(r)?.p99Ms ?? 0).filter(Number.isFinite)));
  const W = 760;
  const H = 320;
  const left = 60;
  const bottom = 40;
  const groupW = (W - left - 20) / rows.length;
  const barW = groupW / (series.length * 2 + 1);
  const y = (v: number) => H - bottom - (v / max) * (H - bottom - 20);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 30}" font-family="sans-serif" font-size="11">`);
  parts.push(`<text x="${left}" y="14" font-size="13">commit→visible lag per region (ms): p50 solid, p99 light; dashed = physical floor</text>`);
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    parts.push(`<line x1="${left}" x2="${W - 10}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v, 0)}</text>`);
  }
  rows.forEach((r, gi) => {
    const gx = left + gi * groupW;
    series.forEach(([, color, f], si) => {
      const s = f(r);
      if (!s || !Number.isFinite(s.p50Ms)) return;
      const x = gx + barW * (1 + si * 2);
      parts.push(`<rect x="${x}" y="${y(s.p99Ms)}" width="${barW * 0.9}" height="${H - bottom - y(s.p99Ms)}" fill="${color}" opacity="0.35"/>`);
      parts.push(`<rect x="${x + barW}" y="${y(s.p50Ms)}" width="${barW * 0.9}" height="${H - bottom - y(s.p50Ms)}" fill="${color}"/>`);
    });
    parts.push(`<line x1="${gx + barW * 0.5}" x2="${gx + groupW - barW * 0.5}" y1="${y(r.floorMs)}" y2="${y(r.floorMs)}" stroke="#000" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${gx + groupW / 2}" y="${H - bottom + 16}" text-anchor="middle">${r.region} (floor ${r.floorMs} ms)</text>`);
  });
  series.forEach(([name, color], i) => parts.push(`<rect x="${left + i * 130}" y="${H + 8}" width="12" height="12" fill="${color}"/><text x="${left + i * 130 + 16}" y="${H + 18}">${name}</text>`));
  parts.push('</svg>');
  return parts.join('\n');
}

function markdownToHtml(md: string, svg: string): string {
  // Minimal: headings, tables and paragraphs are all the report uses.
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out: string[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('|')) {
      const rows: string[] = [];
      while (i < lines.length && lines[i]!.startsWith('|')) rows.push(lines[i++]!);
      i -= 1;
      const cells = (l: string) => l.slice(1, -1).split('|').map((c) => esc(c.trim()));
      out.push('<table>');
      out.push(`<tr>${cells(rows[0]!).map((c) => `<th>${c}</th>`).join('')}</tr>`);
      for (const r of rows.slice(2)) out.push(`<tr>${cells(r).map((c) => `<td>${c}</td>`).join('')}</tr>`);
      out.push('</table>');
    } else if (line.startsWith('#')) {
      const level = line.match(/^#+/)![0].length;
      out.push(`<h${level}>${esc(line.slice(level).trim())}</h${level}>`);
      if (line.startsWith('## 1.')) out.push(svg);
    } else if (line.trim()) out.push(`<p>${esc(line)}</p>`);
  }
  return `<!doctype html><meta charset="utf-8"><title>statemirror bench</title><style>body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}</style>\n${out.join('\n')}`;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const base = loadConfig(values.config);
  // Same topology and links; ephemeral ports and a temp data dir so a bench never touches ./data.
  const config = parseConfig({
    ...base,
    core: { ...base.core, nodes: base.core.nodes.map((n) => ({ ...n, port: 0, dataDir: join(dir, n.name) })) },
    regions: base.regions.map((r) => ({ ...r, port: 0, dataDir: join(dir, r.name) })),
  });
  log(`statemirror bench: seed ${opts.seed}, ${opts.rate} cmds/s for ${opts.durationS} s over ${opts.accounts} accounts; node ${process.version}, ${availableParallelism()} cpus`);
  const cluster = await startCluster(config, { ephemeralPorts: true, dataRoot: dir, discoveryIntervalMs: 250 });
  cleanups.push(() => cluster.close());
  const primary = cluster.primary();
  if (!primary?.core) throw new Error('no primary core');

  log('phase 1/5: lag under load, with baselines');
  const lagResult = await lagPhase(config, cluster);

  log('phase 2/5: core write throughput vs raw SQLite (primary + standby as their own processes)');
  const token = await operatorToken(config);
  // The core pair runs out of this process here, so the load generator doesn't share its event
  // loop and the standby's fsync doesn't block the primary's: what a deployment would see.
  const writes = await withCoreProcesses(config, (primaryUrl) =>
    measureCoreWrites({ coreUrl: primaryUrl, durationMs: opts.throughputS * 1000, connections: 64, accounts: opts.accounts, token }),
  );
  const raw = measureRawSqliteAppend({ payloads: writes.payloads, batchSize: Math.max(1, Math.round(writes.avgBatch ?? 64)), dir });

  log('phase 3/5: read throughput vs bare hono');
  const region = [...cluster.regions.values()][0]!;
  const ids = Array.from({ length: Math.min(opts.accounts, 500) }, (_, i) => `bench-${i}`);
  // Whichever node is primary now (the lag phase's load may have moved it): the same objects.
  const current = cluster.primary()?.core;
  if (!current) throw new Error('no primary core for the read phase');
  const objects = new Map(ids.map((id) => [id, current.machine.account(id)]));
  const paths = ids.map((id) => `/v1/accounts/${id}`);
  const reads = await measureReads({ baseUrl: region.url, paths, durationMs: opts.throughputS * 1000, connections: 32, token });
  const bare = await startBareHono(objects);
  cleanups.push(() => bare.close());
  const bareReads = await measureReads({ baseUrl: bare.url, paths, durationMs: opts.throughputS * 1000, connections: 32, token });
  await bare.close();
  await cluster.close();

  log(`phase 4/5: fresh replica catch-up for ${opts.catchupAccounts} accounts`);
  const farthest = config.regions.reduce((a, b) => (pathLatencyMs(config, b) > pathLatencyMs(config, a) ? b : a));
  const catchUp = await measureCatchUp({ accounts: opts.catchupAccounts, link: pathLink(config, farthest), dataDir: join(dir, 'catchup') });

  log(`phase 5/5: Yjs state growth over ${opts.growthUpdates} updates`);
  const growthBar = new SingleBar({ format: 'yjs growth [{bar}] {percentage}% | {value}/{total} updates', stream: process.stderr });
  growthBar.start(opts.growthUpdates, 0);
  const growth = await measureYjsGrowth({ updates: opts.growthUpdates, accounts: Math.min(opts.accounts, 10_000), checkpoints: 5, onProgress: (d) => growthBar.update(d) });
  growthBar.stop();

  // ---- report ----
  const startedAt = new Date();
  const rowsMd = lagResult.rows.map(
    (r) =>
      `| ${r.region} | ${r.floorMs} | ${fmt(r.ours.p50Ms)} / ${fmt(r.ours.p99Ms)} / ${fmt(r.ours.p999Ms)} | ${fmt(r.poll.p50Ms)} / ${fmt(r.poll.p99Ms)} / ${fmt(r.poll.p999Ms)} | ${r.redis ? `${fmt(r.redis.p50Ms)} / ${fmt(r.redis.p99Ms)} / ${fmt(r.redis.p999Ms)}` : '–'} | ${ratio(r.ours.p50Ms, r.floorMs)} | ${r.redis ? ratio(r.ours.p50Ms, r.redis.p50Ms) : '–'} | ${r.ours.n} |`,
  );
  const md = [
    `# statemirror benchmark — ${startedAt.toISOString()}`,
    '',
    `node ${process.version}, ${availableParallelism()} cpus; seed ${opts.seed}; load ${opts.rate} cmds/s for ${opts.durationS} s over ${opts.accounts} accounts (${lagResult.sent} sent, ${lagResult.rejectedHttp} refused/failed, ${lagResult.saturated} skipped at the in-flight cap); reads ${opts.readRate}/s per region; replication ${config.replication.mode}; failovers during the load: ${lagResult.failovers}.`,
    '',
    '## 1. Commit→visible lag per region (ms: p50 / p99 / p999)',
    '',
    'Lag = time a region can serve a seq − time the core committed it (one process, one clock). Floor = configured one-way path latency from the core. Baselines cross the same simulated links in the same run.',
    '',
    `| region | floor | statemirror | HTTP poll every ${opts.pollIntervalMs} ms | Redis replica | ours p50 / floor | ours p50 / Redis p50 | seqs |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rowsMd,
    '',
    `Redis baseline: ${lagResult.redisNote}. Every node, proxy and load generator runs in this one Node process (${availableParallelism()} cpus), so absolute lags include its event-loop queueing under load; the baselines share that handicap, which is why the ratios are the figures to read.`,
    '',
    '## 2. Core writes vs raw SQLite append',
    '',
    '| | commands/s | ack p50 ms | ack p99 ms |',
    '|---|---:|---:|---:|',
    `| statemirror core process (HTTP, validate, sequence, apply, fsync, ${config.core.nodes.length > 1 ? 'standby process ack, ' : ''}publish) | ${fmt(writes.commandsPerSec, 0)} | ${fmt(writes.ackP50Ms)} | ${fmt(writes.ackP99Ms)} |`,
    `| raw better-sqlite3 batched append, same payloads, batches of ${raw.batches ? Math.round(raw.commands / raw.batches) : '?'} (ceiling) | ${fmt(raw.commandsPerSec, 0)} | – | – |`,
    `| ratio ours / ceiling | ${ratio(writes.commandsPerSec, raw.commandsPerSec)} | | |`,
    '',
    '## 3. Read node GETs vs bare hono',
    '',
    '| | req/s | p50 ms | p99 ms |',
    '|---|---:|---:|---:|',
    `| read node ${region.config.name} GET /v1/accounts/:id | ${fmt(reads.reqPerSec, 0)} | ${fmt(reads.p50Ms)} | ${fmt(reads.p99Ms)} |`,
    `| bare hono, same objects from a Map | ${fmt(bareReads.reqPerSec, 0)} | ${fmt(bareReads.p50Ms)} | ${fmt(bareReads.p99Ms)} |`,
    `| ratio ours / bare | ${ratio(reads.reqPerSec, bareReads.reqPerSec)} | | ${ratio(reads.p99Ms, bareReads.p99Ms)} |`,
    '',
    'Reads during the lag phase (client on the same machine as the region, ms):',
    '',
    '| region | p50 | p99 | p999 | n |',
    '|---|---:|---:|---:|---:|',
    ...lagResult.rows.map((r) => `| ${r.region} | ${fmt(r.reads.p50Ms)} | ${fmt(r.reads.p99Ms)} | ${fmt(r.reads.p999Ms)} | ${r.reads.n} |`),
    '',
    `## 4. Fresh replica catch-up (${farthest.name} link, ${pathLatencyMs(config, farthest)} ms one-way)`,
    '',
    '| accounts | seed the core (ms) | catch-up (ms) | bytes over the link | Yjs state bytes | plain JSON bytes |',
    '|---:|---:|---:|---:|---:|---:|',
    `| ${catchUp.accounts} | ${fmt(catchUp.seedMs, 0)} | ${fmt(catchUp.catchUpMs, 0)} | ${catchUp.bytesTransferred} | ${catchUp.stateBytesV1} | ${catchUp.jsonBytes} |`,
    '',
    '## 5. Yjs state size vs plain JSON as updates accumulate',
    '',
    '| updates | Yjs V1 bytes | Yjs V2 bytes | plain JSON bytes | V1 / JSON | rebuilt V1 (new generation) |',
    '|---:|---:|---:|---:|---:|---:|',
    ...growth.map((g) => `| ${g.updates} | ${g.v1Bytes} | ${g.v2Bytes} | ${g.jsonBytes} | ${ratio(g.v1Bytes, g.jsonBytes)} | ${g.rebuiltV1Bytes} |`),
    '',
    `Total bench time ${fmt((performance.now() - t0) / 1000, 0)} s.`,
  ].join('\n');
  const svg = svgChart(lagResult.rows);
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(outDir, `bench-${stamp}.md`), md + '\n');
  writeFileSync(join(outDir, `bench-${stamp}.svg`), svg + '\n');
  writeFileSync(join(outDir, `bench-${stamp}.html`), markdownToHtml(md, svg) + '\n');
  process.stdout.write(md + '\n');
  log(`report: bench/results/bench-${stamp}.{md,html,svg}`);
}

main()
  .then(cleanup, async (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    await cleanup();
    process.exit(1);
  })
  .then(() => process.exit(0));

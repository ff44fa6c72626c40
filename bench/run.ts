// The latency benchmark (`npm run bench`): the entry point and the orchestration of its phases.
// Arguments: args.ts; phase 1 (load + lag): load.ts; phases 2-5: lib/; report rendering: report.ts.
// Starts the cluster from regions.config.json (primary +
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
import { SingleBar } from 'cli-progress';
import { loadConfig, parseConfig, pathLatencyMs, type Config } from '../src/config/schema.js';
import { startCluster } from '../src/cli/cluster.js';
import { CoreProcesses, freePort } from '../sim/process-cluster.js';
import { parseBenchArgs } from './args.js';
import { lagPhase, operatorToken, pathLink, type Cleanups } from './load.js';
import { markdownToHtml, renderMarkdown, svgChart } from './report.js';
import { measureCoreWrites, measureRawSqliteAppend, measureReads, startBareHono } from './lib/throughput.js';
import { measureCatchUp } from './lib/catch-up.js';
import { measureYjsGrowth } from './lib/yjs-growth.js';

const { opts } = parseBenchArgs();

const dir = mkdtempSync(join(tmpdir(), 'sm-bench-'));
const cleanups: Cleanups = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve().then(c).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

const log = (line: string) => process.stderr.write(`${line}\n`);

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
    // A leader whose followers all caught up: every write from here on waits for a majority.
    const primary = await procs.waitFor((s) => s.role === 'primary' && s.raft.peers.every((p) => p.lag === 0), 20_000, 'a leader with its followers caught up');
    return await fn(procs.url(primary.node));
  } finally {
    await procs.stopAll();
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const base = loadConfig(opts.config);
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
  const lagResult = await lagPhase(config, cluster, opts, cleanups);

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
  const md = renderMarkdown({
    startedAt, totalS: (performance.now() - t0) / 1000, config, opts, lag: lagResult, writes, raw,
    readRegion: region.config, reads, bareReads, farthest, catchUp, growth,
  });
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

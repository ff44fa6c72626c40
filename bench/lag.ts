// `npm run bench:lag -- [--rate 5000] [--seconds 15] [--accounts 1000] [--config regions.config.json]`:
// commit→visible lag per region with every node its own process: the configured core nodes (3 by
// default, majority commit), one read node process per region behind link proxies that simulate
// the configured links (in this process, as on a network), and this process as the load generator
// and the observers. Per region, an observer holds the region's meta room over a raw WebSocket
// (y-websocket sync protocol, straight to the node, no link) and records, for every update, its
// arrival time minus the commit batch's timestamp the leader stamped (one machine, one clock; the
// stamp is whole milliseconds). The floor is measured in the same run: a 1-byte ping through a
// link proxy with the same link settings to an echo server, half the round trip, summed along the
// region's path. Reports lag p50/p99/p99.9 against the floor and the goal (p99 ≤ floor + 5 ms),
// the write acks' latency, CPU µs per committed command per process, and an HTML page with the lag
// percentile curves per region and p99 lag over time (uPlot). Output: bench/results/lag-<time>.*
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import * as syncProtocol from 'y-protocols/sync';
import { linkFor, loadConfig, parseConfig, type Config, type RegionConfig } from '../src/config/schema.js';
import { upstreamOrder } from '../src/cli/cluster.js';
import { signToken } from '../src/auth/tokens.js';
import { CoreProcesses, freePort } from '../sim/process-cluster.js';
import { LinkProxy } from '../sim/link-proxy.js';
import { BenchProcs } from './lib/procs.js';
import { fmt, histogram, recordMs, summarize, type Histogram } from './lib/stats.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '15' },
    accounts: { type: 'string', default: '1000' },
    config: { type: 'string' },
    /** Commands per HTTP request (requests go out every 10 ms). */
    'max-in-flight': { type: 'string', default: '64' },
    /** Profile the read node processes (written to bench/results/prof-lag on exit). */
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const ACCOUNTS = Number(values.accounts);
const MAX_IN_FLIGHT = Number(values['max-in-flight']);
const TICK_MS = 10;
const BUCKET_MS = 250;

const dir = mkdtempSync(join(tmpdir(), 'sm-lag-'));
const procs = new BenchProcs();
const proxies: LinkProxy[] = [];
const log = (line: string) => process.stderr.write(`${line}\n`);

const base = loadConfig(values.config);
const ports = await Promise.all(base.core.nodes.map(() => freePort()));
const raw = {
  ...base,
  core: { ...base.core, nodes: base.core.nodes.map((n, i) => ({ ...n, port: ports[i]!, dataDir: join(dir, n.name) })) },
  regions: base.regions.map((r) => ({ ...r, port: 0, dataDir: join(dir, r.name) })),
};
const configPath = join(dir, 'config.json');
writeFileSync(configPath, JSON.stringify(raw));
const config: Config = parseConfig(raw);
const coreUrls = Object.fromEntries(config.core.nodes.map((n) => [n.name, `http://127.0.0.1:${n.port}`]));
const cores = new CoreProcesses({ configPath, urls: coreUrls });
const operator = await signToken(config.auth.jwtSecret, { sub: 'bench', role: 'operator' });

async function cleanup(): Promise<void> {
  await procs.stopAll().catch(() => {});
  await cores.stopAll().catch(() => {});
  await Promise.all(proxies.map((p) => p.stop().catch(() => {})));
  rmSync(dir, { recursive: true, force: true });
}

/** Half the median round trip of 1-byte pings through a proxy with `link`'s settings. */
async function measureFloorMs(link: { latencyMs: number; jitterMs?: number; lossPct?: number }): Promise<number> {
  const echo = createServer((s) => s.on('data', (d) => s.write(d)));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const proxy = new LinkProxy({ name: 'floor', targetHost: '127.0.0.1', targetPort: (echo.address() as AddressInfo).port, link: { latencyMs: link.latencyMs, jitterMs: link.jitterMs ?? 0, lossPct: 0 } });
  await proxy.start();
  const sock = connect(proxy.port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((r) => sock.once('connect', r));
  const rtts: number[] = [];
  for (let i = 0; i < 40; i++) {
    const t0 = performance.now();
    sock.write('x');
    await new Promise((r) => sock.once('data', r));
    rtts.push(performance.now() - t0);
  }
  sock.destroy();
  await proxy.stop();
  echo.close();
  rtts.sort((a, b) => a - b);
  return rtts[Math.floor(rtts.length / 2)]! / 2;
}

interface Observer {
  region: string;
  url: string;
  floorMs: number;
  hist: Histogram;
  /** p99 per BUCKET_MS over the measured window. */
  buckets: Histogram[];
  updates: number;
  generations: number;
}

/** Holds `region`'s meta room, re-joining on a generation change; records lag per update. */
function observe(o: Observer, measuring: () => number | null): () => void {
  let stopped = false;
  let ws: WebSocket | null = null;
  const join = async () => {
    if (stopped) return;
    const info = (await (await fetch(`${o.url}/v1/sync/info`)).json()) as { generation: string };
    const doc = new Y.Doc();
    ws = new WebSocket(`${o.url.replace('http', 'ws')}/sync/${info.generation}/meta?token=${operator}&page=bench-${o.region}`);
    ws.binaryType = 'arraybuffer';
    let seen = 0;
    ws.on('open', () => {
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, 0);
      syncProtocol.writeSyncStep1(enc, doc);
      ws!.send(encoding.toUint8Array(enc));
    });
    ws.on('message', (data: ArrayBuffer) => {
      const at = Date.now();
      const dec = decoding.createDecoder(new Uint8Array(data));
      if (decoding.readVarUint(dec) !== 0) return;
      // Only live updates are measured: the step2 answering our step1 carries state committed
      // before we joined (its stamp says nothing about lag).
      if (syncProtocol.readSyncMessage(dec, encoding.createEncoder(), doc, null) !== syncProtocol.messageYjsUpdate) return;
      const meta = doc.getMap('meta');
      const seq = meta.get('seq') as number | undefined;
      const tsMs = meta.get('tsMs') as number | undefined;
      if (seq === undefined || tsMs === undefined || seq <= seen) return;
      seen = seq;
      const t = measuring();
      if (t === null) return;
      o.updates++;
      recordMs(o.hist, at - tsMs);
      const b = Math.floor(t / BUCKET_MS);
      while (o.buckets.length <= b) o.buckets.push(histogram());
      recordMs(o.buckets[b]!, at - tsMs);
    });
    ws.on('close', () => {
      if (stopped) return;
      o.generations++;
      setTimeout(() => void join().catch(() => setTimeout(join, 200)), 50);
    });
    ws.on('error', () => {});
  };
  void join();
  return () => {
    stopped = true;
    ws?.close();
  };
}

const cpuOf = async (url: string): Promise<number> => {
  const s = (await (await fetch(`${url}/v1/status`)).json()) as { process: { cpuUserUs: number; cpuSystemUs: number } };
  return s.process.cpuUserUs + s.process.cpuSystemUs;
};

async function main(): Promise<void> {
  log(`bench:lag: ${RATE} cmds/s for ${SECONDS} s over ${ACCOUNTS} accounts; ${config.core.nodes.length} core nodes, ${config.regions.length} regions; node ${process.version}`);
  await Promise.all(cores.names.map((n) => cores.start(n)));
  const leader = await cores.waitFor((s) => s.role === 'primary' && s.raft.peers.every((p) => p.lag === 0), 30_000, 'a leader with its followers caught up');
  const leaderUrl = cores.url(leader.node);
  const post = async (commands: unknown[]) => {
    const res = await fetch(`${leaderUrl}/v1/commands`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${operator}` }, body: JSON.stringify({ commands }) });
    const body = (await res.json()) as { results?: Array<{ seq: number }> };
    if (res.status !== 200) throw new Error(`write refused: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
    return body;
  };
  for (let i = 0; i < ACCOUNTS; i += 100) {
    await post(Array.from({ length: Math.min(100, ACCOUNTS - i) }, (_, k) => ({ clientId: `seed-${i + k}`, type: 'deposit', account: `acct-${i + k}`, amount: 1_000_000_000 })));
  }

  // Regions, upstream first: link proxies here, a read node process each.
  const regionUrl = new Map<string, string>();
  const floorOf = new Map<string, number>();
  for (const region of upstreamOrder(config)) {
    const link = linkFor(config, region);
    const targets = region.upstream === 'core' ? Object.values(coreUrls) : [regionUrl.get(region.upstream)!];
    const ups: string[] = [];
    for (const [i, target] of targets.entries()) {
      const u = new URL(target);
      const proxy = new LinkProxy({ name: `${region.upstream}->${region.name}#${i}`, targetHost: u.hostname, targetPort: Number(u.port), link: { latencyMs: link.latencyMs, jitterMs: link.jitterMs, lossPct: link.lossPct }, seed: 0x1a9 + i });
      await proxy.start();
      proxies.push(proxy);
      ups.push(`http://127.0.0.1:${proxy.port}`);
    }
    const prof = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', `bench/results/prof-lag/${region.name}`] : [];
    regionUrl.set(region.name, await procs.start([...prof, '--import', 'tsx', 'bench/proc/read-node.ts', configPath, ups.join(','), '-', region.name], /READY (\S+)/));
    const upFloor = region.upstream === 'core' ? 0 : floorOf.get(region.upstream)!;
    floorOf.set(region.name, upFloor + (await measureFloorMs(link)));
  }

  let t0: number | null = null;
  const measuring = () => (t0 === null ? null : performance.now() - t0);
  const observers: Observer[] = config.regions.map((r: RegionConfig) => ({ region: r.name, url: regionUrl.get(r.name)!, floorMs: floorOf.get(r.name)!, hist: histogram(), buckets: [], updates: 0, generations: 0 }));
  const stops = observers.map((o) => observe(o, measuring));

  // Open-loop load: every TICK_MS, one request of RATE × TICK_MS / 1000 commands (deposits and
  // orders that cross, so books, positions and marks keep changing), at most MAX_IN_FLIGHT
  // requests outstanding (beyond that a tick is skipped and counted: the writer is not the bench).
  const perTick = Math.max(1, Math.round((RATE * TICK_MS) / 1000));
  const acks = histogram();
  const cpuBefore = await Promise.all([...Object.values(coreUrls), ...regionUrl.values()].map(cpuOf));
  const seqBefore = ((await (await fetch(`${leaderUrl}/v1/status`)).json()) as { seq: number }).seq;
  let inFlight = 0;
  let skipped = 0;
  let errors = 0;
  const errorCodes: Record<string, number> = {};
  let n = 0;
  let sent = 0;
  t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (now >= end) return resolve();
      const due = Math.floor((now - t0!) / TICK_MS);
      while (sent <= due) {
        sent++;
        if (inFlight >= MAX_IN_FLIGHT) {
          skipped++;
          continue;
        }
        const commands = Array.from({ length: perTick }, () => {
          const k = n++;
          const account = `acct-${k % ACCOUNTS}`;
          if (k % 4 === 0) return { clientId: `l${k}`, type: 'deposit', account, amount: 1000 };
          return { clientId: `l${k}`, type: 'place_order', account, market: config.domain.markets[k % config.domain.markets.length]!.symbol, side: k % 2 ? 'buy' : 'sell', price: 1000 + ((k >> 1) % 5) - 2, qty: 1, tif: k % 3 ? 'GTC' : 'IOC' };
        });
        inFlight++;
        const s = performance.now();
        post(commands).then(
          () => recordMs(acks, performance.now() - s),
          (err: unknown) => {
            errors++;
            const code = /"code":"([a-z_]+)"/.exec(String(err))?.[1] ?? (err instanceof Error ? err.message.slice(0, 40) : 'error');
            errorCodes[code] = (errorCodes[code] ?? 0) + 1;
          },
        ).finally(() => inFlight--);
      }
      setTimeout(tick, Math.max(0, t0! + sent * TICK_MS - performance.now()));
    };
    tick();
  });
  const elapsedS = (performance.now() - t0) / 1000;
  // Let the last commits arrive everywhere (bounded), then stop measuring.
  const deadline = Date.now() + 10_000;
  while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const seqAfter = ((await (await fetch(`${leaderUrl}/v1/status`)).json()) as { seq: number }).seq;
  for (const o of observers) {
    while (Date.now() < deadline) {
      const s = (await (await fetch(`${o.url}/v1/status`)).json()) as { metaSeq: number };
      if (s.metaSeq >= seqAfter) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const cpuAfter = await Promise.all([...Object.values(coreUrls), ...regionUrl.values()].map(cpuOf));
  t0 = null;
  stops.forEach((s) => s());
  const committed = seqAfter - seqBefore;
  const names = [...Object.keys(coreUrls).map((n) => (n === leader.node ? `${n} (leader at start)` : n)), ...[...regionUrl.keys()].map((r) => `read node ${r}`)];

  // ---- report ----
  const rows = observers.map((o) => ({ o, s: summarize(o.hist) }));
  const ack = summarize(acks);
  const md = [
    `# Commit→visible lag per region, every node its own process`,
    '',
    `${new Date().toISOString()}, node ${process.version}; ${RATE} cmds/s offered for ${elapsedS.toFixed(1)} s (${perTick} per request every ${TICK_MS} ms), ${committed} committed (${fmt(committed / elapsedS, 0)}/s), ${skipped} ticks skipped at ${MAX_IN_FLIGHT} requests in flight, ${errors} request errors${errors ? ` (${Object.entries(errorCodes).map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}. ${config.core.nodes.length} core nodes (majority commit), ${ACCOUNTS} accounts.`,
    '',
    `Lag = arrival of a meta update at an observer on the region's node − the commit batch's stamp (whole ms, so ±1 ms). Floor = half the median round trip of a ping through a proxy with the same link settings, summed along the region's path (same run). Goal: p99 ≤ floor + 5 ms.`,
    '',
    '| region | floor (ms) | lag p50 | p99 | p99.9 | max | p99 − floor | goal met | updates seen | rejoins |',
    '|---|---:|---:|---:|---:|---:|---:|---|---:|---:|',
    ...rows.map(({ o, s }) => `| ${o.region} | ${fmt(o.floorMs, 2)} | ${fmt(s.p50Ms)} | ${fmt(s.p99Ms)} | ${fmt(s.p999Ms)} | ${fmt(s.maxMs)} | ${fmt(s.p99Ms - o.floorMs)} | ${s.p99Ms <= o.floorMs + 5 ? 'yes' : 'no'} | ${o.updates} | ${o.generations} |`),
    '',
    `Write acks (one request of ${perTick} commands, majority-durable): p50 ${fmt(ack.p50Ms)} ms, p99 ${fmt(ack.p99Ms)} ms, p99.9 ${fmt(ack.p999Ms)} ms.`,
    '',
    '| process | CPU µs per committed command |',
    '|---|---:|',
    ...names.map((name, i) => `| ${name} | ${fmt((cpuAfter[i]! - cpuBefore[i]!) / Math.max(1, committed))} |`),
  ].join('\n');
  const percentiles = [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99];
  const curves = { x: percentiles.map((p, i) => i), labels: percentiles.map(String), series: observers.map((o) => ({ label: o.region, data: percentiles.map((p) => (o.hist.totalCount ? o.hist.getValueAtPercentile(p) / 1000 : null)) })) };
  const maxBuckets = Math.max(0, ...observers.map((o) => o.buckets.length));
  const overTime = { x: Array.from({ length: maxBuckets }, (_, i) => (i * BUCKET_MS) / 1000), series: observers.map((o) => ({ label: `${o.region} p99`, data: Array.from({ length: maxBuckets }, (_, i) => (o.buckets[i]?.totalCount ? o.buckets[i]!.getValueAtPercentile(99) / 1000 : null)) })) };
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(outDir, `lag-${stamp}.md`), md + '\n');
  writeFileSync(join(outDir, `lag-${stamp}.html`), chartsPage(md, curves, overTime));
  process.stdout.write(md + '\n');
  log(`report: bench/results/lag-${stamp}.{md,html}`);
}

/** A self-contained HTML page: the tables and two uPlot charts (library inlined from node_modules). */
function chartsPage(
  md: string,
  curves: { x: number[]; labels: string[]; series: Array<{ label: string; data: Array<number | null> }> },
  overTime: { x: number[]; series: Array<{ label: string; data: Array<number | null> }> },
): string {
  const require = createRequire(import.meta.url);
  const js = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const data = JSON.stringify({ curves, overTime }).replace(/</g, '\\u003c');
  return `<!doctype html><meta charset="utf-8"><title>statemirror lag</title><style>${css} body{font:14px system-ui;margin:2em} pre{white-space:pre-wrap}</style>
<pre>${esc(md)}</pre><h3>Lag percentiles per region (ms)</h3><div id="curves"></div><h3>p99 lag over time per ${BUCKET_MS} ms (ms)</h3><div id="time"></div>
<script>${js}</script><script>
const D = ${data};
const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const series = (list) => [{}, ...list.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2 }))];
new uPlot({ width: 900, height: 320, series: series(D.curves.series), axes: [{ values: (u, ticks) => ticks.map((t) => D.curves.labels[t] !== undefined ? 'p' + D.curves.labels[t] : '') }, { label: 'ms' }], scales: { x: { time: false } } },
  [D.curves.x, ...D.curves.series.map((s) => s.data)], document.getElementById('curves'));
new uPlot({ width: 900, height: 320, series: series(D.overTime.series), axes: [{ label: 's' }, { label: 'ms' }], scales: { x: { time: false } } },
  [D.overTime.x, ...D.overTime.series.map((s) => s.data)], document.getElementById('time'));
</script>
`;
}

main()
  .then(cleanup, async (err: unknown) => {
    log(`bench:lag failed: ${err instanceof Error ? err.stack : String(err)}`);
    await cleanup();
    process.exit(1);
  })
  .then(() => process.exit(0));

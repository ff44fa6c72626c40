// `npm run bench:writes -- [--seconds 5] [--accounts 1000] [--only session]` (also `npm run bench -- --writes`):
// the write path with every process separate — the configured core nodes (3 by default, majority
// commit), the load generator (bench/proc/writer.ts) in its own process — for deposits and for the
// order mix, over HTTP (1 and 100 commands per request) and over order-entry sessions, each beside
// baselines measured in the same run: (a) the engine alone (bench/proc/engine.ts: sequencer, state
// machine, SQLite log, publisher; no network, no replication), (b) a raw SQLite append of the same
// command bytes (the durable-append ceiling), (c) a bare WebSocket echo of the same session frames
// (the transport ceiling). Also the CPU µs per committed command of every core process
// (process.cpuUsage via /v1/status) and the ack latency of sessions at a fixed 10k cmds/s.
// Report: bench/results/writes-<time>.md.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { EMBEDDED_DEFAULTS, parseConfig } from '../src/config/schema.js';
import { signToken } from '../src/auth/tokens.js';
import { CoreProcesses, freePort } from '../sim/process-cluster.js';
import { measureRawSqliteAppend } from './lib/throughput.js';
import { BenchProcs } from './lib/procs.js';
import { fmt } from './lib/stats.js';

const argv = process.argv.slice(2).filter((a) => a !== '--writes');
const { values } = parseArgs({
  args: argv,
  options: {
    seconds: { type: 'string', default: '5' },
    accounts: { type: 'string', default: '1000' },
    only: { type: 'string' },
    /** The fixed rate (cmds/s) and mix of the session latency row (issue 12's goal: p99 ≤ 5 ms at 10k/s). */
    'latency-rate': { type: 'string', default: '10000' },
    'latency-mix': { type: 'string', default: 'orders' },
  },
});
const SECONDS = Number(values.seconds);
const ACCOUNTS = Number(values.accounts);
const LATENCY_RATE = Number(values['latency-rate']);
const LATENCY_MIX = values['latency-mix'] === 'deposits' ? 'deposits' : 'orders';
const dir = mkdtempSync(join(tmpdir(), 'sm-writes-'));
const log = (line: string) => process.stderr.write(`${line}\n`);
const markets = EMBEDDED_DEFAULTS.domain.markets.map((m) => m.symbol);

interface WriterResult {
  acked: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  requests: number;
  errors: Record<string, number>;
}

function runNode(args: string[]): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
  return new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(out.trim().split('\n').at(-1)!) : reject(new Error(`${args[0]} exited ${code}: ${err}`)))));
}

const writer = async (o: Record<string, unknown>): Promise<WriterResult> => JSON.parse(await runNode(['bench/proc/writer.ts', JSON.stringify({ markets, accounts: ACCOUNTS, seconds: SECONDS, ...o })])) as WriterResult;

interface Row {
  mix: string;
  path: string;
  cmdsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: Record<string, number>;
  cpu: number[];
}

async function main(): Promise<void> {
  const ports = await Promise.all(EMBEDDED_DEFAULTS.core.nodes.map(() => freePort()));
  const raw = {
    ...EMBEDDED_DEFAULTS,
    core: { ...EMBEDDED_DEFAULTS.core, nodes: EMBEDDED_DEFAULTS.core.nodes.map((n, i) => ({ ...n, port: ports[i]!, dataDir: join(dir, n.name) })) },
  };
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(raw));
  const config = parseConfig(raw);
  const token = await signToken(config.auth.jwtSecret, { sub: 'bench', role: 'operator' });
  const urls = Object.fromEntries(config.core.nodes.map((n) => [n.name, `http://127.0.0.1:${n.port}`]));
  const cores = new CoreProcesses({ configPath, urls });
  const rows: Row[] = [];
  let latency: WriterResult | null = null;
  let nodeNames: string[] = [];
  try {
    await Promise.all(cores.names.map((n) => cores.start(n)));
    const leader = await cores.waitFor((s) => s.role === 'primary' && s.raft.peers.every((p) => p.lag === 0), 30_000, 'a leader with its followers caught up');
    const leaderUrl = cores.url(leader.node);
    nodeNames = cores.names.map((n) => (n === leader.node ? `${n} (leader)` : n));
    for (let i = 0; i < ACCOUNTS; i += 200) {
      const res = await fetch(`${leaderUrl}/v1/commands`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ commands: Array.from({ length: Math.min(200, ACCOUNTS - i) }, (_, k) => ({ clientId: `seed-${i + k}`, type: 'deposit', account: `acct-${i + k}`, amount: 1_000_000_000 })) }),
      });
      if (res.status !== 200) throw new Error(`seeding failed: ${res.status}`);
    }
    const statuses = async () => Promise.all(cores.names.map(async (n) => (await (await fetch(`${cores.url(n)}/v1/status`)).json()) as { seq: number; process: { cpuUserUs: number; cpuSystemUs: number } }));
    const paths = [
      { path: 'HTTP, 1 per request', o: { mode: 'http', perRequest: 1, connections: 64 } },
      { path: 'HTTP, 100 per request', o: { mode: 'http', perRequest: 100, connections: 16 } },
      { path: 'session, 256 per frame', o: { mode: 'session', perRequest: 256, connections: 4, window: 8 } },
    ].filter((p) => !values.only || p.o.mode === values.only);
    let tag = 0;
    for (const mix of ['deposits', 'orders'] as const) {
      for (const p of paths) {
        log(`${mix}: ${p.path}`);
        const before = await statuses();
        const r = await writer({ url: leaderUrl, token, mix, tag: `w${tag++}`, ...p.o });
        const after = await statuses();
        const committed = after[cores.names.indexOf(leader.node)]!.seq - before[cores.names.indexOf(leader.node)]!.seq;
        const cpu = after.map((a, i) => (a.process.cpuUserUs + a.process.cpuSystemUs - before[i]!.process.cpuUserUs - before[i]!.process.cpuSystemUs) / Math.max(1, committed));
        rows.push({ mix, path: p.path, cmdsPerSec: r.acked / r.seconds, p50Ms: r.p50Ms, p99Ms: r.p99Ms, errors: r.errors, cpu });
      }
    }
    log(`sessions at a fixed ${LATENCY_RATE} cmds/s (frames of 10)`);
    latency = await writer({ url: leaderUrl, token, mix: LATENCY_MIX, tag: 'lat', mode: 'session', perRequest: 10, connections: 4, window: 64, rate: LATENCY_RATE });
  } finally {
    await cores.stopAll();
  }

  log('baselines: engine alone, raw SQLite append, bare WebSocket echo');
  const engine: Record<string, { committed: number; seconds: number; cpuUsPerCommand: number }> = {};
  for (const mix of ['deposits', 'orders'] as const) {
    engine[mix] = JSON.parse(await runNode(['bench/proc/engine.ts', JSON.stringify({ dir: join(dir, `engine-${mix}`), mix, accounts: ACCOUNTS, seconds: SECONDS, batch: 1024 })]));
  }
  const payloads = Array.from({ length: 200_000 }, (_, k) => JSON.stringify(k % 4 === 0 ? { clientId: `s-${k}`, type: 'deposit', account: `acct-${k % ACCOUNTS}`, amount: 1000 } : { clientId: `s-${k}`, type: 'place_order', account: `acct-${k % ACCOUNTS}`, market: markets[k % markets.length], side: k % 2 ? 'buy' : 'sell', price: 1000, qty: 1, tif: 'GTC', amount: 0 }));
  const sqlite = measureRawSqliteAppend({ payloads, batchSize: 1024, dir });
  const procs = new BenchProcs();
  const echoUrl = await procs.start(['--import', 'tsx', 'bench/proc/echo.ts'], /READY (\S+)/);
  const echo = await writer({ url: echoUrl, token, mix: 'orders', tag: 'echo', mode: 'echo', perRequest: 256, connections: 4, window: 8 });
  await procs.stopAll();

  // ---- report ----
  const sqlitePerSec = sqlite.commandsPerSec;
  const echoPerSec = echo.acked / echo.seconds;
  const md = [
    `# Write path: acknowledged commands/s, every process separate`,
    '',
    `${new Date().toISOString()}, node ${process.version}; ${config.core.nodes.length} core nodes (an ack = durable on a majority), load generator in its own process, ${SECONDS} s per row, ${ACCOUNTS} accounts. Orders mix: one in four a deposit, the rest limit orders around one price (GTC and IOC: they rest and cross).`,
    '',
    '| mix | path | acked cmds/s | × engine alone | × raw SQLite | × WS echo | ack p50 / p99 ms (per request or frame) | errors | ' + nodeNames.map((n) => `CPU µs/cmd ${n}`).join(' | ') + ' |',
    '|---|---|---:|---:|---:|---:|---:|---|' + nodeNames.map(() => '---:').join('|') + '|',
    ...rows.map((r) => {
      const e = engine[r.mix]!;
      return `| ${r.mix} | ${r.path} | ${fmt(r.cmdsPerSec, 0)} | ${fmt(r.cmdsPerSec / (e.committed / e.seconds), 2)} | ${fmt(r.cmdsPerSec / sqlitePerSec, 2)} | ${fmt(r.cmdsPerSec / echoPerSec, 2)} | ${fmt(r.p50Ms, 2)} / ${fmt(r.p99Ms, 2)} | ${Object.entries(r.errors).map(([k, v]) => `${k}: ${v}`).join(', ') || '–'} | ${r.cpu.map((c) => fmt(c, 1)).join(' | ')} |`;
    }),
    '',
    '| baseline (same run) | commands/s | CPU µs per command |',
    '|---|---:|---:|',
    ...(['deposits', 'orders'] as const).map((m) => `| engine alone, ${m} (1024 per batch, 2 batches queued) | ${fmt(engine[m]!.committed / engine[m]!.seconds, 0)} | ${fmt(engine[m]!.cpuUsPerCommand, 1)} |`),
    `| raw SQLite append, same command bytes, 1024 per transaction, synchronous=FULL | ${fmt(sqlitePerSec, 0)} | – |`,
    `| bare WebSocket echo, same session frames (256 commands) | ${fmt(echoPerSec, 0)} | – |`,
    '',
    latency
      ? `Sessions at a fixed ${LATENCY_RATE} cmds/s (${LATENCY_MIX}, frames of 10, 4 sessions): ${fmt(latency.acked / latency.seconds, 0)} acked/s, ack p50 ${fmt(latency.p50Ms, 2)} ms, p99 ${fmt(latency.p99Ms, 2)} ms, p99.9 ${fmt(latency.p999Ms, 2)} ms; errors ${JSON.stringify(latency.errors)}.`
      : '',
    '',
    'Goals (issue 12): ≥ 100k deposits/s and ≥ 50k order-mix cmds/s over sessions; ≥ 0.6× the engine alone; ≤ 10 µs leader and ≤ 5 µs follower CPU per command; ack p99 ≤ 5 ms at 10k cmds/s.',
  ].join('\n');
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `writes-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
  writeFileSync(file, md + '\n');
  process.stdout.write(md + '\n');
  log(`report: ${file}`);
}

main()
  .then(
    () => rmSync(dir, { recursive: true, force: true }),
    (err: unknown) => {
      log(`bench:writes failed: ${err instanceof Error ? err.stack : String(err)}`);
      rmSync(dir, { recursive: true, force: true });
      process.exit(1);
    },
  )
  .then(() => process.exit(0));

// `npm run bench:reads -- [--seconds 5] [--rounds 3] [--accounts 500]`: account GETs on a read
// node beside a bare hono route serving the same objects from a Map (the baseline), each server its
// own process (the core too), the load generator (autocannon, 32 connections, the same token
// header on both) in this one; rounds alternate between the two in one run. Prints req/s per round,
// the ratio, and the median ratio (goal ≥ 0.9×).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EMBEDDED_DEFAULTS, parseConfig } from '../src/config/schema.js';
import { signToken } from '../src/auth/tokens.js';
import { freePort } from '../sim/process-cluster.js';
import { BenchProcs } from './lib/procs.js';
import { measureReads } from './lib/throughput.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, accounts: { type: 'string', default: '500' }, 'cpu-prof': { type: 'boolean', default: false }, 'same-headers': { type: 'boolean', default: false } } });
const SECONDS = Number(values.seconds);
const ACCOUNTS = Number(values.accounts);
const dir = mkdtempSync(join(tmpdir(), 'sm-reads-'));
const procs = new BenchProcs();
const raw = { ...EMBEDDED_DEFAULTS, core: { ...EMBEDDED_DEFAULTS.core, nodes: [{ name: 'core-a', host: '127.0.0.1', port: await freePort(), dataDir: join(dir, 'core-a') }] } };
const configPath = join(dir, 'config.json');
writeFileSync(configPath, JSON.stringify(raw));
const config = parseConfig(raw);
const coreUrl = `http://127.0.0.1:${raw.core.nodes[0]!.port}`;
const token = await signToken(config.auth.jwtSecret, { sub: 'bench', role: 'operator' });
try {
  await procs.start(['--import', 'tsx', 'src/cli/main.ts', 'core', '--node', 'core-a', '--config', configPath], /(core node listening)/);
  const ids = Array.from({ length: ACCOUNTS }, (_, i) => `r${i}`);
  for (let i = 0; i < ids.length; i += 100) {
    const res = await fetch(`${coreUrl}/v1/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ commands: ids.slice(i, i + 100).map((account) => ({ clientId: `d-${account}`, type: 'deposit', account, amount: 1000 })) }),
    });
    if (res.status !== 200) throw new Error(`seed failed: ${res.status}`);
  }
  const seq = ((await (await fetch(`${coreUrl}/v1/status`)).json()) as { seq: number }).seq;
  const readUrl = await procs.start([...(values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', 'bench/results/prof-reads'] : []), '--import', 'tsx', 'bench/proc/read-node.ts', configPath, coreUrl, '-', 'local'], /READY (\S+)/);
  await fetch(`${readUrl}/v1/status?minSeq=${seq}&waitMs=5000`);
  const bareUrl = await procs.start(['--import', 'tsx', 'bench/proc/bare-hono.ts', readUrl, token, ids.join(','), values['same-headers'] ? 'same-headers' : '-'], /READY (\S+)/);
  const paths = ids.map((id) => `/v1/accounts/${id}`);
  const ratios: number[] = [];
  for (let r = 0; r < Number(values.rounds); r++) {
    const node = await measureReads({ baseUrl: readUrl, paths, durationMs: SECONDS * 1000, connections: 32, token });
    const base = await measureReads({ baseUrl: bareUrl, paths, durationMs: SECONDS * 1000, connections: 32, token });
    ratios.push(node.reqPerSec / base.reqPerSec);
    process.stdout.write(`round ${r + 1}: read node ${node.reqPerSec.toFixed(0)} req/s p99 ${node.p99Ms.toFixed(2)} ms (non-2xx ${node.non2xx}), bare hono ${base.reqPerSec.toFixed(0)} req/s p99 ${base.p99Ms.toFixed(2)} ms: ${(node.reqPerSec / base.reqPerSec).toFixed(2)}×\n`);
  }
  ratios.sort((a, b) => a - b);
  process.stdout.write(`median ratio ${ratios[Math.floor(ratios.length / 2)]!.toFixed(2)}× (goal ≥ 0.9×)\n`);
} finally {
  await procs.stopAll();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);

// `npm run bench:replica -- [--commands N] [--accounts A] [--batch B] [--persist] [--cpu-prof]`:
// what a read node costs per committed command. One core process (single node) and one read node
// process (directly on the core, no proxy), a load generator here; CPU from each process's own
// process.cpuUsage() (reported in /v1/status) before and after N commands, once the read node has
// caught up. Reports µs of CPU per command on the read node and on the core, and their ratio (the
// core's cost is the baseline measured in the same run). --cpu-prof writes the read node's profile.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EMBEDDED_DEFAULTS, parseConfig } from '../src/config/schema.js';
import { signToken } from '../src/auth/tokens.js';
import { freePort } from '../sim/process-cluster.js';
import { BenchProcs } from './lib/procs.js';

const { values } = parseArgs({
  options: {
    commands: { type: 'string', default: '20000' },
    accounts: { type: 'string', default: '1000' },
    batch: { type: 'string', default: '100' },
    persist: { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const N = Number(values.commands);
const ACCOUNTS = Number(values.accounts);
const BATCH = Number(values.batch);
const dir = mkdtempSync(join(tmpdir(), 'sm-replica-cost-'));
const procs = new BenchProcs();

const raw = structuredClone(EMBEDDED_DEFAULTS) as any;
raw.core.nodes = [{ name: 'core-a', port: await freePort(), dataDir: join(dir, 'core-a') }];
const configPath = join(dir, 'config.json');
writeFileSync(configPath, JSON.stringify(raw));
const config = parseConfig(raw);
const coreUrl = `http://127.0.0.1:${raw.core.nodes[0].port}`;
const auth = `Bearer ${await signToken(config.auth.jwtSecret, { sub: 'bench', role: 'operator' })}`;

const status = async (url: string) => (await (await fetch(`${url}/v1/status`, { headers: { authorization: auth } })).json()) as any;
const cpuUs = (s: any) => s.process.cpuUserUs + s.process.cpuSystemUs;

await procs.start(['--import', 'tsx', 'src/cli/main.ts', 'core', '--node', 'core-a', '--config', configPath, '--log-level', 'info'], /core node listening/);
const deposits = Array.from({ length: ACCOUNTS }, (_, i) => ({ clientId: `d${i}`, type: 'deposit', account: `a${i}`, amount: 1_000_000_000 }));
for (let i = 0; i < deposits.length; i += BATCH) {
  await fetch(`${coreUrl}/v1/commands`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: auth }, body: JSON.stringify({ commands: deposits.slice(i, i + BATCH) }) });
}
const replicaArgs = [...(values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', 'bench/results'] : []), '--import', 'tsx', 'bench/proc/read-node.ts', configPath, coreUrl, values.persist ? join(dir, 'replica') : '-'];
const replicaUrl = await procs.start(replicaArgs, /READY (\S+)/);
const wait = async (seq: number) => {
  for (let i = 0; i < 6000; i++) {
    const s = await status(replicaUrl);
    if (s.seq >= seq) return s;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`read node did not reach seq ${seq}`);
};
const coreBefore = await status(coreUrl);
const replicaBefore = await wait(coreBefore.seq);

// The load: deposits and crossing orders around the mark, BATCH commands per request, 4 in flight.
let sent = 0;
let k = 0;
const command = () => {
  k += 1;
  const a = `a${k % ACCOUNTS}`;
  if (k % 3 === 0) return { clientId: `c${k}`, type: 'deposit', account: a, amount: 1 };
  return { clientId: `c${k}`, type: 'place_order', account: a, market: 'BTC-USD', side: k % 2 ? 'buy' : 'sell', price: 30_000 + (k % 7) - 3, qty: 1 + (k % 5), tif: k % 4 ? 'GTC' : 'IOC' };
};
const t0 = performance.now();
await Promise.all(
  Array.from({ length: 4 }, async () => {
    while (sent < N) {
      const n = Math.min(BATCH, N - sent);
      sent += n;
      const body = JSON.stringify({ commands: Array.from({ length: n }, command) });
      const res = await fetch(`${coreUrl}/v1/commands`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: auth }, body });
      await res.arrayBuffer();
    }
  }),
);
const coreAfter = await status(coreUrl);
const replicaAfter = await wait(coreAfter.seq);
const elapsedS = (performance.now() - t0) / 1000;
const committed = coreAfter.seq - coreBefore.seq;
const replicaUs = (cpuUs(replicaAfter) - cpuUs(replicaBefore)) / committed;
const coreUs = (cpuUs(coreAfter) - cpuUs(coreBefore)) / committed;
const report = [
  `# Read node cost per committed command — ${new Date().toISOString()}`,
  '',
  `${committed} commands committed (batches of ${BATCH}, ${ACCOUNTS} accounts, deposits and orders) in ${elapsedS.toFixed(1)} s; read node ${values.persist ? 'persisting to SQLite' : 'in memory'}, directly on the core (no proxy).`,
  '',
  '| process | CPU µs per committed command |',
  '|---|---:|',
  `| read node | ${replicaUs.toFixed(1)} |`,
  `| core (single node: HTTP, sequence, apply, fsync, publish) — baseline | ${coreUs.toFixed(1)} |`,
  `| ratio read node / core | ${(replicaUs / coreUs).toFixed(2)}× |`,
  '',
  `Goal (issue 11): ≤ 20 µs per committed command per read node. Reproduce: \`npm run bench:replica -- --commands ${N} --accounts ${ACCOUNTS} --batch ${BATCH}${values.persist ? ' --persist' : ''}\``,
  '',
].join('\n');
process.stdout.write(report);
await procs.stopAll();
rmSync(dir, { recursive: true, force: true });
process.exit(0);

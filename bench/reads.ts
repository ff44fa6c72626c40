// `npm run bench:reads -- [--seconds 5] [--rounds 3] [--accounts 500]`: account GETs on a read
// node beside a bare hono route serving the same objects from a Map (the baseline), alternating
// rounds in one run (autocannon, 32 connections, same token header on both). The core and the read
// node run in this process behind a 0 ms link; autocannon runs in its own worker. Prints req/s and
// the ratio per round, and the median ratio (goal ≥ 0.9×).
import { parseArgs } from 'node:util';
import { EMBEDDED_DEFAULTS, parseConfig } from '../src/config/schema.js';
import { startCluster } from '../src/cli/cluster.js';
import { signToken } from '../src/auth/tokens.js';
import { measureReads, startBareHono } from './lib/throughput.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, accounts: { type: 'string', default: '500' } } });
const SECONDS = Number(values.seconds);
const ACCOUNTS = Number(values.accounts);
const config = parseConfig({
  ...EMBEDDED_DEFAULTS,
  core: { ...EMBEDDED_DEFAULTS.core, nodes: [{ name: 'core-a', host: '127.0.0.1', port: 0, dataDir: 'unused' }] },
  regions: [{ name: 'local', port: 0, upstream: 'core' }],
  links: [{ from: 'core', to: 'local', latencyMs: 0 }],
});
const cluster = await startCluster(config, { ephemeralPorts: true, dataRoot: null });
const core = cluster.primary()!;
const token = await signToken(config.auth.jwtSecret, { sub: 'bench', role: 'operator' });
const ids = Array.from({ length: ACCOUNTS }, (_, i) => `r${i}`);
for (let i = 0; i < ids.length; i += 100) {
  const res = await fetch(`${core.url}/v1/commands`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ commands: ids.slice(i, i + 100).map((account) => ({ clientId: `d-${account}`, type: 'deposit', account, amount: 1000 })) }),
  });
  if (res.status !== 200) throw new Error(`seed failed: ${res.status}`);
}
const region = [...cluster.regions.values()][0]!;
const seq = core.core!.seq;
await fetch(`${region.url}/v1/status?minSeq=${seq}&waitMs=5000`);
const objects = new Map(ids.map((id) => [id, (core.core!.machine.account(id))]));
const bare = await startBareHono(objects);
const paths = ids.map((id) => `/v1/accounts/${id}`);
const ratios: number[] = [];
for (let r = 0; r < Number(values.rounds); r++) {
  const node = await measureReads({ baseUrl: region.url, paths, durationMs: SECONDS * 1000, connections: 32, token });
  const base = await measureReads({ baseUrl: bare.url, paths, durationMs: SECONDS * 1000, connections: 32, token });
  ratios.push(node.reqPerSec / base.reqPerSec);
  process.stdout.write(`round ${r + 1}: read node ${node.reqPerSec.toFixed(0)} req/s (non-2xx ${node.non2xx}), bare hono ${base.reqPerSec.toFixed(0)} req/s: ${(node.reqPerSec / base.reqPerSec).toFixed(2)}×\n`);
}
ratios.sort((a, b) => a - b);
process.stdout.write(`median ratio ${ratios[Math.floor(ratios.length / 2)]!.toFixed(2)}× (goal ≥ 0.9×)\n`);
await bare.close();
await cluster.close();
process.exit(0);

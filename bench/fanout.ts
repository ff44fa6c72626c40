// `npm run bench:fanout -- [--pages 100,1000] [--rate 200] [--seconds 8]`: live fan-out of one read
// node. A core process (single node) and a read node process (directly on the core); here, N
// browser-like pages, each the three y-websocket rooms the dashboard opens (meta, its account's
// view, one market), over raw WebSockets speaking the y-websocket sync protocol. Meta updates are
// applied to a Y.Doc per page (the page lag is the arrival time minus the commit time the core
// stamped: one machine, one clock); view and market frames are counted, not decoded. A writer here
// commits `rate` commands/s to the core (deposits and orders over as many accounts as pages).
// Reports per N: page lag p50/p99 against the floor (a direct ping of the read node in the same
// run), frames and bytes per page per commit, and the read node's CPU µs per commit and RSS per
// page (from its own /v1/status).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import * as syncProtocol from 'y-protocols/sync';
import { EMBEDDED_DEFAULTS, parseConfig } from '../src/config/schema.js';
import { signToken } from '../src/auth/tokens.js';
import { freePort } from '../sim/process-cluster.js';
import { histogram, recordMs } from './lib/stats.js';
import { BenchProcs } from './lib/procs.js';

const { values } = parseArgs({
  options: {
    pages: { type: 'string', default: '100,1000' },
    rate: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '8' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const PAGES = values.pages.split(',').map(Number);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const dir = mkdtempSync(join(tmpdir(), 'sm-fanout-'));
const procs = new BenchProcs();


const raw = structuredClone(EMBEDDED_DEFAULTS) as any;
raw.core.nodes = [{ name: 'core-a', port: await freePort(), dataDir: join(dir, 'core-a') }];
raw.readNode = { ...(raw.readNode ?? {}), maxConnections: 3 * Math.max(...PAGES) + 100, maxPages: Math.max(...PAGES) + 10 };
const configPath = join(dir, 'config.json');
writeFileSync(configPath, JSON.stringify(raw));
const config = parseConfig(raw);
const coreUrl = `http://127.0.0.1:${raw.core.nodes[0].port}`;
const operator = `Bearer ${await signToken(config.auth.jwtSecret, { sub: 'bench', role: 'operator' })}`;

const post = (body: unknown) =>
  fetch(`${coreUrl}/v1/commands`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: operator }, body: JSON.stringify(body) }).then((r) => r.arrayBuffer());
const statusOf = async (url: string) => (await (await fetch(`${url}/v1/status`)).json()) as any;

await procs.start(['--import', 'tsx', 'src/cli/main.ts', 'core', '--node', 'core-a', '--config', configPath], /(core node listening)/);
const ACCOUNTS = Math.max(...PAGES);
for (let i = 0; i < ACCOUNTS; i += 200) {
  await post({ commands: Array.from({ length: Math.min(200, ACCOUNTS - i) }, (_, k) => ({ clientId: `d${i + k}`, type: 'deposit', account: `p${i + k}`, amount: 1_000_000_000 })) });
}
const readUrl = await procs.start([...(values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', 'bench/results'] : []), '--import', 'tsx', 'bench/proc/read-node.ts', configPath, coreUrl, '-'], /READY (\S+)/);
let generation = (await statusOf(readUrl)).generation as string;
const wsBase = readUrl.replace('http', 'ws');

interface Page {
  /** The page id its three sockets present (the read node counts them as one page). */
  id: string;
  sockets: WebSocket[];
  meta: Y.Doc;
  frames: number;
  bytes: number;
}
const lag = { h: histogram(), on: false };

function room(page: Page, name: string, token: string): Promise<WebSocket> {
  const ws = new WebSocket(`${wsBase}/sync/${generation}/${name}?token=${token}&page=${page.id}`);
  ws.binaryType = 'arraybuffer';
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, 0);
      syncProtocol.writeSyncStep1(enc, name === 'meta' ? page.meta : new Y.Doc());
      ws.send(encoding.toUint8Array(enc));
      resolve(ws);
    });
    ws.once('error', reject);
    ws.on('message', (data: ArrayBuffer) => {
      page.frames += 1;
      page.bytes += data.byteLength;
      if (name !== 'meta') return;
      const dec = decoding.createDecoder(new Uint8Array(data));
      if (decoding.readVarUint(dec) !== 0) return; // awareness heartbeats
      syncProtocol.readSyncMessage(dec, encoding.createEncoder(), page.meta, 'server');
      const ts = page.meta.getMap('meta').get('tsMs');
      if (lag.on && typeof ts === 'number') recordMs(lag.h, Date.now() - ts);
    });
  });
}

async function openPages(n: number): Promise<Page[]> {
  const pages: Page[] = [];
  for (let i = 0; i < n; i++) {
    const token = await signToken(config.auth.jwtSecret, { sub: `p${i}`, role: 'account' });
    const page: Page = { id: `p${i}`, sockets: [], meta: new Y.Doc(), frames: 0, bytes: 0 };
    page.sockets = await Promise.all([room(page, 'meta', token), room(page, `view-p${i}`, token), room(page, 'mkt-BTC-USD', token)]);
    pages.push(page);
  }
  return pages;
}

/** The floor: a request answered by the read node itself (loopback, no cluster work). */
async function floorMs(): Promise<number> {
  const h = histogram();
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    await fetch(`${readUrl}/v1/markets/BTC-USD/book`).then((r) => r.arrayBuffer());
    recordMs(h, performance.now() - t0);
  }
  return h.getValueAtPercentile(50) / 1000 / 2;
}

const rows: string[] = [];
let k = 0;
for (const n of PAGES) {
  // The core compacts into new generations under load (docs/read-path.md): pages join the current one.
  generation = (await statusOf(readUrl)).generation as string;
  const pages = await openPages(n);
  const before = await statusOf(readUrl);
  const floor = await floorMs();
  lag.h.reset();
  lag.on = true;
  for (const p of pages) {
    p.frames = 0;
    p.bytes = 0;
  }
  // Open-loop writer: RATE commands/s in 10 ms ticks, orders and deposits for the pages' accounts.
  const end = performance.now() + SECONDS * 1000;
  let sent = 0;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - (end - SECONDS * 1000)) / 1000) * RATE);
    const batch = [];
    for (; sent < due; sent++) {
      k += 1;
      const a = `p${k % n}`;
      batch.push(
        k % 3 === 0
          ? { clientId: `f${k}`, type: 'deposit', account: a, amount: 1 }
          : { clientId: `f${k}`, type: 'place_order', account: a, market: 'BTC-USD', side: k % 2 ? 'buy' : 'sell', price: 30_000 + (k % 5) - 2, qty: 1, tif: 'IOC' },
      );
    }
    if (batch.length > 0) void post({ commands: batch });
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 500));
  lag.on = false;
  const after = await statusOf(readUrl);
  const commits = Math.max(1, after.seq - before.seq);
  const cpu = (after.process.cpuUserUs + after.process.cpuSystemUs - before.process.cpuUserUs - before.process.cpuSystemUs) / commits;
  const frames = pages.reduce((a, p) => a + p.frames, 0) / n / commits;
  const bytes = pages.reduce((a, p) => a + p.bytes, 0) / n / commits;
  const p50 = lag.h.getValueAtPercentile(50) / 1000;
  const p99 = lag.h.getValueAtPercentile(99) / 1000;
  rows.push(
    `| ${n} | ${RATE} | ${floor.toFixed(2)} | ${p50.toFixed(1)} / ${p99.toFixed(1)} | ${(p99 - floor).toFixed(1)} | ${frames.toFixed(2)} | ${bytes.toFixed(0)} | ${cpu.toFixed(0)} | ${(after.process.rssBytes / 1024 / 1024).toFixed(0)} MiB (${((after.process.rssBytes - before.process.rssBytes) / 1024 / n).toFixed(1)} KiB/page added) |`,
  );
  for (const p of pages) for (const s of p.sockets) s.terminate();
  await new Promise((r) => setTimeout(r, 300));
}
process.stdout.write(
  [
    `# Live fan-out of one read node — ${new Date().toISOString()}`,
    '',
    `Pages = 3 y-websocket rooms each (meta, own view, BTC-USD market); core commits ${RATE} cmds/s for ${SECONDS} s; read node and core are separate processes; page lag = arrival of a meta update − its commit time (one clock).`,
    '',
    '| pages | cmds/s | floor ms (½ loopback GET) | page lag p50 / p99 ms | p99 − floor | frames / page / commit | bytes / page / commit | read node CPU µs / commit | read node RSS |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...rows,
    '',
    `Reproduce: \`npm run bench:fanout -- --pages ${values.pages} --rate ${RATE} --seconds ${SECONDS}\``,
    '',
  ].join('\n'),
);
await procs.stopAll();
rmSync(dir, { recursive: true, force: true });
process.exit(0);

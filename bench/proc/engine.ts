// The engine-alone baseline of bench:writes as its own process: a single-node Core (sequencer →
// state machine with its state hash → SQLite log with fsync → publisher) fed directly, no network,
// no replication: `node --import tsx bench/proc/engine.ts '<json {dir, mix, accounts, markets, seconds, batch}>'`.
// The same command stream as the writer. Prints JSON: committed commands, seconds, CPU µs per command.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EMBEDDED_DEFAULTS, parseConfig } from '../../src/config/schema.js';
import { Core } from '../../src/publish/core.js';
import type { Command } from '../../src/domain/types.js';

const o = JSON.parse(process.argv[2]!) as { dir: string; mix: 'deposits' | 'orders'; accounts: number; seconds: number; batch: number };
const config = parseConfig({ ...EMBEDDED_DEFAULTS, core: { ...EMBEDDED_DEFAULTS.core, nodes: [{ name: 'engine', port: 0, dataDir: o.dir }] } });
const markets = config.domain.markets.map((m) => m.symbol);
const core = new Core({
  domain: config.domain,
  layout: { accountShards: config.publish.accountShards, markets },
  bookDepth: config.publish.bookDepth,
  tradesKept: config.publish.tradesKept,
  maxBatch: o.batch,
  maxQueue: o.batch * 4,
  dataDir: join(o.dir, 'engine'),
});
core.on('generation', (_fresh, old) => core.retire(old));
let n = 0;
const next = (): { clientId: string; command: Command } => {
  const k = n++;
  const account = `acct-${k % o.accounts}`;
  const command: Command =
    o.mix === 'deposits' || k % 4 === 0
      ? { type: 'deposit', account, amount: 1000 } as Command
      : ({ type: 'place_order', account, market: markets[k % markets.length]!, side: k % 2 ? 'buy' : 'sell', price: 1000 + ((k >> 1) % 5) - 2, qty: 1, tif: k % 3 ? 'GTC' : 'IOC' } as Command);
  return { clientId: `e-${k}`, command };
};
// Seed the accounts as the cluster run does (not timed).
for (let i = 0; i < o.accounts; i += o.batch) {
  await core.sequencer.submit(Array.from({ length: Math.min(o.batch, o.accounts - i) }, (_, j) => ({ clientId: `seed-${i + j}`, command: { type: 'deposit', account: `acct-${i + j}`, amount: 1_000_000_000 } as Command })));
}
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let committed = 0;
// Two batches in flight, so the sequencer always has the next one queued while one commits.
const loop = async () => {
  while (performance.now() - t0 < o.seconds * 1000) {
    const outs = await core.sequencer.submit(Array.from({ length: o.batch }, next));
    committed += outs.length;
  }
};
await Promise.all([loop(), loop()]);
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(JSON.stringify({ committed, seconds, cpuUsPerCommand: (cpu.user + cpu.system) / committed }) + '\n');
core.close();
process.exit(0);

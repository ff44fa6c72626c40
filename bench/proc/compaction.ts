// bench:snapshots helper, its own process: the event-loop stall of a Yjs compaction on a leader
// with `accounts` accounts while writes keep coming. Baseline in the same run: the old synchronous
// rebuild (a fresh Publisher's publishAll), which is the stall a compaction used to be. Then a
// single-node Core compacts (thresholds reached by overwrites) while a writer submits batches; the
// event loop's worst delay and the acks' p99 during the build are reported.
// `node --import tsx bench/proc/compaction.ts '<json {dir, accounts}>'` → JSON.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { EMBEDDED_DEFAULTS, parseConfig } from '../../src/config/schema.js';
import { Core } from '../../src/publish/core.js';
import { Publisher } from '../../src/publish/publisher.js';
import type { Command } from '../../src/domain/types.js';

const o = JSON.parse(process.argv[2]!) as { dir: string; accounts: number };
const config = parseConfig({
  ...EMBEDDED_DEFAULTS,
  domain: { ...EMBEDDED_DEFAULTS.domain, limits: { ...EMBEDDED_DEFAULTS.domain.limits, maxAccounts: Math.max(o.accounts + 10, EMBEDDED_DEFAULTS.domain.limits.maxAccounts) } },
});
const layout = { accountShards: config.publish.accountShards, markets: config.domain.markets.map((m) => m.symbol) };
const core = new Core({
  domain: config.domain,
  layout,
  bookDepth: config.publish.bookDepth,
  tradesKept: config.publish.tradesKept,
  maxBatch: 1024,
  maxQueue: 100_000,
  dataDir: join(o.dir, 'compaction'),
  // Reached after about a fifth of the accounts were overwritten once.
  compaction: { tombstonesPerAccount: 0.2, tombstonesMin: Math.floor(o.accounts * 0.2) },
});
core.on('generation', (_fresh, old) => core.retire(old));
let k = 0;
const submit = (n: number, accounts: number) =>
  core.sequencer.submit(Array.from({ length: n }, () => ({ clientId: `c-${k}`, command: { type: 'deposit', account: `acct-${k++ % accounts}`, amount: 1000 } as Command })));
for (let i = 0; i < o.accounts; i += 1024) await submit(Math.min(1024, o.accounts - i), o.accounts);

// Baseline: the old compaction, one synchronous rebuild of every doc from the machine.
const t0 = performance.now();
const old = new Publisher({ machine: core.machine, layout, bookDepth: config.publish.bookDepth, tradesKept: config.publish.tradesKept });
old.publishAll(core.stateHash, Date.now(), core.epoch);
const syncRebuildMs = performance.now() - t0;
old.destroy();

// Writes until one compaction has been built and swapped in, measuring during the build.
const h = monitorEventLoopDelay({ resolution: 1 });
const acks: number[] = [];
let building = false;
let done = false;
core.once('generation', () => (done = true));
const writer = (async () => {
  while (!done) {
    const t = performance.now();
    await submit(256, o.accounts);
    if (building) acks.push(performance.now() - t);
    // The build starts on the commit that crosses the threshold.
    if (!building && (core as unknown as { building: unknown }).building !== null) {
      building = true;
      h.enable();
    }
  }
})();
await writer;
h.disable();
acks.sort((a, b) => a - b);
console.log(JSON.stringify({
  accounts: o.accounts,
  syncRebuildMs,
  buildMs: core.compactions.lastMs,
  buildTurns: core.compactions.lastTurns,
  longestTurnMs: core.compactions.longestTurnMs,
  finishMs: core.compactions.finishMs,
  maxEventLoopDelayMs: h.max / 1e6,
  ackP99Ms: acks[Math.floor(acks.length * 0.99)] ?? null,
  acksDuringBuild: acks.length,
}));
core.close();
process.exit(0);

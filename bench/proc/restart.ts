// bench:snapshots helper, its own process: restarts a core node (single-node cluster) on a data
// dir written by snapgen.ts and reports how long it takes: the constructor (snapshot load when
// snapshots are on), the state restored (applied through the log's end) and published (the first
// Yjs generation written and served too). `node --import tsx bench/proc/restart.ts '<json {dir, accounts, snapshots}>'` → JSON.
import { performance } from 'node:perf_hooks';
import { EMBEDDED_DEFAULTS, parseConfig } from '../../src/config/schema.js';
import { CoreNode } from '../../src/node/core-node.js';

const o = JSON.parse(process.argv[2]!) as { dir: string; accounts: number; snapshots: boolean; lastSeq: number };
const config = parseConfig({
  ...EMBEDDED_DEFAULTS,
  core: { ...EMBEDDED_DEFAULTS.core, nodes: [{ name: 'core-a', port: 0, dataDir: o.dir }], idempotencyWindow: 1000, snapshots: { everyEntries: o.snapshots ? 1_000_000_000 : 0, keep: 2, budgetMs: 8 }, retention: 'drop' },
  domain: { ...EMBEDDED_DEFAULTS.domain, limits: { ...EMBEDDED_DEFAULTS.domain.limits, maxAccounts: Math.max(o.accounts + 10, EMBEDDED_DEFAULTS.domain.limits.maxAccounts) } },
});
const t0 = performance.now();
const node = new CoreNode(config, { nodeName: 'core-a', port: 0 });
const constructedMs = performance.now() - t0;
let restoredMs = 0;
node.on('role', () => undefined);
const restored = new Promise<void>((resolve) => {
  const poll = () => {
    if (node.replicated.applied >= o.lastSeq) {
      restoredMs = performance.now() - t0;
      resolve();
    } else setImmediate(poll);
  };
  poll();
});
await node.start();
await restored;
await node.waitForRole('primary', 600_000);
// A large first generation is written over many turns after the node takes writes: wait for it too.
while (!node.core?.publishing) await new Promise((r) => setTimeout(r, 5));
const primaryMs = performance.now() - t0;
// A small first generation is written in the same turn as the last apply: take it out of "state".
const firstPublishMs = node.core?.firstPublishMs ?? 0;
console.log(JSON.stringify({ constructedMs, stateMs: Math.min(restoredMs, primaryMs - firstPublishMs), primaryMs, firstPublishMs, restoredFrom: node.snapshots?.status().restoredFrom?.seq ?? null }));
await node.close();
process.exit(0);

// `npm run sim -- --seeds N [--from S] [--seed S] [--duration MS] [--nodes N]`: a long simulation
// campaign over the replication protocol (sim/vopr/simulator.ts). Prints each failing seed with the
// command that reproduces it; exits 1 if any seed failed.
import { parseArgs } from 'node:util';
import { simulate } from './simulator.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1000' },
    from: { type: 'string', default: String(Date.now() % 1_000_000_000) },
    seed: { type: 'string' },
    duration: { type: 'string', default: '3000' },
    nodes: { type: 'string', default: '3' },
    verbose: { type: 'boolean', default: false },
    /** Snapshots (and log retention) every N entries; 0: off. */
    snapshots: { type: 'string', default: '0' },
  },
});
const single = values.seed !== undefined;
const from = Number(single ? values.seed : values.from);
const count = single ? 1 : Number(values.seeds);
const t0 = performance.now();
let failed = 0;
const totals = { events: 0, acked: 0, leaders: 0 };
for (let i = 0; i < count; i++) {
  const seed = from + i;
  const r = simulate({ seed, durationMs: Number(values.duration), nodes: Number(values.nodes), snapshotEvery: Number(values.snapshots) });
  totals.events += r.events;
  totals.acked += r.acked;
  totals.leaders += r.leaders;
  if (single || values.verbose) console.log(JSON.stringify(r));
  if (!r.ok) {
    failed += 1;
    console.log(`FAIL seed ${seed}: ${r.failure}\n  reproduce: npm run sim -- --seed ${seed} --duration ${values.duration} --nodes ${values.nodes} --snapshots ${values.snapshots}`);
  }
  if (!single && (i + 1) % 100 === 0) process.stderr.write(`\r${i + 1}/${count} seeds, ${failed} failed`);
}
const s = (performance.now() - t0) / 1000;
console.log(`\n${count} seeds from ${from}: ${count - failed} passed, ${failed} failed in ${s.toFixed(1)} s (${totals.events} events, ${totals.acked} acknowledged writes, ${totals.leaders} elected leaders)`);
process.exit(failed > 0 ? 1 : 0);

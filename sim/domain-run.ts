// `npm run sim:domain -- [--commands N] [--seed S] [--seeds K]`: the long run of the adversarial
// state-machine simulation (sim/domain-sim.ts), default 1,000,000 commands. Prints every failing
// seed with its reproduction; exits 1 on any failure.
import { parseArgs } from 'node:util';
import { simulateDomain } from './domain-sim.js';

const { values } = parseArgs({
  options: {
    commands: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000_000) },
    seeds: { type: 'string', default: '1' },
  },
});
const commands = Number(values.commands);
const first = Number(values.seed);
let failed = 0;
const t0 = performance.now();
for (let i = 0; i < Number(values.seeds); i++) {
  const seed = first + i;
  const r = simulateDomain(seed, commands);
  console.log(JSON.stringify(r));
  if (!r.ok) {
    failed += 1;
    console.log(`FAIL seed ${seed}: ${r.failure}\n  reproduce: npm run sim:domain -- --seed ${seed} --commands ${commands}`);
  }
}
console.log(`${values.seeds} run(s) of ${commands} commands in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);

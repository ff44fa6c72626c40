// `npm run bench:growth -- [--updates 10000000] [--accounts 10000] [--checkpoints 20]`: the Yjs
// state a reader syncs (on the wire) and stores (at rest) against the plain JSON of the same data,
// at evenly spaced checkpoints of a long seeded run through a real Core with the node's compaction
// policy. Sizes are deterministic (no timing), so one run is the figure. The ratio to beat is
// V1 / JSON ≤ 1.5 at every checkpoint (issue 11). Writes bench/results/growth-<time>.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measureYjsGrowth, type GrowthRow } from './lib/yjs-growth.js';

const { values } = parseArgs({
  options: {
    updates: { type: 'string', default: '10000000' },
    accounts: { type: 'string', default: '10000' },
    checkpoints: { type: 'string', default: '20' },
    seed: { type: 'string', default: String(0x6e0717) },
  },
});
const updates = Number(values.updates);
const accounts = Number(values.accounts);
const checkpoints = Number(values.checkpoints);
const t0 = performance.now();
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const line = (g: GrowthRow) =>
  `| ${g.updates} | ${g.generations ?? 0} | ${g.v1Bytes} | ${g.v2Bytes} | ${g.jsonBytes} | ${ratio(g.v1Bytes, g.jsonBytes)} | ${ratio(g.v2Bytes, g.jsonBytes)} | ${ratio(g.rebuiltV1Bytes, g.jsonBytes)} |`;
const header = [
  '| updates | compactions | Yjs V1 bytes | Yjs V2 bytes | plain JSON bytes | V1 / JSON | V2 / JSON | rebuilt V1 / JSON |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|',
];
process.stderr.write(`${header.join('\n')}\n`);
let last = 0;
const rows = await measureYjsGrowth({
  updates,
  accounts,
  checkpoints,
  seed: Number(values.seed),
  onProgress: (done) => {
    if (done - last >= updates / 100) {
      last = done;
      process.stderr.write(`  ${done} / ${updates} (${((performance.now() - t0) / 1000).toFixed(0)} s)\r`);
    }
  },
});
const worst = Math.max(...rows.map((g) => g.v1Bytes / g.jsonBytes));
const md = [
  `# Yjs state vs plain JSON: ${updates} updates over ${accounts} accounts`,
  '',
  `${new Date().toISOString()}, node ${process.version}, seed ${values.seed}, ${((performance.now() - t0) / 1000).toFixed(0)} s. `,
  `The V1 state is what a reader syncs from the served generation and what a read node stores (its rows are merged into one state update). Worst V1 / JSON over the checkpoints: **${worst.toFixed(2)}×** (goal ≤ 1.5×).`,
  '',
  ...header,
  ...rows.map(line),
].join('\n');
const outDir = join(process.cwd(), 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `growth-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
writeFileSync(file, md + '\n');
process.stdout.write(md + '\n');
process.stderr.write(`report: ${file}\n`);
process.exit(worst <= 1.5 ? 0 : 1);

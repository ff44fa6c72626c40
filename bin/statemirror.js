#!/usr/bin/env node
// Entry point: runs the built CLI (dist/src/cli/main.js, from `npm run build`, which `npm install`
// runs through `prepare`). Tests, the simulator and the benchmarks run the TypeScript source
// through tsx instead (`node --import tsx src/cli/main.ts`), so they never run a stale build.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write(`statemirror: ${fileURLToPath(main)} is missing: run \`npm run build\` in ${fileURLToPath(new URL('..', import.meta.url))}\n`);
  process.exit(1);
}
await import(main.href);

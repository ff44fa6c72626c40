#!/usr/bin/env node
// `npm run build`: compiles the TypeScript (tsconfig.build.json: src/ and the two sim/ files the
// CLI's `up` uses) to dist/ with declarations, then bundles each browser entry to
// dist/pages/<name>.js with esbuild — the files src/replica/dashboard/bundle.ts serves when the
// nodes run from dist/ (a production install has no esbuild).
//
//   node scripts/build.mjs            build
//   node scripts/build.mjs --if-stale build only when the inputs changed since the last build, and
//                                     skip with a one-line note when there is nothing to build
//                                     from (no src/ or no dev tools: a production install, whose
//                                     package carries the prebuilt dist/). `npm start` and npm's
//                                     `prepare` (npm install / npm ci) run this.
//
// Invariant: dist/.inputs-hash is written last and names the hash of every input (sources,
// tsconfigs, this script, the lockfile), so a build that failed half-way is never taken as fresh.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const HASH_FILE = join(DIST, '.inputs-hash');

/**
 * Browser entries: name → source. Served as /dashboard.js (read nodes) and /cluster.js (every node)
 * through browserBundle(name, …). An entry whose file does not exist (yet) is skipped with a note.
 */
const PAGES = {
  dashboard: 'src/replica/dashboard/client.ts',
  cluster: 'src/node/cluster-view/client.ts',
};
/** The same options as BUNDLE_OPTIONS in src/replica/dashboard/bundle.ts (the from-source path). */
const BUNDLE_OPTIONS = { bundle: true, format: 'esm', platform: 'browser', target: 'es2020', minify: true };

const mode = process.argv[2] ?? '';
if (!['', '--if-stale'].includes(mode)) {
  process.stderr.write('usage: node scripts/build.mjs [--if-stale]\n');
  process.exit(2);
}

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

function inputsHash() {
  const files = [
    ...listFiles(join(ROOT, 'src')),
    ...['sim/link-proxy.ts', 'sim/prng.ts', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs', 'package-lock.json'].map((f) => join(ROOT, f)),
  ]
    .filter((f) => existsSync(f))
    .sort();
  const h = createHash('sha256');
  for (const f of files) h.update(relative(ROOT, f)).update('\0').update(readFileSync(f)).update('\0');
  return h.digest('hex');
}

const require = createRequire(import.meta.url);
function resolvable(pkg) {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

const haveSources = existsSync(join(ROOT, 'src'));
if (mode === '--if-stale' && (!haveSources || !resolvable('typescript') || !resolvable('esbuild'))) {
  const built = existsSync(join(DIST, 'src', 'cli', 'main.js'));
  process.stderr.write(
    built ? 'statemirror: using the prebuilt dist/ (no sources or no dev tools here to rebuild it: a production install)\n' : 'statemirror: not built and no dev tools to build with: run `npm install` (with dev dependencies) then `npm run build`\n',
  );
  process.exit(0);
}

const hash = haveSources ? inputsHash() : null;
if (mode !== '' && hash !== null && existsSync(HASH_FILE) && readFileSync(HASH_FILE, 'utf8').trim() === hash) process.exit(0);

const started = Date.now();
rmSync(HASH_FILE, { force: true });
// tsc from this package's typescript (not whatever is on PATH). It emits even when it finds type
// errors: then `npm run build` fails, while --if-stale (npm install, npm start) warns and goes on
// without recording the hash, so the next run rebuilds; `npm test` reports the errors either way.
let typeErrors = false;
try {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
} catch (err) {
  if (!existsSync(join(DIST, 'src', 'cli', 'main.js'))) throw err;
  typeErrors = true;
  process.stderr.write('build: tsc reported errors (above); dist/ was emitted anyway\n');
}

const { build } = await import('esbuild');
mkdirSync(join(DIST, 'pages'), { recursive: true });
for (const [name, src] of Object.entries(PAGES)) {
  const entry = join(ROOT, src);
  if (!existsSync(entry)) {
    process.stderr.write(`build: skipping page ${name}: ${src} does not exist\n`);
    continue;
  }
  await build({ ...BUNDLE_OPTIONS, entryPoints: [entry], outfile: join(DIST, 'pages', `${name}.js`), logLevel: 'warning' });
}
if (typeErrors) {
  if (mode === '') process.exit(1);
} else writeFileSync(HASH_FILE, `${hash}\n`);
const size = (f) => `${(statSync(f).size / 1024).toFixed(0)} KiB`;
const pages = Object.keys(PAGES)
  .map((n) => join(DIST, 'pages', `${n}.js`))
  .filter((f) => existsSync(f));
process.stderr.write(`built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s (${pages.map((f) => `${relative(ROOT, f)} ${size(f)}`).join(', ')})\n`);

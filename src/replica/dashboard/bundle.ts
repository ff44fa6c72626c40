// The browser scripts the nodes serve (the regional dashboard, the cluster view), one per name.
// Running from source (tests, tsx: this file ends in .ts) it bundles the entry on demand with
// esbuild, loaded by a dynamic import because esbuild is a devDependency; running the build
// (dist/, a production install without esbuild) it reads the file `npm run build` wrote to
// dist/pages/<name>.js (scripts/build.mjs bundles the same entries with the same options).
// Invariant: each bundle is produced once per process and cached; a failure is not cached, so a
// later request retries.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const FROM_SOURCE = import.meta.url.endsWith('.ts');
/** dist/src/replica/dashboard/bundle.js → dist/pages/ (only meaningful when running the build). */
const PAGES_DIR = new URL('../../../pages/', import.meta.url);
/** The options scripts/build.mjs uses too, so a page behaves the same from source and from dist. */
export const BUNDLE_OPTIONS = { bundle: true, format: 'esm', platform: 'browser', target: 'es2020', minify: true } as const;

const cache = new Map<string, Promise<string>>();

/** The bundled script of browser entry `name` (its source file: `entry`, a .ts URL beside the caller). */
export function browserBundle(name: string, entry: URL): Promise<string> {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(name)) throw new Error(`bad bundle name ${JSON.stringify(name)}`);
  let bundle = cache.get(name);
  if (!bundle) {
    bundle = FROM_SOURCE ? bundleFromSource(entry) : readPrebuilt(name);
    bundle.catch(() => cache.delete(name));
    cache.set(name, bundle);
  }
  return bundle;
}

async function bundleFromSource(entry: URL): Promise<string> {
  const { build } = await import('esbuild');
  const out = await build({ ...BUNDLE_OPTIONS, entryPoints: [fileURLToPath(entry)], write: false });
  return out.outputFiles[0]!.text;
}

async function readPrebuilt(name: string): Promise<string> {
  const file = new URL(`${name}.js`, PAGES_DIR);
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new Error(`${fileURLToPath(file)} is missing: the browser bundles are built by \`npm run build\` (run it in the package directory)`);
  }
}

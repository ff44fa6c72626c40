// Dependency rules for statemirror, checked by `npm run depcruise` (part of `npm test`).
// The layers of src/, bottom to top; a folder may import only from folders below it (and itself):
//
//   domain → config → log → engine → replication → publish → rooms → replica → auth → http → node → cli → client
//   (client is statemirror/client, the library applications import: it may import only domain types and itself.)
//
// - domain is pure: no node:* builtins, no better-sqlite3, hono, yjs, ws (time arrives in the envelope).
// - config only describes and validates regions.config.json; it may import domain and nothing else.
// - sim/ (link proxy, seeded PRNG, process cluster) is for tests and bench: it may import src/, but
//   src/ never imports sim/, test/ or bench/ — with ONE exception: src/cli (the `up` command runs
//   the local simulated cluster through link proxies) may import sim/link-proxy.ts and sim/prng.ts.
// - no cycles between files anywhere.
/* eslint-disable */
const LAYERS = ['domain', 'config', 'log', 'engine', 'replication', 'publish', 'rooms', 'replica', 'auth', 'http', 'node', 'cli', 'client'];

/** One rule per layer: it may not import any layer above it. */
const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `no-upward-from-${layer}`,
  comment: `src/${layer} may only import ${['itself', ...LAYERS.slice(0, i)].join(', ')} (layers: ${LAYERS.join(' → ')})`,
  severity: 'error',
  from: { path: `^src/${layer}/` },
  to: { path: `^src/(${LAYERS.slice(i + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-unknown-src-folder',
      comment: `every file in src/ belongs to one of the layers (${LAYERS.join(', ')}); add a new folder to LAYERS first`,
      severity: 'error',
      from: { path: '^src/' },
      to: { path: `^src/(?!(${LAYERS.join('|')})/)` },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles between files',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-not-to-sim-test-bench',
      comment: 'src/ never imports sim/, test/ or bench/ (exception: src/cli may use sim/link-proxy and sim/prng, see next rule)',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^(sim|test|bench)/' },
    },
    {
      name: 'cli-only-link-proxy-and-prng-from-sim',
      comment: 'the one allowed exception: src/cli (`up`) runs the local simulated cluster through sim/link-proxy with sim/prng seeds',
      severity: 'error',
      from: { path: '^src/cli/' },
      to: { path: '^(test/|bench/|sim/(?!(link-proxy|prng)\\.ts$))' },
    },
    {
      name: 'sim-not-to-test-bench',
      comment: 'sim/ is shared by tests and bench; it does not import them',
      severity: 'error',
      from: { path: '^sim/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'domain-no-node-builtins',
      comment: 'the domain does no I/O: no node:* builtins',
      severity: 'error',
      from: { path: '^src/domain/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'domain-no-io-packages',
      comment: 'the domain does no I/O: no better-sqlite3, hono, yjs, ws (nor the y-* / lib0 helpers)',
      severity: 'error',
      from: { path: '^src/domain/' },
      to: { path: '(^|/)node_modules/(better-sqlite3|hono|@hono/[^/]+|yjs|y-websocket|y-protocols|ws|lib0|pino)/' },
    },
    {
      name: 'client-stays-light',
      comment: 'src/client (statemirror/client) is what applications import: only the domain types and itself, never the server (log, engine, replication, publish, rooms, replica, auth, http, node, cli)',
      severity: 'error',
      from: { path: '^src/client/' },
      to: { path: '^src/(?!(client|domain)/)' },
    },
    {
      name: 'no-dev-deps-at-run-time',
      comment:
        'production installs omit devDependencies: what runs in node (src/ and the sim files the CLI uses) imports only `dependencies`. Exceptions: browser entries (client.ts, bundled ahead of time by `npm run build`) and dashboard/bundle.ts (loads esbuild only when running from source)',
      severity: 'error',
      from: { path: '^(src/|sim/(link-proxy|prng)\\.ts$)', pathNot: ['^src/(replica/dashboard|node/cluster-view)/client\\.ts$', '^src/replica/dashboard/bundle\\.ts$', '\\.d\\.ts$'] },
      to: { dependencyTypes: ['npm-dev', 'npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'every import resolves',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};

// Cluster configuration: the core, the domain rules, publishing layout, the regions and the
// simulated links between them. Invariants (checked by loadConfig): region names are unique and
// not "core"; every region's upstream is "core" or another region, the upstream graph has no
// cycles, and every region has exactly one link from its upstream.
import { readFileSync, existsSync } from 'node:fs';
import { z } from 'zod';
import { boundsProblem, resolveRisk } from '../domain/risk.js';

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const name = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and dashes');
/**
 * How the other nodes (and `statemirror status`) reach a node, when that is not http://host:port —
 * host and port are where it listens: e.g. https://core-a.example.com behind a TLS-terminating
 * proxy (then its links are https/wss). docs/deploy.md.
 */
const url = z
  .string()
  .regex(/^https?:\/\/[^/\s?#]+$/, 'http(s)://host[:port], no path or trailing slash')
  .optional();

export const LinkSchema = z.strictObject({
  from: z.string(),
  to: z.string(),
  latencyMs: z.number().min(0).max(10_000),
  jitterMs: z.number().min(0).max(10_000).default(0),
  lossPct: z.number().min(0).max(100).default(0),
});

export const ConfigSchema = z.strictObject({
  core: z.strictObject({
    /**
     * The core's Raft cluster (docs/replication.md): a write commits once a majority holds it, so
     * 3 nodes survive one failure, 5 survive two, 2 survive none (both are needed), 1 runs alone.
     */
    nodes: z
      .array(z.strictObject({ name, host: z.string().default('127.0.0.1'), port: int(0, 65535), url, dataDir: z.string() }))
      .min(1)
      .max(9),
    maxBatch: int(1, 100_000).default(1024),
    maxQueue: int(1, 10_000_000).default(20_000),
    /** Batches the leader sequences and ships while earlier ones wait for their majority. */
    maxInFlightBatches: int(1, 64).default(4),
    /**
     * Client ids remembered for idempotency: the newest this many entries (held in memory, ~100 B
     * each). A retry with an id older than that is a new command (docs/order-entry.md).
     */
    idempotencyWindow: int(1000, 100_000_000).default(1_000_000),
    maxBodyBytes: int(256, 64 * 1024 * 1024).default(262_144),
    maxCommandsPerRequest: int(1, 100_000).default(256),
    /** Order-entry sessions (WS /v1/session, docs/order-entry.md): every bound of one. */
    sessions: z
      .strictObject({
        maxSessions: int(1, 100_000).default(256),
        maxFrameBytes: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
        maxCommandsPerFrame: int(1, 100_000).default(4096),
        maxInFlight: int(1, 10_000_000).default(16_384),
        maxBufferedBytes: int(65_536, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
      })
      .default({ maxSessions: 256, maxFrameBytes: 1024 * 1024, maxCommandsPerFrame: 4096, maxInFlight: 16_384, maxBufferedBytes: 16 * 1024 * 1024 }),
    /** Open TCP connections (HTTP, rooms, replication); beyond it: 429 too_many_connections. */
    maxConnections: int(1, 1_000_000).default(4096),
    /**
     * State snapshots (docs/snapshots.md): every node writes one at the first batch checkpoint at or
     * after each multiple of `everyEntries` (0: never), keeps the newest `keep`, and restarts from
     * the newest valid one plus the log after it. `budgetMs`: export work per event-loop turn.
     */
    snapshots: z
      .strictObject({
        everyEntries: int(0, 1_000_000_000).default(100_000),
        keep: int(1, 100).default(2),
        budgetMs: int(1, 1000).default(8),
      })
      .default({ everyEntries: 100_000, keep: 2, budgetMs: 8 }),
    /**
     * After each snapshot, log entries below the oldest kept snapshot (and outside the idempotency
     * window) are archived to `<dataDir>/archive/log-<from>-<to>.db` ('archive'), deleted ('drop'),
     * or kept ('keep': the log grows forever, a new node still refills from a snapshot only if a
     * peer dropped what it lacks).
     */
    retention: z.enum(['archive', 'drop', 'keep']).default('archive'),
  }),
  domain: z.strictObject({
    markets: z
      .array(z.strictObject({ symbol: z.string().regex(/^[A-Z0-9][A-Z0-9-]{0,31}$/), referencePrice: int(1, 1_000_000_000).optional() }))
      .min(1)
      .max(1000),
    leverage: int(1, 1000),
    limits: z.strictObject({
      maxOpenOrdersPerAccount: int(1, 100_000),
      // price*qty and balances must stay far inside 2^53 so integer maths never loses precision.
      maxPriceTicks: int(1, 1_000_000_000),
      maxQtyLots: int(1, 1_000_000_000),
      maxAmount: int(1, 1_000_000_000_000_000),
      maxAccounts: int(1, 100_000_000),
      /** docs/risk.md: position + resting orders per side, open interest, deposits − withdrawals. */
      maxPositionLots: int(1, 1_000_000_000).optional(),
      maxOpenInterestLots: int(1, 1_000_000_000_000).optional(),
      maxTotalDeposits: int(1, Number.MAX_SAFE_INTEGER).optional(),
    }),
    /** docs/risk.md: maintenance margin, price band, liquidation fee (basis points). */
    risk: z
      .strictObject({
        maintenanceMarginBps: int(1, 10_000).optional(),
        priceBandBps: int(1, 9_999).optional(),
        liquidationFeeBps: int(0, 10_000).optional(),
      })
      .optional(),
  }),
  replication: z
    .strictObject({
      /** Leader heartbeats (empty APPENDs carrying the commit index). */
      heartbeatMs: int(5, 10_000).default(50),
      /**
       * T: a follower that hears no leader for a random time in [T, 2T) starts an election; a
       * leader that hears from no majority for T steps down (CheckQuorum).
       */
      electionTimeoutMs: int(20, 60_000).default(300),
      /** A write not committed within this answers 503 commit_timeout (outcome unknown: retry it). */
      commitTimeoutMs: int(10, 600_000).default(5000),
      /** Entries per APPEND, and APPENDs in flight per follower (the replication pipeline). */
      maxEntriesPerAppend: int(1, 100_000).default(1024),
      maxInflightAppends: int(1, 1024).default(8),
      /** Shared by core nodes and read nodes; STATEMIRROR_CLUSTER_SECRET overrides it. */
      clusterSecret: z.string().min(16).default('statemirror-dev-cluster-secret'),
      /**
       * Accepted from configs of the primary/standby era: `mode` may only be "sync" (every write
       * now waits for a majority), `heartbeatTimeoutMs` stands for electionTimeoutMs when that is
       * not given.
       */
      mode: z.literal('sync', { error: 'replication.mode: only "sync" exists now (a write is acknowledged once a majority holds it; async mode was removed)' }).optional(),
      heartbeatTimeoutMs: int(20, 60_000).optional(),
    })
    .default({ heartbeatMs: 50, electionTimeoutMs: 300, commitTimeoutMs: 5000, maxEntriesPerAppend: 1024, maxInflightAppends: 8, clusterSecret: 'statemirror-dev-cluster-secret' }),
  auth: z
    .strictObject({
      /** HS256 secret for user tokens (operator / account); STATEMIRROR_JWT_SECRET overrides it. */
      jwtSecret: z.string().min(32).default('statemirror-dev-jwt-secret-change-me-0123456789'),
    })
    .default({ jwtSecret: 'statemirror-dev-jwt-secret-change-me-0123456789' }),
  publish: z.strictObject({
    accountShards: int(1, 1024).default(16),
    bookDepth: int(1, 10_000).default(50),
    tradesKept: int(0, 100_000).default(200),
    /**
     * Compact into a new Yjs generation once overwritten values exceed min and either
     * perAccount × accounts or maxOverhead × the live bytes: each overwrite leaves a ~11-byte
     * tombstone item in Yjs, so this bounds the state readers sync and store (~1.3× plain JSON).
     */
    compactTombstonesPerAccount: int(1, 1_000_000).default(8),
    compactTombstonesMin: int(0, 1_000_000_000).default(16_384),
    compactMaxOverhead: z.number().min(0.01).max(100).default(0.5),
    /** How long a compacted-away generation is still served and published (reader handover). */
    compactGraceMs: int(0, 600_000).default(15_000),
    /**
     * A new leader with more accounts than this writes its first generation a slice per event-loop
     * turn (taking writes meanwhile; rooms and core reads wait) instead of in one go (docs/snapshots.md).
     */
    firstGenerationSyncMax: int(0, 100_000_000).default(20_000),
  }),
  readNode: z
    .strictObject({
      minSeqWaitMsMax: int(0, 60_000).default(5000),
      minSeqWaitMsDefault: int(0, 60_000).default(1000),
      /** TCP connections and WebSocket sockets in all (each page's rooms are sockets). */
      maxConnections: int(1, 1_000_000).default(16_384),
      /**
       * Live pages: the sockets one browser page opens share its `page` query parameter and count
       * once (a socket without one is a page of its own). The dashboard opens 3 per page.
       */
      maxPages: int(1, 1_000_000).default(4096),
      /** Sockets one page may hold (a downstream read node is one page of ~20 docs). */
      maxSocketsPerPage: int(1, 10_000).default(64),
    })
    .default({ minSeqWaitMsMax: 5000, minSeqWaitMsDefault: 1000, maxConnections: 16_384, maxPages: 4096, maxSocketsPerPage: 64 }),
  regions: z
    .array(
      z.strictObject({
        name,
        host: z.string().default('127.0.0.1'),
        port: int(0, 65535),
        url,
        upstream: z.string(),
        dataDir: z.string().optional(),
      }),
    )
    .min(1)
    .max(64),
  links: z.array(LinkSchema),
});

export type Config = z.infer<typeof ConfigSchema>;
export type RegionConfig = Config['regions'][number];
export type LinkConfig = z.infer<typeof LinkSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses and cross-checks a config object; throws ConfigError with every problem listed. */
export function parseConfig(raw: unknown): Config {
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid config:\n${lines.join('\n')}`);
  }
  const config = parsed.data;
  const problems: string[] = [];
  const names = new Set<string>();
  const coreNames = new Set(config.core.nodes.map((n) => n.name));
  if (coreNames.size !== config.core.nodes.length) problems.push('core.nodes: duplicate node name');
  const rawReplication = (raw as { replication?: { electionTimeoutMs?: unknown } } | null)?.replication;
  if (config.replication.heartbeatTimeoutMs !== undefined && rawReplication?.electionTimeoutMs === undefined) {
    config.replication.electionTimeoutMs = config.replication.heartbeatTimeoutMs;
  }
  if (config.replication.electionTimeoutMs < 3 * config.replication.heartbeatMs) {
    problems.push('replication.electionTimeoutMs must be at least 3 × heartbeatMs');
  }
  const jwtEnv = process.env.STATEMIRROR_JWT_SECRET;
  if (jwtEnv !== undefined) {
    if (jwtEnv.length < 32) problems.push('STATEMIRROR_JWT_SECRET must be at least 32 characters');
    else config.auth.jwtSecret = jwtEnv;
  }
  if (config.auth.jwtSecret === config.replication.clusterSecret) problems.push('auth.jwtSecret and replication.clusterSecret must differ');
  const envSecret = process.env.STATEMIRROR_CLUSTER_SECRET;
  if (envSecret !== undefined) {
    if (envSecret.length < 16) problems.push('STATEMIRROR_CLUSTER_SECRET must be at least 16 characters');
    else config.replication.clusterSecret = envSecret;
  }
  for (const r of config.regions) {
    if (r.name === 'core' || coreNames.has(r.name)) problems.push(`region name "${r.name}" is reserved for the core`);
    if (names.has(r.name)) problems.push(`duplicate region ${r.name}`);
    names.add(r.name);
  }
  // The risk limits must make every reachable value a safe integer (docs/risk.md): proven here.
  const riskProblem = boundsProblem(resolveRisk(config.domain));
  if (riskProblem !== null) problems.push(`domain: ${riskProblem}`);
  for (const m of config.domain.markets) {
    if (m.referencePrice !== undefined && m.referencePrice > config.domain.limits.maxPriceTicks) problems.push(`market ${m.symbol}: referencePrice above maxPriceTicks`);
  }
  const symbols = new Set<string>();
  for (const m of config.domain.markets) {
    if (symbols.has(m.symbol)) problems.push(`duplicate market ${m.symbol}`);
    symbols.add(m.symbol);
  }
  const { maxPriceTicks, maxQtyLots, maxAmount } = config.domain.limits;
  // Notional, cost basis and collateral must stay exact: keep the largest order's notional and the
  // largest balance far enough below 2^53 that sums of many of them still fit.
  if (maxPriceTicks * maxQtyLots > 2 ** 50 || maxAmount > 2 ** 50) {
    problems.push(`domain.limits: maxPriceTicks × maxQtyLots and maxAmount must each be ≤ 2^50 (integers stay exact)`);
  }
  for (const r of config.regions) {
    if (r.upstream !== 'core' && !names.has(r.upstream)) problems.push(`region ${r.name}: unknown upstream ${r.upstream}`);
    const links = config.links.filter((l) => l.from === r.upstream && l.to === r.name);
    if (links.length !== 1) problems.push(`region ${r.name}: expected exactly one link ${r.upstream} -> ${r.name}, found ${links.length}`);
    // Walk the upstream chain: it must reach the core without revisiting a region.
    const seen = new Set<string>([r.name]);
    let up = r.upstream;
    while (up !== 'core' && names.has(up)) {
      if (seen.has(up)) {
        problems.push(`region ${r.name}: upstream cycle through ${up}`);
        break;
      }
      seen.add(up);
      up = config.regions.find((x) => x.name === up)!.upstream;
    }
  }
  for (const l of config.links) {
    if (l.from !== 'core' && !names.has(l.from)) problems.push(`link ${l.from} -> ${l.to}: unknown endpoint ${l.from}`);
    if (!names.has(l.to)) problems.push(`link ${l.from} -> ${l.to}: unknown region ${l.to}`);
  }
  if (problems.length > 0) throw new ConfigError(`invalid config:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  return config;
}

/** The link a region's upstream traffic crosses. parseConfig guarantees it exists. */
export function linkFor(config: Config, region: RegionConfig): LinkConfig {
  const link = config.links.find((l) => l.from === region.upstream && l.to === region.name);
  if (!link) throw new ConfigError(`no link ${region.upstream} -> ${region.name}`);
  return link;
}

/** Sum of configured one-way latencies from the core to a region (the physical floor of its lag). */
export function pathLatencyMs(config: Config, region: RegionConfig): number {
  let total = 0;
  let r: RegionConfig | undefined = region;
  while (r) {
    total += linkFor(config, r).latencyMs;
    const up: string = r.upstream;
    r = up === 'core' ? undefined : config.regions.find((x) => x.name === up);
  }
  return total;
}

/** Where the other nodes reach a configured node: its `url`, else http://host:port. */
export function nodeUrl(n: { host: string; port: number; url?: string | undefined }): string {
  return n.url ?? `http://${n.host}:${n.port}`;
}

export const DEFAULT_CONFIG_PATH = 'regions.config.json';

/**
 * Loads the config at `path`; with no path, ./regions.config.json when present, else the
 * embedded defaults, so a fresh clone runs without any file edits.
 */
export function loadConfig(path?: string): Config {
  if (path !== undefined) return parseConfig(JSON.parse(readFileSync(path, 'utf8')));
  if (existsSync(DEFAULT_CONFIG_PATH)) return parseConfig(JSON.parse(readFileSync(DEFAULT_CONFIG_PATH, 'utf8')));
  return parseConfig(EMBEDDED_DEFAULTS);
}

export const EMBEDDED_DEFAULTS = {
  core: {
    nodes: [
      { name: 'core-a', port: 7700, dataDir: 'data/core-a' },
      { name: 'core-b', port: 7701, dataDir: 'data/core-b' },
      { name: 'core-c', port: 7702, dataDir: 'data/core-c' },
    ],
  },
  domain: {
    markets: [{ symbol: 'BTC-USD' }, { symbol: 'ETH-USD' }, { symbol: 'SOL-USD' }],
    leverage: 10,
    limits: {
      maxOpenOrdersPerAccount: 200,
      maxPriceTicks: 100_000_000,
      maxQtyLots: 1_000_000,
      maxAmount: 1_000_000_000_000,
      maxAccounts: 1_000_000,
      maxPositionLots: 100_000,
      maxOpenInterestLots: 1_000_000,
      maxTotalDeposits: 1_000_000_000_000_000,
    },
    risk: { maintenanceMarginBps: 500, priceBandBps: 250, liquidationFeeBps: 50 },
  },
  publish: {},
  regions: [
    { name: 'us-east', port: 7711, upstream: 'core', dataDir: 'data/us-east' },
    { name: 'eu-west', port: 7712, upstream: 'core', dataDir: 'data/eu-west' },
    { name: 'ap-southeast', port: 7713, upstream: 'eu-west', dataDir: 'data/ap-southeast' },
  ],
  links: [
    { from: 'core', to: 'us-east', latencyMs: 1, jitterMs: 0.3 },
    { from: 'core', to: 'eu-west', latencyMs: 35, jitterMs: 2 },
    { from: 'eu-west', to: 'ap-southeast', latencyMs: 75, jitterMs: 4 },
  ],
};

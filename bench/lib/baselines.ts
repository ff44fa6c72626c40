// Baselines for `npm run bench`: two conventional ways to get committed state to a region, run
// through the same simulated links in the same run as statemirror's Yjs replication, so the
// commit→visible lag of each can be compared side by side.
//
// (a) Polling replica: GET <coreUrl>/v1/status every intervalMs (fixed rate, at most one request in
//     flight; a slow request delays the next, missed ticks are not made up in a burst). It measures
//     what a region pays when it asks instead of being told: up to one interval of waiting plus the
//     down-link latency (the request's up-link leg happens before the commit it might observe).
// (b) Redis primary→replica replication: one primary redis-server and one replica per region, each
//     replica's replication connection crossing its own LinkProxy. The bench PUBLISHes each seq on
//     the primary after its SETs; Redis propagates PUBLISH through the replication stream, and a
//     subscriber connected directly (no proxy) to the replica reports the sighting. It measures a
//     push replication stream over the same link: one-way latency plus Redis' own overhead.
//
// Invariants:
// - Both baselines cross LinkProxy from sim/, the very code statemirror's region links use, so
//   the link model (latency, jitter, loss as late delivery, no reordering) is identical.
// - Modules report sightings only: onSeen({seq, atMs}) with atMs = performance.now() in this
//   process at the moment the seq was first seen; the driver holds commit times and computes lag.
// - Sightings are strictly increasing in seq, per replica. A poll that finds the seq advanced from
//   `a` to `b` reports every seq in (a, b] with the same atMs (they all became visible together),
//   so a driver keyed by seq never misses one; the very first poll reports only the seq it found.
// - Every redis-server we spawn is killed in stop(), on a failed start, and on process exit
//   (SIGTERM, then SIGKILL after 3 s in stop(); SIGKILL synchronously on 'exit'). Data dirs live in
//   one temp dir that stop() removes. Readiness waits on Redis' own log line and on INFO, bounded.

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, rmSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { freePort } from '../../sim/process-cluster.js';
import { DEFAULT_SEED, LinkProxy, mixSeed, type LinkSpec } from '../../sim/index.js';

export interface Sighting {
  seq: number;
  /** performance.now() when first seen. */
  atMs: number;
}

// ---------------------------------------------------------------------------------------------
// (a) Polling replica

/** One poll never waits longer than this; a timed-out poll counts as a failed poll. */
export const POLL_TIMEOUT_MS = 5_000;

export async function startPollingReplica(opts: {
  name: string;
  coreUrl: string;
  link: LinkSpec;
  intervalMs: number;
  onSeen: (s: Sighting) => void;
  seed?: number;
}): Promise<{ stop(): Promise<void>; polls(): number }> {
  if (!(Number.isFinite(opts.intervalMs) && opts.intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${opts.intervalMs}`);
  const core = new URL(opts.coreUrl);
  const proxy = new LinkProxy({
    name: `${opts.name}(poll)`,
    targetHost: core.hostname,
    targetPort: Number(core.port || (core.protocol === 'https:' ? 443 : 80)),
    link: opts.link,
    seed: opts.seed ?? DEFAULT_SEED,
  });
  const { port } = await proxy.start();
  const basePath = core.pathname.replace(/\/+$/, '');
  const statusUrl = `http://127.0.0.1:${port}${basePath}/v1/status`;

  let stopped = false;
  let pollCount = 0;
  let lastSeq: number | null = null;
  let inFlight: AbortController | null = null;
  let timer: NodeJS.Timeout | null = null;
  let wake: (() => void) | null = null;

  const pollOnce = async (): Promise<void> => {
    const ctl = new AbortController();
    inFlight = ctl;
    const timeout = setTimeout(() => ctl.abort(), POLL_TIMEOUT_MS);
    pollCount += 1;
    try {
      const res = await fetch(statusUrl, { signal: ctl.signal });
      const body = (await res.json()) as { seq?: unknown };
      const atMs = performance.now();
      if (stopped || !res.ok || typeof body.seq !== 'number' || !Number.isSafeInteger(body.seq)) return;
      const seq = body.seq;
      if (lastSeq === null) {
        lastSeq = seq;
        opts.onSeen({ seq, atMs });
        return;
      }
      // A lower seq (e.g. a restarted core) is ignored: sightings only move forward.
      for (let s = lastSeq + 1; s <= seq; s++) opts.onSeen({ seq: s, atMs });
      if (seq > lastSeq) lastSeq = seq;
    } catch {
      // Unreachable core, timeout, bad JSON, or stop(): this poll saw nothing; the next one retries.
    } finally {
      clearTimeout(timeout);
      inFlight = null;
    }
  };

  const loop = async (): Promise<void> => {
    let dueMs = performance.now();
    while (!stopped) {
      await pollOnce();
      if (stopped) break;
      dueMs += opts.intervalMs;
      const nowMs = performance.now();
      if (dueMs < nowMs) dueMs = nowMs; // the poll overran its slot: go again now, no catch-up burst
      const waitMs = dueMs - nowMs;
      if (waitMs > 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, waitMs);
        });
        timer = null;
        wake = null;
      }
    }
  };
  const running = loop();

  return {
    polls: () => pollCount,
    async stop() {
      if (!stopped) {
        stopped = true;
        inFlight?.abort();
        if (timer !== null) clearTimeout(timer);
        wake?.();
      }
      await running;
      await proxy.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// (b) Redis primary → replica replication

export class RedisUnavailableError extends Error {
  constructor(message = 'redis-server not installed (Debian: apt-get install redis-server)') {
    super(message);
    this.name = 'RedisUnavailableError';
  }
}

export const REDIS_SEQ_CHANNEL = 'statemirror:seq';
const READY_TIMEOUT_MS = 10_000;
const LINK_UP_TIMEOUT_MS = 20_000;
const KILL_GRACE_MS = 3_000;
const LOG_TAIL_CHARS = 8_000;

/** Absolute path of redis-server on PATH, or null. */
export function findRedisServer(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'redis-server');
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

// Children still alive and temp dirs not yet removed: on process exit without stop(), children
// are SIGKILLed and dirs removed synchronously ('exit' handlers cannot wait).
const liveChildren = new Set<ChildProcess>();
const liveTmpDirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of liveChildren) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of liveTmpDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort at exit
      }
    }
  });
}
function track(child: ChildProcess): void {
  installExitHook();
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  child.once('error', () => {
    if (child.pid === undefined) liveChildren.delete(child); // spawn failed: nothing to kill
  });
}

/** redis-server processes spawned by this module and not yet exited (tests assert 0 after stop). */
export function liveRedisProcessCount(): number {
  return liveChildren.size;
}

interface RedisProc {
  name: string;
  port: number;
  child: ChildProcess;
  log(): string;
}

/** A child that never got a pid (spawn failed) counts as exited: it will never emit 'exit'. */
function exited(child: ChildProcess): boolean {
  return child.pid === undefined || child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM, then SIGKILL after KILL_GRACE_MS; resolves when the process has exited. */
async function killProc(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (!exited(child)) child.kill('SIGKILL');
  }, KILL_GRACE_MS);
  await gone;
  clearTimeout(timer);
}

/**
 * Spawns redis-server on a free port and resolves once it logged "Ready to accept connections".
 * Retries (bounded) with another port if the one we picked was taken in the meantime.
 */
async function spawnRedis(bin: string, name: string, dir: string, extraArgs: string[], procs: RedisProc[]): Promise<RedisProc> {
  await mkdir(dir, { recursive: true });
  let lastErr: Error | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const args = [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--logfile', '',
      '--loglevel', 'notice',
      ...extraArgs,
    ];
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let tail = '';
    const append = (chunk: string): void => {
      tail = (tail + chunk).slice(-LOG_TAIL_CHARS); // keep draining forever, keep only the tail
    };
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', append);
    const proc: RedisProc = { name, port, child, log: () => tail };
    procs.push(proc); // registered before readiness so a failed start still kills it
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`${name}: redis-server not ready in ${READY_TIMEOUT_MS} ms:\n${tail}`)), READY_TIMEOUT_MS);
        const done = (err?: Error): void => {
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          child.off('exit', onExit);
          child.off('error', onError);
          if (err) reject(err);
          else resolve();
        };
        // Checked on the tail (not the chunk) so a line split across two reads still matches.
        const onData = (): void => {
          if (tail.includes('Ready to accept connections')) done();
        };
        const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
          done(new Error(`${name}: redis-server exited (${code ?? signal}) before it was ready:\n${tail}`));
        const onError = (err: Error): void => done(new Error(`${name}: cannot spawn redis-server: ${err.message}`));
        child.stdout!.on('data', append);
        child.stdout!.on('data', onData);
        child.once('exit', onExit);
        child.once('error', onError);
      });
      return proc;
    } catch (err) {
      lastErr = err as Error;
      await killProc(child);
      procs.splice(procs.indexOf(proc), 1);
      if (!/Address already in use/i.test(tail)) break;
    }
  }
  throw lastErr ?? new Error(`${name}: redis-server did not start`);
}

function redisClient(port: number): Redis {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    // Reconnect quickly a few times, then give up: a baseline must not keep a dead run alive.
    retryStrategy: (times) => (times > 5 ? null : 50 * times),
  });
  client.on('error', () => {}); // surfaced through command rejections; avoid unhandled 'error'
  return client;
}

async function waitLinkUp(client: Redis, name: string, proc: RedisProc): Promise<void> {
  const deadline = performance.now() + LINK_UP_TIMEOUT_MS;
  let info = '';
  while (performance.now() < deadline) {
    info = await client.info('replication');
    if (/^master_link_status:up\s*$/m.test(info)) return;
    if (exited(proc.child)) break;
    // Bounded polling of INFO: Redis offers no event for "link up" we could wait on instead.
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${name}: master_link_status not up within ${LINK_UP_TIMEOUT_MS} ms:\n${info}\n${proc.log()}`);
}

export async function startRedisReplication(opts: {
  replicas: Array<{ name: string; link: LinkSpec; onSeen: (s: Sighting) => void }>;
  seed?: number;
}): Promise<{ publish(seq: number, payload: Record<string, string>): Promise<void>; stop(): Promise<void>; version: string }> {
  const bin = findRedisServer();
  if (bin === null) throw new RedisUnavailableError();

  const seed = opts.seed ?? DEFAULT_SEED;
  const tmp = await mkdtemp(join(tmpdir(), 'statemirror-redis-'));
  installExitHook();
  liveTmpDirs.add(tmp);
  const procs: RedisProc[] = [];
  const proxies: LinkProxy[] = [];
  const clients: Redis[] = [];

  let stopping: Promise<void> | null = null;
  const cleanup = (): Promise<void> => {
    if (stopping !== null) return stopping;
    stopping = (async () => {
      for (const c of clients) c.disconnect(); // manual close: no reconnect attempts
      // Replicas first (they would otherwise log retries against a dead primary), then proxies, then the primary.
      const replicas = procs.filter((p) => p.name !== 'primary');
      await Promise.all(replicas.map((p) => killProc(p.child)));
      await Promise.all(proxies.map((p) => p.stop()));
      await Promise.all(procs.map((p) => killProc(p.child)));
      await rm(tmp, { recursive: true, force: true });
      liveTmpDirs.delete(tmp);
    })();
    return stopping;
  };

  try {
    const primary = await spawnRedis(bin, 'primary', join(tmp, 'primary'), [
      // Diskless full sync with no delay: the initial sync starts the moment a replica asks.
      '--repl-diskless-sync', 'yes',
      '--repl-diskless-sync-delay', '0',
    ], procs);
    const primaryClient = redisClient(primary.port);
    clients.push(primaryClient);
    await primaryClient.connect();
    const serverInfo = await primaryClient.info('server');
    const version = /^redis_version:(\S+)/m.exec(serverInfo)?.[1] ?? 'unknown';

    // Replicas start in parallel (each waits up to a second for Redis' replication cron to dial
    // its master). allSettled, not all: a failure must not let cleanup race starts still running.
    const startReplica = async (i: number, r: (typeof opts.replicas)[number]): Promise<void> => {
      const proxy = new LinkProxy({
        name: `redis-primary->${r.name}`,
        targetHost: '127.0.0.1',
        targetPort: primary.port,
        link: r.link,
        seed: mixSeed(seed, i),
      });
      proxies.push(proxy);
      const { port: proxyPort } = await proxy.start();
      const replica = await spawnRedis(bin, r.name, join(tmp, `replica-${i}`), ['--replicaof', '127.0.0.1', String(proxyPort)], procs);

      const admin = redisClient(replica.port);
      clients.push(admin);
      await admin.connect();
      await waitLinkUp(admin, r.name, replica);
      admin.disconnect();

      const sub = redisClient(replica.port);
      clients.push(sub);
      await sub.connect();
      let lastSeq = -Infinity;
      sub.on('message', (channel: string, message: string) => {
        const atMs = performance.now();
        if (channel !== REDIS_SEQ_CHANNEL) return;
        const seq = Number(message);
        if (!Number.isSafeInteger(seq) || seq <= lastSeq) return; // first sighting only, forward only
        lastSeq = seq;
        r.onSeen({ seq, atMs });
      });
      await sub.subscribe(REDIS_SEQ_CHANNEL);
    };
    const started = await Promise.allSettled(opts.replicas.map((r, i) => startReplica(i, r)));
    for (const s of started) if (s.status === 'rejected') throw s.reason;

    return {
      version,
      async publish(seq: number, payload: Record<string, string>) {
        const pipe = primaryClient.pipeline();
        for (const [k, v] of Object.entries(payload)) pipe.set(k, v);
        pipe.publish(REDIS_SEQ_CHANNEL, String(seq));
        const results = await pipe.exec();
        for (const [err] of results ?? []) if (err) throw err;
      },
      stop: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

// Failover benchmark: how long writes are unavailable when the leader core process dies.
// Runs a Raft cluster (3 nodes by default) as real processes on loopback under a background write
// load, SIGKILLs the leader at a seeded random moment, and measures kill → first accepted write on
// any other node (plus kill → a new leader reporting role "primary"), over many trials; afterwards
// it checks that every write acknowledged during the run is in the final log at its seq. A
// baseline in the same run — kill and restart a single-node core — gives "cold restart" time on
// this machine. How to read it: absolute milliseconds depend on the machine, so compare the ratio
// failover/cold-restart between runs; and followers wait an election timeout (drawn from
// [T, 1.25T)) by design before they campaign, so failover can't beat T — what is above it is the
// timeout's spread, the election round trips and the new leader committing its epoch_start.
// Reproduce the kill points with --seed. Report: stdout and bench/results/failover-<time>.md.
//
//   npm run bench:failover -- --trials 30 --seed 42 --heartbeat-ms 50 --election-timeout-ms 300
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { histogram, recordMs, type Histogram } from './lib/stats.js';
import { CoreProcesses, freePort } from '../sim/process-cluster.js';
import { signToken } from '../src/auth/tokens.js';
import { EMBEDDED_DEFAULTS, parseConfig } from '../src/config/schema.js';
import { mulberry32, type Rng } from '../sim/prng.js';
import { SqliteCommandLog } from '../src/log/sqlite-log.js';

const USAGE = `usage: npm run bench:failover -- [options]
  --trials N            failover trials (default 30)
  --baseline-trials N   cold-restart baseline trials (default 5)
  --seed N              PRNG seed for the kill moments (default: random, printed)
  --nodes N             core nodes in the cluster (default 3)
  --heartbeat-ms N      replication.heartbeatMs (default 50)
  --election-timeout-ms N  replication.electionTimeoutMs, T (default 300)
  --writers N           concurrent background writers (default 4)
  --graceful            SIGTERM instead of SIGKILL: the leader hands over (TIMEOUT_NOW) before it exits
`;

const LOAD_BEFORE_KILL_MS_MIN = 50;
const LOAD_BEFORE_KILL_MS_MAX = 300;
const PROBE_INTERVAL_MS = 2;
const PROBE_ATTEMPT_TIMEOUT_MS = 250;
const HEALTHY_TIMEOUT_MS = 20_000;

interface Options {
  trials: number;
  baselineTrials: number;
  seed: number;
  nodes: number;
  heartbeatMs: number;
  electionTimeoutMs: number;
  writers: number;
  graceful: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      trials: { type: 'string', default: '30' },
      'baseline-trials': { type: 'string', default: '5' },
      seed: { type: 'string' },
      nodes: { type: 'string', default: '3' },
      'heartbeat-ms': { type: 'string', default: '50' },
      'election-timeout-ms': { type: 'string', default: '300' },
      writers: { type: 'string', default: '4' },
      graceful: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (flag: string, raw: string, min: number, max: number): number => {
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      process.stderr.write(`--${flag}: expected an integer in [${min}, ${max}], got ${JSON.stringify(raw)}\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  return {
    trials: int('trials', values.trials, 1, 10_000),
    baselineTrials: int('baseline-trials', values['baseline-trials'], 1, 1000),
    seed: values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : int('seed', values.seed, 0, 2 ** 32 - 1),
    nodes: int('nodes', values.nodes, 2, 9),
    heartbeatMs: int('heartbeat-ms', values['heartbeat-ms'], 5, 10_000),
    electionTimeoutMs: int('election-timeout-ms', values['election-timeout-ms'], 20, 60_000),
    writers: int('writers', values.writers, 0, 256),
    graceful: values.graceful ?? false,
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
// writeConfig keeps the embedded auth section (and STATEMIRROR_JWT_SECRET still applies), so one
// operator token, signed with the same secret the nodes verify with, serves every run.
const AUTHORIZATION = `Bearer ${await signToken(parseConfig(EMBEDDED_DEFAULTS).auth.jwtSecret, { sub: 'bench-failover', role: 'operator' })}`;
const postJson = (url: string, body: string, timeoutMs: number) =>
  fetch(`${url}/v1/commands`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: AUTHORIZATION },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });

/** Writes a config with free ports and data dirs under `dir`; one name = the single-node baseline. */
async function writeConfig(dir: string, file: string, names: string[], opts: Options): Promise<CoreProcesses> {
  const raw = structuredClone(EMBEDDED_DEFAULTS) as any;
  raw.core.nodes = [];
  for (const name of names) raw.core.nodes.push({ name, port: await freePort(), dataDir: join(dir, name) });
  raw.replication = { heartbeatMs: opts.heartbeatMs, electionTimeoutMs: opts.electionTimeoutMs, commitTimeoutMs: 2000 };
  const config = parseConfig(raw); // fails here, with the reason, on bad flags (e.g. timeout < 3 × heartbeat)
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, file);
  writeFileSync(configPath, JSON.stringify(raw));
  const urls = Object.fromEntries(config.core.nodes.map((n) => [n.name, `http://127.0.0.1:${n.port}`]));
  return new CoreProcesses({ configPath, urls });
}

/**
 * Background load: each writer deposits with its own unique clientIds and retries a command (same
 * clientId) against the other node until it is acknowledged, like the fault test's clients.
 * pause() holds writers before their next command (a command in flight is still retried to its
 * ack); the failover trials pause while the killed node restarts and rejoins, which is not
 * measured, because a restart under load on a small machine takes about twice as long.
 */
class WriterLoad {
  acked = 0;
  /** clientId → acknowledged seq: checked against the final log (zero lost). Bounded by the run. */
  readonly ackedSeqs = new Map<string, number>();
  private stopped = false;
  private readonly running: Promise<void>[];
  private target: string;
  private gate: { promise: Promise<void>; open: () => void } | null = null;

  constructor(private readonly cluster: CoreProcesses, tag: string, writers: number) {
    this.target = cluster.names[0]!;
    this.running = Array.from({ length: writers }, (_, w) => this.writer(`${tag}-w${w}`, w));
  }

  private async writer(prefix: string, w: number): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      if (this.gate) await this.gate.promise;
      if (this.stopped) return;
      const body = JSON.stringify({ clientId: `${prefix}-${i}`, type: 'deposit', account: `acct-${(w * 7 + i) % 13}`, amount: 1 + (i % 50) });
      for (;;) {
        try {
          const res = await postJson(this.cluster.url(this.target), body, 3000);
          const json = (await res.json()) as { seq?: number };
          if (res.status === 200) {
            this.acked++;
            this.ackedSeqs.set(`${prefix}-${i}`, json.seq!);
            break;
          }
        } catch {
          // refused / reset / timed out: the node died; switch.
        }
        if (this.stopped) return;
        const names = this.cluster.names;
        this.target = names[(names.indexOf(this.target) + 1) % names.length]!;
        await sleep(10); // client retry backoff
      }
    }
  }

  pause(): void {
    if (this.gate) return;
    let open!: () => void;
    const promise = new Promise<void>((r) => (open = r));
    this.gate = { promise, open };
  }

  resume(): void {
    this.gate?.open();
    this.gate = null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.resume();
    await Promise.all(this.running);
  }
}

/** Polls until some node leads with every follower caught up (lag 0); returns its name. */
async function waitHealthy(cluster: CoreProcesses, what: string): Promise<string> {
  const s = await cluster.waitFor((st) => st.role === 'primary' && st.raft.peers.length === cluster.names.length - 1 && st.raft.peers.every((p) => p.lag === 0), HEALTHY_TIMEOUT_MS, what);
  return s.node;
}

/** Sends a fresh deposit to the `urls` in turn every ~2 ms until one is accepted (HTTP 200); returns when. */
async function firstAcceptedWrite(urls: string[], tag: string, deadlineMs: number): Promise<number> {
  for (let i = 0; performance.now() < deadlineMs; i++) {
    try {
      const res = await postJson(urls[i % urls.length]!, JSON.stringify({ clientId: `${tag}-${i}`, type: 'deposit', account: 'probe', amount: 1 }), PROBE_ATTEMPT_TIMEOUT_MS);
      const at = performance.now();
      await res.arrayBuffer();
      if (res.status === 200) return at;
    } catch {
      // not listening yet / timed out: try again
    }
    await sleep(PROBE_INTERVAL_MS);
  }
  throw new Error(`no write accepted by ${urls.join(', ')} before the deadline`);
}

/** Polls the `names`' status every ~2 ms until one reports role primary; returns when it did. */
async function promotionObserved(cluster: CoreProcesses, names: string[], deadlineMs: number): Promise<number> {
  while (performance.now() < deadlineMs) {
    const all = await Promise.all(names.map((n) => cluster.status(n)));
    if (all.some((s) => s?.role === 'primary')) return performance.now();
    await sleep(PROBE_INTERVAL_MS);
  }
  throw new Error(`no new leader among ${names.join(', ')} before the deadline`);
}

const randomLoadMs = (rng: Rng) => LOAD_BEFORE_KILL_MS_MIN + Math.floor(rng() * (LOAD_BEFORE_KILL_MS_MAX - LOAD_BEFORE_KILL_MS_MIN + 1));

const progress = (line: string, done = false) => {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}${done ? '\n' : ''}`);
  else process.stderr.write(`${line}\n`);
};


interface Summary {
  n: number;
  minMs: number;
  medianMs: number;
  p99Ms: number;
  maxMs: number;
}
function summarize(h: Histogram): Summary {
  const ms = (us: number) => us / 1000;
  return { n: h.totalCount, minMs: ms(h.minNonZeroValue), medianMs: ms(h.getValueAtPercentile(50)), p99Ms: ms(h.getValueAtPercentile(99)), maxMs: ms(h.maxValue) };
}

// ---- lifecycle: every process is stopped and the temp dir removed on success, error, SIGINT ----

const dir = mkdtempSync(join(tmpdir(), 'sm-bench-failover-'));
const clusters: CoreProcesses[] = [];
let cleaned: Promise<void> | null = null;
let interrupted = false;
function cleanup(): Promise<void> {
  cleaned ??= (async () => {
    await Promise.allSettled(clusters.map((c) => c.stopAll()));
    rmSync(dir, { recursive: true, force: true });
  })();
  return cleaned;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    progress(`${signal}: stopping core processes…`, true);
    void cleanup().finally(() => process.exit(130));
  });
}
// Last resort (e.g. process.exit elsewhere): stopAll sends its signals synchronously.
process.once('exit', () => {
  if (cleaned) return;
  for (const c of clusters) void c.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

async function coldRestartBaseline(opts: Options, rng: Rng): Promise<Histogram> {
  const cluster = await writeConfig(join(dir, 'single'), 'config.json', ['solo'], opts);
  clusters.push(cluster);
  const h = histogram();
  const name = 'solo';
  await cluster.start(name);
  const load = new WriterLoad(cluster, 'cold', opts.writers);
  try {
    for (let t = 1; t <= opts.baselineTrials; t++) {
      progress(`cold-restart baseline ${t}/${opts.baselineTrials}`);
      await waitHealthy(cluster, 'the single node as leader');
      await sleep(randomLoadMs(rng));
      const killed = cluster.kill(name); // the signal is sent synchronously; exit is awaited below
      const t0 = performance.now();
      await killed;
      const started = cluster.start(name);
      started.catch(() => {}); // awaited below; don't let an early rejection go unhandled
      const accepted = await firstAcceptedWrite([cluster.url(name)], `cold${t}`, t0 + 60_000);
      await started;
      recordMs(h, accepted - t0);
    }
  } finally {
    await load.stop();
  }
  progress(`cold-restart baseline: ${opts.baselineTrials} trials done`, true);
  await cluster.stopAll();
  return h;
}

async function failoverTrials(opts: Options, rng: Rng): Promise<{ write: Histogram; promotion: Histogram; rawWriteMs: number[]; acked: number; lost: string[] }> {
  const names = Array.from({ length: opts.nodes }, (_, i) => `core-${String.fromCharCode(97 + i)}`);
  const cluster = await writeConfig(join(dir, 'cluster'), 'config.json', names, opts);
  clusters.push(cluster);
  const write = histogram();
  const promotion = histogram();
  const rawWriteMs: number[] = [];
  await Promise.all(cluster.names.map((n) => cluster.start(n)));
  const load = new WriterLoad(cluster, 'fo', opts.writers);
  let lost: string[] = [];
  try {
    for (let t = 1; t <= opts.trials; t++) {
      const victim = await waitHealthy(cluster, 'a leader with every follower caught up');
      const others = cluster.names.filter((n) => n !== victim);
      load.resume();
      await sleep(randomLoadMs(rng));
      const killed = cluster.kill(victim, opts.graceful ? 'SIGTERM' : 'SIGKILL'); // the signal is sent synchronously; exit is awaited below
      const t0 = performance.now();
      const deadline = t0 + Math.max(10_000, 20 * opts.electionTimeoutMs);
      const [accepted, promoted] = await Promise.all([
        firstAcceptedWrite(others.map((n) => cluster.url(n)), `probe${t}`, deadline),
        promotionObserved(cluster, others, deadline),
        killed,
      ]);
      const writeMs = accepted - t0;
      recordMs(write, writeMs);
      recordMs(promotion, promoted - t0);
      rawWriteMs.push(writeMs);
      progress(`trial ${t}/${opts.trials}  kill→first accepted write ${writeMs.toFixed(1)} ms`);
      load.pause(); // not measured: see WriterLoad
      await cluster.start(victim); // rejoins as a follower; waitHealthy at the top of the next trial
    }
    const leader = await waitHealthy(cluster, 'the last killed node back as a follower');
    await load.stop();
    await cluster.stopAll();
    // Zero acknowledged writes lost: every ack is in the last leader's log at its seq.
    const log = new SqliteCommandLog(join(dir, 'cluster', leader, 'log.db'));
    try {
      lost = [...load.ackedSeqs].filter(([clientId, seq]) => log.entryAt(seq)?.clientId !== clientId).map(([c]) => c);
    } finally {
      log.close();
    }
  } finally {
    await load.stop();
  }
  progress(`failover: ${opts.trials} trials done`, true);
  const acked = load.acked;
  await cluster.stopAll();
  return { write, promotion, rawWriteMs, acked, lost };
}

function report(opts: Options, r: Awaited<ReturnType<typeof failoverTrials>>, cold: Histogram, startedAt: Date, elapsedMs: number): string {
  const fmt = (ms: number) => ms.toFixed(1);
  const row = (label: string, s: Summary) => `| ${label} | ${s.n} | ${fmt(s.minMs)} | ${fmt(s.medianMs)} | ${fmt(s.p99Ms)} | ${fmt(s.maxMs)} |`;
  const w = summarize(r.write);
  const p = summarize(r.promotion);
  const c = summarize(cold);
  const cpu = cpus()[0]?.model.trim() ?? 'unknown';
  const args = `--trials ${opts.trials} --baseline-trials ${opts.baselineTrials} --seed ${opts.seed} --nodes ${opts.nodes} --heartbeat-ms ${opts.heartbeatMs} --election-timeout-ms ${opts.electionTimeoutMs} --writers ${opts.writers}`;
  return [
    `# Failover benchmark — ${startedAt.toISOString()}`,
    '',
    '| measure (ms) | n | min | median | p99 | max |',
    '|---|---:|---:|---:|---:|---:|',
    row(`${opts.graceful ? 'SIGTERM (graceful handoff)' : 'kill'} → first accepted write on the new leader`, w),
    row('kill → new leader observed (status role primary)', p),
    row('cold restart baseline: kill → restart → first accepted write (single node)', c),
    '',
    `- **failover median / cold-restart median = ${(w.medianMs / c.medianMs).toFixed(2)}×** (the cold restart is mostly process start-up, CPU-bound and noisy; failover is mostly the fixed heartbeat timeout, so this ratio still moves with machine speed and load — for regressions watch the excess over the timeout below)`,
    `- **goal p99 ≤ election timeout + 100 ms = ${opts.electionTimeoutMs + 100} ms: ${w.p99Ms <= opts.electionTimeoutMs + 100 ? 'met' : 'not met'}** (p99 ${fmt(w.p99Ms)} ms = ${(w.p99Ms / opts.electionTimeoutMs).toFixed(2)}× T). Floor: followers campaign after T..1.25T = ${opts.electionTimeoutMs}–${opts.electionTimeoutMs * 1.25} ms without a heartbeat, counted from the last one heard (0–${opts.heartbeatMs} ms before the kill); then PreVote, Vote, the new leader's epoch_start and the probe write each take a round trip and an fsync.`,
    `- **acknowledged writes lost: ${r.lost.length}** of ${r.acked} (every write acknowledged during the trials checked at its seq in the final leader's log)${r.lost.length ? `: ${r.lost.slice(0, 10).join(', ')}` : ''}`,
    `- before this protocol (primary + standby, heartbeat timeout 300 ms, same machine): kill → first accepted write min 320 / median 334 / p99 358 ms (30 trials, issue 3's note)`,
    `- trials: ${opts.trials} failover, ${opts.baselineTrials} cold restart; seed ${opts.seed}; ${opts.nodes} core nodes (Raft, majority commit), heartbeatMs ${opts.heartbeatMs}, electionTimeoutMs ${opts.electionTimeoutMs}; ${opts.writers} background writers (${r.acked} writes acknowledged during failover trials; paused while the killed node rejoins); kill after ${LOAD_BEFORE_KILL_MS_MIN}–${LOAD_BEFORE_KILL_MS_MAX} ms of load; probe every ~${PROBE_INTERVAL_MS} ms, ${PROBE_ATTEMPT_TIMEOUT_MS} ms per attempt`,
    `- node ${process.version}, ${availableParallelism()} CPUs (${cpu}), ${process.platform}/${process.arch}; run took ${(elapsedMs / 1000).toFixed(1)} s`,
    `- percentiles from hdr-histogram-js (nearest rank; median of an even count is the lower middle). **p99 over N trials is just the max when N < 100** — read it as "worst seen", not a tail estimate.`,
    `- t0 is taken right after SIGKILL is sent (before the exit is observed), so times include the OS reaping the process.`,
    `- reproduce the kill points: \`npm run bench:failover -- ${args}\``,
    '',
    `<details><summary>raw kill → first accepted write (ms), in trial order</summary>`,
    '',
    r.rawWriteMs.map(fmt).join(', '),
    '',
    '</details>',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const t0 = performance.now();
  process.stderr.write(
    `failover bench: seed ${opts.seed}, ${opts.nodes} nodes, heartbeatMs ${opts.heartbeatMs}, electionTimeoutMs ${opts.electionTimeoutMs}, ` +
      `${opts.trials} trials, ${opts.baselineTrials} baseline trials, ${opts.writers} writers\n`,
  );
  const rng = mulberry32(opts.seed);
  const cold = await coldRestartBaseline(opts, rng);
  const failover = await failoverTrials(opts, rng);
  const md = report(opts, failover, cold, startedAt, performance.now() - t0);
  process.stdout.write(md);
  const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(resultsDir, { recursive: true });
  const path = join(resultsDir, `failover-${startedAt.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-')}.md`);
  writeFileSync(path, md);
  process.stderr.write(`report written to ${path}\n`);
}

try {
  await main();
} catch (err) {
  if (interrupted) await new Promise(() => {}); // the signal handler cleans up and exits
  if (process.stderr.isTTY) progress('', true);
  process.stderr.write(`failover bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  for (const c of clusters) {
    for (const [name, tail] of c.stderr) process.stderr.write(`--- ${name} stderr (tail) ---\n${tail.slice(-3000)}\n`);
  }
  process.exitCode = 1;
} finally {
  await cleanup();
}

// Phase 1 of the latency benchmark: seeds accounts, drives an open-loop write load (commands/s,
// capped in flight) with concurrent reads at every region, and measures commit→visible lag per
// region beside the two baselines (HTTP polling replica, Redis replication) crossing the same
// simulated path links. Invariants: the offered rate is computed from elapsed time (a late timer
// never lowers it); every observer is waited for up to the last commit (bounded) before summarizing.
import { performance } from 'node:perf_hooks';
import { SingleBar } from 'cli-progress';
import { signToken } from '../src/auth/tokens.js';
import { pathLatencyMs, type Config, type RegionConfig } from '../src/config/schema.js';
import type { Cluster } from '../src/cli/cluster.js';
import type { CommittedBatch } from '../src/engine/sequencer.js';
import { mulberry32 } from '../sim/prng.js';
import type { LinkSpec } from '../sim/link-proxy.js';
import type { BenchOptions } from './args.js';
import { LagTracker } from './lib/lag.js';
import { histogram, recordMs, summarize, type Summary } from './lib/stats.js';
import { RedisUnavailableError, startPollingReplica, startRedisReplication } from './lib/baselines.js';

/** Teardown steps registered by the phases, run in reverse by the entry point. */
export type Cleanups = Array<() => Promise<unknown> | unknown>;

/** The one-way path from the core to a region, as one link (latencies and jitters add up). */
export function pathLink(config: Config, region: RegionConfig): LinkSpec {
  let jitterMs = 0;
  let lossPct = 0;
  let r: RegionConfig | undefined = region;
  while (r) {
    const link = config.links.find((l) => l.from === r!.upstream && l.to === r!.name)!;
    jitterMs += link.jitterMs;
    lossPct = 100 - ((100 - lossPct) * (100 - link.lossPct)) / 100;
    const up: string = r.upstream;
    r = up === 'core' ? undefined : config.regions.find((x) => x.name === up);
  }
  return { latencyMs: pathLatencyMs(config, region), jitterMs, lossPct };
}

export interface LagRow {
  region: string;
  floorMs: number;
  ours: Summary;
  poll: Summary;
  redis: Summary | null;
  reads: Summary;
}

/** Writes (deposits included) and reads of every account: an operator token for the cluster's JWT secret. */
export const operatorToken = (config: Config): Promise<string> => signToken(config.auth.jwtSecret, { sub: 'bench', role: 'operator' });

async function post(url: string, body: unknown, token: string): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

export async function lagPhase(config: Config, cluster: Cluster, opts: BenchOptions, cleanups: Cleanups): Promise<{ rows: LagRow[]; failovers: number; sent: number; rejectedHttp: number; saturated: number; redisNote: string | null; wallS: number }> {
  const primary = cluster.primary()!;
  const core = primary.core!;
  const rng = mulberry32(opts.seed);
  const markets = config.domain.markets.map((m) => m.symbol).slice(0, opts.markets);
  const accounts = Array.from({ length: opts.accounts }, (_, i) => `bench-${i}`);
  const token = await operatorToken(config);

  // Seed every account with collateral before measuring (batched, through the API).
  for (let i = 0; i < accounts.length; i += 200) {
    const commands = accounts.slice(i, i + 200).map((a) => ({ clientId: `seed-${a}`, type: 'deposit', account: a, amount: 1_000_000_000 }));
    const r = await post(`${primary.url}/v1/commands`, { commands }, token);
    if (r.status !== 200) throw new Error(`seeding failed: ${r.status} ${JSON.stringify(r.json)}`);
  }
  for (const r of cluster.regions.values()) await r.node.waitFor({ kind: 'all' }, core.seq, 30_000);

  const lag = new LagTracker(core.seq);
  const regions = [...cluster.regions.values()];
  for (const r of regions) {
    lag.addObserver(`ours:${r.config.name}`);
    lag.addObserver(`poll:${r.config.name}`);
  }
  const onCommit = (batch: CommittedBatch) => lag.committed(batch.entries[0]!.seq, batch.lastSeq, performance.now());
  core.on('committed', onCommit);
  const onAdvanced = regions.map((r) => {
    const name = `ours:${r.config.name}`;
    const f = () => lag.seen(name, r.node.seqFor({ kind: 'all' }), performance.now());
    r.node.on('advanced', f);
    return () => r.node.off('advanced', f);
  });
  // Baselines through the same path links.
  const pollers = await Promise.all(
    regions.map((r) =>
      startPollingReplica({
        name: r.config.name,
        coreUrl: primary.url,
        link: pathLink(config, r.config),
        intervalMs: opts.pollIntervalMs,
        onSeen: (s) => lag.seen(`poll:${r.config.name}`, s.seq, s.atMs),
      }),
    ),
  );
  cleanups.push(() => Promise.all(pollers.map((p) => p.stop())));
  let redisNote: string | null = null;
  let onCommitRedis: ((batch: CommittedBatch) => void) | null = null;
  let redis: Awaited<ReturnType<typeof startRedisReplication>> | null = null;
  if (!opts.skipRedis) {
    try {
      for (const r of regions) lag.addObserver(`redis:${r.config.name}`);
      redis = await startRedisReplication({
        replicas: regions.map((r) => ({ name: r.config.name, link: pathLink(config, r.config), onSeen: (s) => lag.seen(`redis:${r.config.name}`, s.seq, s.atMs) })),
      });
      cleanups.push(() => redis?.stop());
      redisNote = `Redis ${redis.version}`;
      const rc = redis;
      // Redis carries the same payload at the same moment: the touched accounts' views.
      onCommitRedis = (batch) => {
        const payload: Record<string, string> = {};
        for (const id of batch.effects.accounts) payload[`acct:${id}`] = JSON.stringify(core.machine.account(id));
        rc.publish(batch.lastSeq, payload).catch(() => {});
      };
      core.on('committed', onCommitRedis);
    } catch (err) {
      if (!(err instanceof RedisUnavailableError)) throw err;
      redisNote = `skipped: ${err.message}`;
    }
  } else redisNote = 'skipped (--skip-redis)';

  // Open-loop writes: every 10 ms, send what the rate owes; never more than maxInFlight at once.
  const readHists = new Map(regions.map((r) => [r.config.name, histogram()]));
  let sent = 0;
  let rejectedHttp = 0;
  let saturated = 0;
  let inFlight = 0;
  const maxInFlight = 4096;
  let owed = 0;
  let readOwed = 0;
  let readsSent = 0;
  const started = performance.now();
  const endAt = started + opts.durationS * 1000;
  let nextId = 0;
  const command = () => {
    const account = accounts[Math.floor(rng() * accounts.length)]!;
    const id = `b${opts.seed}-${nextId++}`;
    if (rng() < 0.25) return { clientId: id, type: 'deposit', account, amount: 1 + Math.floor(rng() * 1000) };
    const side = rng() < 0.5 ? 'buy' : 'sell';
    const market = markets[Math.floor(rng() * markets.length)]!;
    const price = 10_000 + Math.floor((rng() - 0.5) * 40);
    return { clientId: id, type: 'place_order', account, market, side, price, qty: 1 + Math.floor(rng() * 5), tif: rng() < 0.5 ? 'IOC' : 'GTC' };
  };
  const bar = new SingleBar({ format: 'load [{bar}] {percentage}% | {value}/{total} s | sent {sent} | committed {seq} | in flight {inflight}', hideCursor: true, stream: process.stderr });
  bar.start(opts.durationS, 0, { sent: 0, seq: core.seq, inflight: 0 });
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const now = performance.now();
      if (now >= endAt) {
        clearInterval(tick);
        resolve();
        return;
      }
      // Owed from elapsed time, not per tick: a late timer must not lower the offered rate.
      owed = Math.floor(((now - started) / 1000) * opts.rate) - sent - saturated;
      while (owed >= 1) {
        owed -= 1;
        if (inFlight >= maxInFlight) {
          saturated += 1;
          continue;
        }
        inFlight += 1;
        sent += 1;
        post(`${primary.url}/v1/commands`, command(), token)
          .then((r) => {
            if (r.status >= 500 || r.status === 429) rejectedHttp += 1;
          })
          .catch(() => (rejectedHttp += 1))
          .finally(() => (inFlight -= 1));
      }
      readOwed = Math.floor(((now - started) / 1000) * opts.readRate) - readsSent;
      while (readOwed >= 1) {
        readOwed -= 1;
        readsSent += 1;
        for (const r of regions) {
          const t0 = performance.now();
          fetch(`${r.url}/v1/accounts/${accounts[Math.floor(rng() * accounts.length)]}`, { headers: { authorization: `Bearer ${token}` } })
            .then((res) => res.arrayBuffer())
            .then(() => recordMs(readHists.get(r.config.name)!, performance.now() - t0))
            .catch(() => {});
        }
      }
      bar.update(Math.min(opts.durationS, Math.floor((now - started) / 1000)), { sent, seq: core.seq, inflight: inFlight });
    }, 10);
  });
  bar.update(opts.durationS, { sent, seq: core.seq, inflight: inFlight });
  bar.stop();
  const wallS = (performance.now() - started) / 1000;
  // Let everything in flight land, then let every observer catch up to the last commit (bounded).
  const deadline = performance.now() + 30_000;
  while (inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const finalSeq = core.seq;
  for (const r of regions) await r.node.waitFor({ kind: 'all' }, finalSeq, 30_000);
  const observersDone = () => regions.every((r) => lag.visibleOf(`poll:${r.config.name}`) >= finalSeq && (!redis || lag.visibleOf(`redis:${r.config.name}`) >= finalSeq));
  while (!observersDone() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  core.off('committed', onCommit);
  for (const off of onAdvanced) off();
  if (onCommitRedis) core.off('committed', onCommitRedis);
  await Promise.all(pollers.map((p) => p.stop()));
  await redis?.stop();

  const rows = regions.map((r) => ({
    region: r.config.name,
    floorMs: pathLatencyMs(config, r.config),
    ours: summarize(lag.histogramOf(`ours:${r.config.name}`)),
    poll: summarize(lag.histogramOf(`poll:${r.config.name}`)),
    redis: redis ? summarize(lag.histogramOf(`redis:${r.config.name}`)) : null,
    reads: summarize(readHists.get(r.config.name)!),
  }));
  // A failover during the load would show as lag spikes and refused writes: say so in the report.
  const failovers = (cluster.primary()?.core?.epoch ?? core.epoch) - core.epoch;
  return { rows, sent, rejectedHttp, saturated, redisNote, wallS, failovers };
}


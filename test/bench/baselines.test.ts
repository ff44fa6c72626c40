// Bench baselines over real loopback sockets: the polling replica (against a fake core whose seq
// the test bumps) and Redis primary→replica replication through LinkProxies (skipped when
// redis-server is not installed). Invariants of the tests themselves: synchronisation waits on
// onSeen callbacks with bounded timeouts (never sleeps), timing assertions are lower bounds
// (plus one generous upper bound between a 5 ms and a 40 ms link), and every spawned redis-server
// is gone after stop() or a failed start.

import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import {
  RedisUnavailableError,
  findRedisServer,
  liveRedisProcessCount,
  startPollingReplica,
  startRedisReplication,
  type Sighting,
} from '../../bench/lib/baselines.js';

const hasRedis = findRedisServer() !== null;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Collects sightings; until() resolves once a predicate holds, bounded by a timeout. */
class Sightings {
  readonly list: Sighting[] = [];
  private waiters: Array<{ pred: (l: Sighting[]) => boolean; resolve: () => void }> = [];

  readonly onSeen = (s: Sighting): void => {
    this.list.push(s);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(this.list)) return true;
      w.resolve();
      return false;
    });
  };

  seen(seq: number): boolean {
    return this.list.some((s) => s.seq >= seq);
  }

  until(seq: number, ms: number, label: string): Promise<void> {
    if (this.seen(seq)) return Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    return new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label} to see seq ${seq} (saw ${this.list.map((s) => s.seq).join(',')})`)), ms);
      this.waiters.push({ pred: () => this.seen(seq), resolve });
    }).finally(() => clearTimeout(timer));
  }
}

/** A stand-in core: GET /v1/status answers {seq}; tracks how many requests overlap. */
async function startFakeCore(): Promise<{ url: string; setSeq(n: number): void; maxInFlight(): number; requests(): number; close(): Promise<void> }> {
  let seq = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests += 1;
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.on('close', () => (inFlight -= 1));
    if (req.url !== '/v1/status') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ seq }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    setSeq: (n) => (seq = n),
    maxInFlight: () => maxInFlight,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

describe('polling replica', () => {
  it('sees seqs in order, never before bump time + one-way latency, one request in flight', async () => {
    const core = await startFakeCore();
    cleanups.push(() => core.close());
    const latencyMs = 20;
    const seen = new Sightings();
    const replica = await startPollingReplica({
      name: 'test-region',
      coreUrl: core.url,
      link: { latencyMs, jitterMs: 5, lossPct: 0 },
      intervalMs: 10, // shorter than the 40 ms round trip: polls overrun and must not overlap
      onSeen: seen.onSeen,
      seed: 7,
    });
    cleanups.push(() => replica.stop());

    await seen.until(0, 3000, 'first poll');
    const bumpAtMs = new Map<number, number>();
    for (let s = 1; s <= 5; s++) {
      bumpAtMs.set(s, performance.now());
      core.setSeq(s);
      await seen.until(s, 3000, 'poller');
    }
    // A jump: every seq in between is reported, with the same sighting time.
    const jumpAtMs = performance.now();
    for (let s = 6; s <= 9; s++) bumpAtMs.set(s, jumpAtMs);
    core.setSeq(9);
    await seen.until(9, 3000, 'poller');

    expect(seen.list.map((s) => s.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const s of seen.list.slice(1)) {
      expect(s.atMs - bumpAtMs.get(s.seq)!).toBeGreaterThanOrEqual(latencyMs);
    }
    const jumped = seen.list.filter((s) => s.seq >= 6).map((s) => s.atMs);
    expect(new Set(jumped).size).toBe(1);
    expect(core.maxInFlight()).toBe(1);

    await replica.stop();
    const polls = replica.polls();
    expect(polls).toBeGreaterThanOrEqual(7);
    expect(core.requests()).toBeLessThanOrEqual(polls);
  });
});

describe('redis replication', () => {
  it('throws RedisUnavailableError when redis-server is not on PATH', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent-statemirror-test';
    try {
      const err = await startRedisReplication({ replicas: [] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisUnavailableError);
      expect((err as Error).message).toBe('redis-server not installed (Debian: apt-get install redis-server)');
    } finally {
      process.env.PATH = path;
    }
  });

  it.skipIf(!hasRedis)('a failed start leaves no redis-server running', async () => {
    const err = await startRedisReplication({
      replicas: [{ name: 'bad', link: { latencyMs: -1, jitterMs: 0, lossPct: 0 }, onSeen: () => {} }],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RangeError); // the LinkProxy rejects the spec after the primary started
    expect(liveRedisProcessCount()).toBe(0);
  });

  it.skipIf(!hasRedis)('replicas behind 5 ms and 40 ms links see seqs 1..50 in order, lag ≥ link latency', async () => {
    const near = new Sightings();
    const far = new Sightings();
    const redis = await startRedisReplication({
      replicas: [
        { name: 'near', link: { latencyMs: 5, jitterMs: 0, lossPct: 0 }, onSeen: near.onSeen },
        { name: 'far', link: { latencyMs: 40, jitterMs: 2, lossPct: 0 }, onSeen: far.onSeen },
      ],
      seed: 11,
    });
    cleanups.push(() => redis.stop());
    expect(redis.version).toMatch(/^\d+\.\d+/);
    expect(liveRedisProcessCount()).toBe(3);

    const commitAtMs = new Map<number, number>();
    for (let seq = 1; seq <= 50; seq++) {
      commitAtMs.set(seq, performance.now());
      await redis.publish(seq, { [`acct:${seq % 7}`]: JSON.stringify({ seq }), 'meta:seq': String(seq) });
    }
    await Promise.all([near.until(50, 5000, 'near'), far.until(50, 5000, 'far')]);

    const expected = Array.from({ length: 50 }, (_, i) => i + 1);
    expect(near.list.map((s) => s.seq)).toEqual(expected);
    expect(far.list.map((s) => s.seq)).toEqual(expected);
    const lags = (l: Sighting[]): number[] => l.map((s) => s.atMs - commitAtMs.get(s.seq)!);
    const nearLags = lags(near.list);
    const farLags = lags(far.list);
    expect(Math.min(...nearLags)).toBeGreaterThanOrEqual(5);
    expect(Math.min(...farLags)).toBeGreaterThanOrEqual(40);
    expect(median(farLags)).toBeGreaterThanOrEqual(40);
    expect(median(nearLags)).toBeLessThan(40);

    await redis.stop();
    expect(liveRedisProcessCount()).toBe(0);
  });
});

// LinkProxy behaviour over real loopback sockets: integrity and ordering under jitter/loss,
// latency lower bounds, partitions (reset, blackhole, heal), backpressure bound, connection limit,
// close propagation, and stop() releasing everything. Invariants of the tests themselves: ports are
// ephemeral (port 0), synchronisation waits on events with bounded timeouts (the one deliberate
// timeout is the blackhole "nothing arrives" check), and timing assertions are lower bounds only.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LinkProxy,
  lossPenaltyMs,
  mixSeed,
  mulberry32,
  sampleDelayMs,
  type LinkProxyOptions,
  type LinkSpec,
} from '../../sim/index.js';
import {
  Collector,
  TimeoutError,
  connectCollect,
  dialCollect,
  onceWithin,
  startEchoServer,
  startServer,
  unusedPort,
  withTimeout,
  type TestServer,
} from './socket-helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const NO_DELAY: LinkSpec = { latencyMs: 0, jitterMs: 0, lossPct: 0 };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function echo(): Promise<TestServer> {
  const server = await startEchoServer();
  cleanups.push(() => server.close());
  return server;
}

async function proxyTo(port: number, link: LinkSpec, extra: Partial<LinkProxyOptions> = {}): Promise<LinkProxy> {
  const proxy = new LinkProxy({ name: 'test', targetHost: '127.0.0.1', targetPort: port, link, ...extra });
  await proxy.start();
  cleanups.push(() => proxy.stop());
  return proxy;
}

async function client(port: number, opts: { allowHalfOpen?: boolean } = {}): Promise<Collector> {
  const c = await connectCollect(port, 5000, opts);
  cleanups.push(() => {
    c.sock.destroy();
  });
  return c;
}

/** Write `payload` and wait for the echo of it; returns the round-trip time in ms. */
async function roundTrip(c: Collector, payload: Buffer, ms = 5000): Promise<number> {
  const before = c.size;
  const t0 = performance.now();
  c.sock.write(payload);
  const got = await c.waitBytes(before + payload.length, ms);
  const rtt = performance.now() - t0;
  expect(got.subarray(before).equals(payload)).toBe(true);
  return rtt;
}

describe('prng', () => {
  it('same seed gives the same sequence, different seeds differ, values in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const seqA = Array.from({ length: 1000 }, a);
    const seqB = Array.from({ length: 1000 }, b);
    const seqC = Array.from({ length: 1000 }, c);
    expect(seqA).toEqual(seqB);
    expect(seqA).not.toEqual(seqC);
    for (const v of seqA) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(1);
    }
    expect(mixSeed(1, 0)).not.toBe(mixSeed(1, 1));
    expect(mixSeed(1, 0)).toBe(mixSeed(1, 0));
  });

  it('same seed gives the same jitter/loss delay sequence', () => {
    const spec: LinkSpec = { latencyMs: 30, jitterMs: 10, lossPct: 5 };
    const run = (seed: number): number[] => {
      const rng = mulberry32(seed);
      return Array.from({ length: 500 }, () => sampleDelayMs(spec, rng));
    };
    const first = run(7);
    expect(run(7)).toEqual(first);
    expect(run(8)).not.toEqual(first);
    for (const d of first) {
      const base = d >= 30 + lossPenaltyMs(spec) ? d - lossPenaltyMs(spec) : d;
      expect(base).toBeGreaterThanOrEqual(30);
      expect(base).toBeLessThan(40);
    }
  });

  it('loss costs max(200, 3 * latency) ms, no jitter means exact latency', () => {
    const rng = mulberry32(1);
    expect(sampleDelayMs({ latencyMs: 25, jitterMs: 0, lossPct: 0 }, rng)).toBe(25);
    expect(sampleDelayMs({ latencyMs: 10, jitterMs: 0, lossPct: 100 }, rng)).toBe(10 + 200);
    expect(sampleDelayMs({ latencyMs: 100, jitterMs: 0, lossPct: 100 }, rng)).toBe(100 + 300);
  });

  it('rejects invalid link specs', () => {
    expect(() => new LinkProxy({ name: 'x', targetHost: '127.0.0.1', targetPort: 1, link: { latencyMs: -1, jitterMs: 0, lossPct: 0 } })).toThrow(RangeError);
    expect(() => new LinkProxy({ name: 'x', targetHost: '127.0.0.1', targetPort: 1, link: { latencyMs: 0, jitterMs: 0, lossPct: 101 } })).toThrow(RangeError);
  });
});

describe('LinkProxy', () => {
  it('delivers a large payload intact and in order through jitter and loss, then propagates FIN', async () => {
    const target = await echo();
    const proxy = await proxyTo(target.port, { latencyMs: 2, jitterMs: 5, lossPct: 2 }, { seed: 1234 });
    const c = await client(proxy.port);
    const payload = randomBytes(5 * 1024 * 1024);
    c.sock.end(payload);
    const got = await c.waitBytes(payload.length, 30_000);
    expect(got.length).toBe(payload.length);
    expect(got.equals(payload)).toBe(true);
    await c.waitEnded(10_000); // client FIN -> target, echo server's FIN -> client
    expect(proxy.stats.bytesForwarded).toBe(2 * payload.length);
  }, 40_000);

  it('one-way delay is at least latencyMs (round trip >= 2 * latency)', async () => {
    const target = await echo();
    const latencyMs = 30;
    const proxy = await proxyTo(target.port, { latencyMs, jitterMs: 0, lossPct: 0 });
    const c = await client(proxy.port);
    for (let i = 0; i < 5; i++) {
      const rtt = await roundTrip(c, Buffer.from(`ping-${i}`));
      expect(rtt).toBeGreaterThanOrEqual(2 * latencyMs);
    }
  });

  it('setLink applies to bytes read afterwards', async () => {
    const target = await echo();
    const proxy = await proxyTo(target.port, NO_DELAY);
    const c = await client(proxy.port);
    await roundTrip(c, Buffer.from('warm'));
    proxy.setLink({ latencyMs: 40, jitterMs: 0, lossPct: 0 });
    const rtt = await roundTrip(c, Buffer.from('slow'));
    expect(rtt).toBeGreaterThanOrEqual(80);
    expect(() => proxy.setLink({ latencyMs: Number.NaN, jitterMs: 0, lossPct: 0 })).toThrow(RangeError);
  });

  it("'reset' closes open connections and refuses new ones; heal() lets new ones through", async () => {
    const target = await echo();
    const proxy = await proxyTo(target.port, NO_DELAY);
    const c1 = await client(proxy.port);
    await roundTrip(c1, Buffer.from('hello'));

    proxy.partition('reset');
    expect(proxy.stats.partitioned).toBe('reset');
    await c1.waitClosed(5000);

    // The kernel completes the handshake and the proxy resets it, possibly before 'connect' is seen.
    const c2 = dialCollect(proxy.port);
    cleanups.push(() => {
      c2.sock.destroy();
    });
    c2.sock.write('anyone?');
    await c2.waitClosed(5000);
    expect(c2.size).toBe(0);

    proxy.heal();
    expect(proxy.stats.partitioned).toBeNull();
    const c3 = await client(proxy.port);
    await roundTrip(c3, Buffer.from('back'));
  });

  it("'blackhole' holds bytes silently; heal() destroys held connections and new ones work", async () => {
    const target = await echo();
    const proxy = await proxyTo(target.port, NO_DELAY);
    const c1 = await client(proxy.port);
    await roundTrip(c1, Buffer.from('before'));
    const c1Before = c1.size;
    expect(target.accepted).toBe(1);

    proxy.partition('blackhole');
    expect(proxy.stats.partitioned).toBe('blackhole');
    c1.sock.write('lost-in-the-void');
    const c2 = await client(proxy.port); // accepted, but never reaches the target
    c2.sock.write('also-lost');

    // The one deliberate bounded wait: nothing may arrive on either connection while it runs.
    const arrivals = await Promise.allSettled([
      c1.waitBytes(c1Before + 1, 200),
      c2.waitBytes(1, 200),
    ]);
    for (const a of arrivals) {
      expect(a.status).toBe('rejected');
      if (a.status === 'rejected') expect(a.reason).toBeInstanceOf(TimeoutError);
    }
    expect(c1.closed).toBe(false);
    expect(c2.closed).toBe(false);
    expect(target.accepted).toBe(1);

    proxy.heal();
    await Promise.all([c1.waitClosed(5000), c2.waitClosed(5000)]);
    expect(c1.size).toBe(c1Before); // held bytes were dropped, not delivered late

    const c3 = await client(proxy.port);
    await roundTrip(c3, Buffer.from('after'));
    expect(target.accepted).toBe(2);
  });

  it('backpressure: a stalled consumer never makes a direction buffer more than the limit (+ one read)', async () => {
    const limit = 256 * 1024;
    const readChunkMax = 64 * 1024; // one libuv read can overshoot the limit before we pause
    const stalled: TestServer = await startServer(() => {}, { pauseOnConnect: true });
    cleanups.push(() => stalled.close());
    const proxy = await proxyTo(stalled.port, NO_DELAY, { maxBufferedBytesPerDirection: limit });
    const c = await client(proxy.port);

    const payload = Buffer.alloc(32 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(i, i);
    const paused = onceWithin<{ bufferedBytes: number }>(proxy, 'pause', 20_000);
    c.sock.write(payload);
    const ev = await paused;
    expect(ev.bufferedBytes).toBeGreaterThan(limit);
    expect(proxy.stats.pausedDirections).toBe(1);
    expect(proxy.stats.bufferedBytesMax).toBeLessThanOrEqual(limit + readChunkMax);

    // Let the consumer read: everything arrives intact and the proxy resumes its source.
    const [targetSock] = [...stalled.sockets];
    expect(targetSock).toBeDefined();
    const received = new Collector(targetSock!);
    const resumed = onceWithin(proxy, 'resume', 20_000);
    targetSock!.resume();
    await resumed;
    const got = await received.waitBytes(payload.length, 30_000);
    expect(got.equals(payload)).toBe(true);
    expect(proxy.stats.bufferedBytesMax).toBeLessThanOrEqual(limit + readChunkMax);
  }, 60_000);

  it('closes new sockets beyond maxConnections', async () => {
    const target = await echo();
    const proxy = await proxyTo(target.port, NO_DELAY, { maxConnections: 2 });
    const c1 = await client(proxy.port);
    const c2 = await client(proxy.port);
    await roundTrip(c1, Buffer.from('1'));
    await roundTrip(c2, Buffer.from('2'));
    const c3 = await client(proxy.port);
    await c3.waitClosed(5000);
    expect(c3.size).toBe(0);
    expect(proxy.stats.connections).toBe(2);
    await roundTrip(c1, Buffer.from('still fine'));
  });

  it('destroys the client when the target refuses', async () => {
    const proxy = await proxyTo(await unusedPort(), NO_DELAY);
    const c = await client(proxy.port);
    await c.waitClosed(5000);
    await withTimeout(
      new Promise<void>((resolve) => (proxy.stats.connections === 0 ? resolve() : proxy.once('closed', () => resolve()))),
      5000,
      'proxy to forget the connection',
    );
  });

  it('half-close: the client FIN reaches the target after the data, the reply still flows back', async () => {
    let targetGot = '';
    const target = await startServer(
      (sock) => {
        sock.setEncoding('utf8');
        sock.on('data', (d: string) => (targetGot += d));
        sock.on('end', () => sock.end(`bye after ${targetGot}`));
      },
      { allowHalfOpen: true },
    );
    cleanups.push(() => target.close());
    const proxy = await proxyTo(target.port, { latencyMs: 20, jitterMs: 0, lossPct: 0 });
    const c = await client(proxy.port, { allowHalfOpen: true });
    c.sock.end('hello');
    await c.waitEnded(5000);
    expect(c.bytes().toString()).toBe('bye after hello');
    await c.waitClosed(5000);
  });

  it('a client that sends then disconnects still gets its queued bytes delivered', async () => {
    let targetGot = '';
    const target = await startServer((sock) => {
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => (targetGot += d));
    });
    cleanups.push(() => target.close());
    const proxy = await proxyTo(target.port, { latencyMs: 30, jitterMs: 0, lossPct: 0 });
    const targetSide = onceWithin(target.server, 'connection', 5000);
    const c = await client(proxy.port);
    c.sock.end('last words');
    c.sock.destroySoon();
    const sock = (await targetSide) as net.Socket;
    const seen = new Collector(sock);
    await seen.waitClosed(5000);
    expect(targetGot).toBe('last words');
  });

  it('stop() closes the listener and every connection, including queued and blackholed ones', async () => {
    const target = await echo();
    const proxy = new LinkProxy({
      name: 'stop',
      targetHost: '127.0.0.1',
      targetPort: target.port,
      link: { latencyMs: 10_000, jitterMs: 0, lossPct: 0 },
    });
    const { port } = await proxy.start();
    const accepted = onceWithin(proxy, 'connection', 5000);
    const c1 = await client(port);
    await accepted;
    c1.sock.write('queued for ten seconds');
    proxy.partition('blackhole');
    const c2 = await client(port);
    await withTimeout(proxy.stop(), 5000, 'stop()');
    await Promise.all([c1.waitClosed(5000), c2.waitClosed(5000)]);
    expect(proxy.stats.connections).toBe(0);
    expect(proxy.stats.bufferedBytes).toBe(0);
    expect(() => proxy.port).toThrow();
  });

  it('stop() leaves nothing keeping a process alive', async () => {
    const fixture = path.join(here, 'fixtures', 'stop-exit.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      cwd: path.resolve(here, '..', '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await onceWithin<number | null>(child, 'exit', 30_000);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toContain('stopped connections=0');
  }, 40_000);
});

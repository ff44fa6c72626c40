// The write-load generator as its own process (bench:writes), so its CPU is never the core's:
// `node --import tsx bench/proc/writer.ts '<json options>'`. Modes:
//   http     — `connections` keep-alive HTTP connections, each one POST of `perRequest` commands
//              in flight (closed loop);
//   session  — `connections` order-entry sessions (WS /v1/session, MessagePack), each keeping
//              `window` frames of `perRequest` commands in flight (closed loop);
//   echo     — the same session frames to a bare WebSocket echo server (the baseline: what the
//              transport alone costs).
// With `rate` set the load is open loop instead (frames/requests issued on a 1 ms timer at that
// many commands per second), for latency at a fixed rate. Commands: `deposits` or `orders` (one in
// four a deposit, the rest limit orders around one price, GTC and IOC, so they rest and cross).
// Prints one JSON line: acknowledged commands, seconds, ack latency percentiles (per request/frame,
// µs resolution), errors by code.
import { performance } from 'node:perf_hooks';
import { request, Agent } from 'node:http';
import { WebSocket } from 'ws';
import { build } from 'hdr-histogram-js';
import { packFrame, unpackFrame } from '../../src/http/order-session.js';

interface Options {
  url: string;
  token: string;
  mode: 'http' | 'session' | 'echo';
  perRequest: number;
  connections: number;
  window?: number;
  seconds: number;
  mix: 'deposits' | 'orders';
  accounts: number;
  markets: string[];
  /** Open loop at this many commands/s (default: closed loop, as fast as acks come back). */
  rate?: number;
  tag: string;
}

const opts = JSON.parse(process.argv[2]!) as Options;
const hist = build({ numberOfSignificantValueDigits: 3 });
const errors: Record<string, number> = {};
let acked = 0;
let n = 0;

function commands(count: number): unknown[] {
  const out = [];
  for (let i = 0; i < count; i++) {
    const k = n++;
    const account = `acct-${k % opts.accounts}`;
    const clientId = `${opts.tag}-${k}`;
    if (opts.mix === 'deposits' || k % 4 === 0) out.push({ clientId, type: 'deposit', account, amount: 1000 });
    else out.push({ clientId, type: 'place_order', account, market: opts.markets[k % opts.markets.length], side: k % 2 ? 'buy' : 'sell', price: 1000 + ((k >> 1) % 5) - 2, qty: 1, tif: k % 3 ? 'GTC' : 'IOC' });
  }
  return out;
}

const deadline = performance.now() + opts.seconds * 1000;
const started = performance.now();
let lastAck = started;
const record = (t0: number, count: number, ok: boolean, code?: string) => {
  const now = performance.now();
  lastAck = now;
  if (ok) {
    acked += count;
    hist.recordValue(Math.max(1, Math.round((now - t0) * 1000)));
  } else errors[code ?? 'error'] = (errors[code ?? 'error'] ?? 0) + 1;
};

/** One request/frame sender: `send(commands, done)`; the driver decides when to call it. */
type Sender = (done: () => void) => void;

async function httpSenders(): Promise<Sender[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections });
  const u = new URL(opts.url);
  return Array.from({ length: opts.connections }, () => (done: () => void) => {
    const body = JSON.stringify(opts.perRequest === 1 ? commands(1)[0] : { commands: commands(opts.perRequest) });
    const t0 = performance.now();
    const req = request({ agent, host: u.hostname, port: u.port, path: '/v1/commands', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${opts.token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode === 200) record(t0, opts.perRequest, true);
        else record(t0, 0, false, (() => { try { return JSON.parse(Buffer.concat(chunks).toString()).error?.code; } catch { return String(res.statusCode); } })());
        done();
      });
    });
    req.on('error', () => {
      record(t0, 0, false, 'socket');
      done();
    });
    req.end(body);
  });
}

async function wsSenders(path: string): Promise<Sender[]> {
  const senders: Sender[] = [];
  for (let c = 0; c < opts.connections; c++) {
    const ws = new WebSocket(`${opts.url.replace('http', 'ws')}${path}`, { headers: { authorization: `Bearer ${opts.token}` }, perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    // Answers come back in request order: a FIFO of (start time, count, callback) matches them.
    const waiting: Array<{ t0: number; count: number; done: () => void }> = [];
    let id = 0;
    ws.on('message', (data: Buffer) => {
      const w = waiting.shift();
      if (!w) return;
      if (opts.mode === 'echo') {
        record(w.t0, w.count, true);
        return w.done();
      }
      const msg = unpackFrame(data);
      if (msg.results) record(w.t0, w.count, true);
      else record(w.t0, 0, false, msg.error?.code);
      w.done();
    });
    ws.on('close', () => waiting.splice(0).forEach((w) => (record(w.t0, 0, false, 'closed'), w.done())));
    senders.push((done) => {
      const t0 = performance.now();
      waiting.push({ t0, count: opts.perRequest, done });
      ws.send(packFrame({ id: ++id, commands: commands(opts.perRequest) }));
    });
  }
  return senders;
}

async function main(): Promise<void> {
  const senders = opts.mode === 'http' ? await httpSenders() : await wsSenders(opts.mode === 'echo' ? '/' : '/v1/session');
  const perSender = opts.mode === 'http' ? 1 : (opts.window ?? 4);
  let outstanding = 0;
  await new Promise<void>((resolve) => {
    const finish = () => outstanding === 0 && performance.now() >= deadline && resolve();
    if (opts.rate === undefined) {
      // Closed loop: every sender keeps perSender requests in flight until the deadline.
      const loop = (s: Sender) => {
        if (performance.now() >= deadline) return finish();
        outstanding++;
        s(() => {
          outstanding--;
          loop(s);
        });
      };
      for (const s of senders) for (let i = 0; i < perSender; i++) loop(s);
    } else {
      // Open loop: requests due at rate/perRequest per second, spread over the senders.
      const every = (1000 * opts.perRequest) / opts.rate;
      let issued = 0;
      const tick = () => {
        const now = performance.now();
        if (now >= deadline) return finish();
        while (started + issued * every <= now) {
          const s = senders[issued++ % senders.length]!;
          outstanding++;
          s(() => {
            outstanding--;
            finish();
          });
        }
        setTimeout(tick, 1);
      };
      tick();
    }
  });
  const pct = (p: number) => hist.getValueAtPercentile(p) / 1000;
  process.stdout.write(
    JSON.stringify({ acked, seconds: (lastAck - started) / 1000, p50Ms: pct(50), p99Ms: pct(99), p999Ms: pct(99.9), requests: hist.totalCount, errors }) + '\n',
  );
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`writer failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});

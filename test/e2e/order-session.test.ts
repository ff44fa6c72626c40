// Order-entry sessions over real sockets (docs/order-entry.md): a MessagePack WebSocket to the
// leader, authenticated once, many commands per frame, acks in request order; the same validation,
// authorization and idempotency as HTTP; a bounded window; followers refuse with the leader's URL;
// when the leader steps down the session is told and closed, and a retry at the new leader with the
// same clientIds never applies a command twice.
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parseConfig } from '../../src/config/schema.js';
import type { Cluster } from '../../src/cli/cluster.js';
import { CLOSE_BAD_FRAME, CLOSE_NOT_PRIMARY, packFrame, unpackFrame } from '../../src/http/order-session.js';
import { accountToken, clusterPerTest, get, operatorToken, post, testConfig } from './helpers.js';

const startCluster = clusterPerTest('sm-session-');

async function start(coreNodes: 1 | 3, sessions: Record<string, number> = {}): Promise<Cluster> {
  const base = testConfig({ coreNodes });
  const config = parseConfig({ ...base, core: { ...base.core, sessions: { ...base.core.sessions, ...sessions } } });
  return startCluster(config, { waitReadyMs: 0 });
}

/** A session client: frames out, answers in arrival order, close code. */
class Session {
  readonly answers: any[] = [];
  closeCode: number | null = null;
  private waiting: Array<() => void> = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      this.answers.push(unpackFrame(d));
      this.waiting.splice(0).forEach((f) => f());
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.waiting.splice(0).forEach((f) => f());
    });
  }
  static open(url: string, token: string): Promise<Session> {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/session`, { headers: { authorization: `Bearer ${token}` } });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Session(ws)));
      ws.once('error', reject);
    });
  }
  send(frame: unknown): void {
    this.ws.send(packFrame(frame));
  }
  /** Resolves once `n` answers arrived (or the socket closed), bounded. */
  async until(n: number, timeoutMs = 5000): Promise<any[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers.length < n && this.closeCode === null) {
      if (Date.now() > deadline) throw new Error(`only ${this.answers.length} of ${n} answers`);
      await new Promise<void>((r) => {
        this.waiting.push(r);
        setTimeout(r, Math.max(1, deadline - Date.now()));
      });
    }
    return this.answers;
  }
}

/** The HTTP status and JSON body a refused upgrade got. */
function refusal(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/session`, { headers });
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }));
    });
    ws.once('open', () => reject(new Error('session opened')));
    ws.on('error', () => {});
  });
}

const deposit = (clientId: string, account: string, amount: number) => ({ clientId, type: 'deposit', account, amount });

describe('order-entry sessions', () => {
  it('many commands per frame, acks in request order, same answers as HTTP; bad input is answered, not applied', async () => {
    const c = await start(1);
    const url = c.cores[0]!.url;
    const config = c.cores[0]!.config;
    expect((await refusal(url)).body.error.code).toBe('unauthenticated');
    const s = await Session.open(url, await operatorToken(config));
    // Three frames in a row, the second invalid: its answer comes second, the others still apply.
    s.send({ id: 1, commands: Array.from({ length: 100 }, (_, i) => deposit(`d-${i}`, `acct-${i % 10}`, 1000)) });
    s.send({ id: 2, commands: [{ clientId: 'bad', type: 'deposit', account: 'x', amount: -5 }] });
    s.send({ id: 3, commands: [{ clientId: 'o-1', type: 'place_order', account: 'acct-1', market: 'BTC-USD', side: 'buy', price: 100, qty: 2, tif: 'GTC' }] });
    const [a1, a2, a3] = await s.until(3);
    expect(a1.id).toBe(1);
    expect(a1.results).toHaveLength(100);
    expect(a1.results.map((r: any) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => a1.results[0].seq + i));
    expect(a2).toMatchObject({ id: 2, error: { code: 'invalid_command' } });
    expect(a3).toMatchObject({ id: 3, results: [{ clientId: 'o-1', duplicate: false, result: { status: 'accepted' } }] });
    expect(a3.results[0].seq).toBe(a1.results[99].seq + 1);
    // A retry of the same clientIds: duplicates with the first answers, nothing applied twice.
    s.send({ id: 4, commands: [deposit('d-0', 'acct-0', 1000)] });
    const a4 = (await s.until(4))[3];
    expect(a4.results[0]).toMatchObject({ clientId: 'd-0', duplicate: true, seq: a1.results[0].seq });
    const acct = await get(`${url}/v1/accounts/acct-0?minSeq=${a3.results[0].seq}`);
    expect(acct.body.collateral).toBe(10 * 1000);
    // A text frame is not the protocol: the session is closed with 4400.
    s.ws.send('hello');
    await s.until(99);
    expect(s.closeCode).toBe(CLOSE_BAD_FRAME);
  });

  it('an account token acts only for its account; a frame over the window is refused, not queued', async () => {
    const c = await start(1, { maxInFlight: 5 });
    const url = c.cores[0]!.url;
    const config = c.cores[0]!.config;
    expect((await post(`${url}/v1/commands`, deposit('fund-alice', 'alice', 1_000_000))).status).toBe(200);
    const s = await Session.open(url, await accountToken(config, 'alice'));
    const order = (clientId: string, account: string) => ({ clientId, type: 'place_order', account, market: 'BTC-USD', side: 'buy', price: 100, qty: 1, tif: 'GTC' });
    s.send({ id: 'a', commands: [order('x-1', 'alice')] });
    s.send({ id: 'b', commands: [order('x-2', 'bob')] });
    s.send({ id: 'c', commands: Array.from({ length: 6 }, (_, i) => order(`w-${i}`, 'alice')) });
    s.send({ id: 'd', commands: [deposit('x-3', 'alice', 5)] });
    const [a, b, w, d] = await s.until(4);
    expect(a).toMatchObject({ id: 'a', results: [{ result: { status: 'accepted' } }] });
    expect(b).toMatchObject({ id: 'b', error: { code: 'forbidden', index: 0 } });
    expect(w).toMatchObject({ id: 'c', error: { code: 'overloaded', maxInFlight: 5 } });
    expect(d).toMatchObject({ id: 'd', error: { code: 'forbidden' } });
    const view = (await get(`${url}/v1/accounts/alice?minSeq=${a.results[0].seq}`)).body;
    expect(view.openOrders).toHaveLength(1);
    expect(view.collateral).toBe(1_000_000);
  });

  it('a follower refuses with the leader; a leader stepping down ends the session; the retry at the new leader applies once', async () => {
    const c = await start(3);
    const leader = c.primary()!;
    const follower = c.cores.find((n) => n !== leader)!;
    const token = await operatorToken(leader.config);
    const refused = await refusal(follower.url, { authorization: `Bearer ${token}` });
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ code: 'not_primary', leaderUrl: leader.url });

    const s = await Session.open(leader.url, token);
    s.send({ id: 1, commands: [deposit('f-1', 'carol', 7)] });
    const [first] = await s.until(1);
    expect(first.results[0].result.status).toBe('accepted');
    // The leader stops (graceful handover): the session is told and closed with 4503.
    await leader.close();
    await s.until(99, 10_000);
    expect(s.closeCode).toBe(CLOSE_NOT_PRIMARY);
    expect(s.answers.at(-1)).toMatchObject({ error: { code: 'not_primary' } });
    const next = await waitForLeader(c, leader);
    const again = await Session.open(next.url, token);
    again.send({ id: 2, commands: [deposit('f-1', 'carol', 7), deposit('f-2', 'carol', 3)] });
    const [retry] = await again.until(1);
    expect(retry.results.map((r: any) => r.duplicate)).toEqual([true, false]);
    expect((await get(`${next.url}/v1/accounts/carol?minSeq=${retry.results[1].seq}`)).body.collateral).toBe(10);
    again.ws.close();
  }, 30_000);
});

async function waitForLeader(c: Cluster, old: Cluster['cores'][number]): Promise<Cluster['cores'][number]> {
  const others = c.cores.filter((n) => n !== old);
  const found = others.find((n) => n.role === 'primary');
  if (found) return found;
  return Promise.any(others.map((n) => n.waitForRole('primary', 10_000).then(() => n)));
}

describe('order-entry sessions under hostile input', () => {
  it('random bytes, odd MessagePack values and oversized frames never take the node down nor reach the log', async () => {
    const c = await start(1, { maxFrameBytes: 4096 });
    const url = c.cores[0]!.url;
    const token = await operatorToken(c.cores[0]!.config);
    const { mulberry32 } = await import('../../sim/prng.js');
    const rnd = mulberry32(99);
    const frames: Array<Buffer | string> = [
      Buffer.alloc(0),
      Buffer.from([0xc1]),
      Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 claiming 4G items
      Buffer.from([0xdf, 0x7f, 0xff, 0xff, 0xff]), // map32 claiming 2G entries
      Buffer.from([0xd6, 0xff, 0, 0, 0, 1]), // timestamp extension
      packFrame([1, 2, 3]),
      packFrame({ id: { nested: true }, commands: 'x' }),
      packFrame({ id: 1, commands: [{ clientId: 'a', type: 'deposit', account: 'x', amount: 1e300 }] }),
      // A "__proto__" key on the wire (an own property after JSON.parse): no prototype pollution.
      packFrame(JSON.parse('{"id":2,"commands":[{"clientId":"b","type":"deposit","account":"x","amount":5,"__proto__":{"polluted":true}}]}')),
      packFrame({ id: 3, commands: Array.from({ length: 5000 }, (_, i) => ({ clientId: `c${i}`, type: 'deposit', account: 'x', amount: 1 })) }),
      Buffer.alloc(8192, 0x91),
      'text frame',
      ...Array.from({ length: 30 }, () => Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256)))),
    ];
    for (const f of frames) {
      const s = await Session.open(url, token);
      s.ws.send(f);
      s.send({ id: 'after', commands: [deposit(`ok-${Math.floor(rnd() * 1e9)}`, 'fuzz', 1)] });
      // Either the bad frame is answered (and the good one after it) or the session is closed.
      await s.until(2, 5000);
      if (s.closeCode === null) expect(s.answers.at(-1)).toMatchObject({ id: 'after', results: [{ result: { status: 'accepted' } }] });
      else expect([1009, 4400]).toContain(s.closeCode);
      s.ws.terminate();
    }
    // The node is up and took only well-formed commands.
    const status = await get(`${url}/v1/status`);
    expect(status.status).toBe(200);
    const acct = await get(`${url}/v1/accounts/x`);
    expect(acct.status).toBe(404);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

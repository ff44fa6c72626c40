// Covers the core HTTP API via app.request(): POST /v1/commands (validation, limits, idempotency, overload, reject mapping) and the read/status/sync routes.
import { afterEach, describe, expect, it } from 'vitest';
import type { Hono } from 'hono';
import { signToken } from '../../src/auth/tokens.js';
import type { Core } from '../../src/publish/core.js';
import { MemoryCommandLog } from '../../src/log/memory-log.js';
import { BTC, coreApp, makeCore } from '../core/helpers.js';
import { connect } from 'node:net';
import { listen } from '../../src/http/server.js';

const MAX_BODY_BYTES = 4096;
const MAX_COMMANDS = 10;
const SECRETS = { jwtSecret: 'core-app-test-jwt-secret-0123456789abcdef', clusterSecret: 'core-app-test-cluster-secret' };
/** Sent by default: these tests are about everything but auth (test/api/auth.test.ts covers that). */
const OPERATOR = `Bearer ${await signToken(SECRETS.jwtSecret, { sub: 'ops', role: 'operator' })}`;

const cores: Core[] = [];
afterEach(() => {
  for (const c of cores.splice(0)) c.close();
});

function setup(overrides: Parameters<typeof makeCore>[0] = {}): { core: Core; app: Hono } {
  const core = makeCore(overrides);
  cores.push(core);
  const app = coreApp(core, { secrets: SECRETS, maxBodyBytes: MAX_BODY_BYTES, maxCommandsPerRequest: MAX_COMMANDS });
  return { core, app };
}

// Hono's json() is typed unknown; tests read fields freely.
type Json = any;

async function post(app: Hono, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const res = await app.request('/v1/commands', {
    method: 'POST',
    headers: { authorization: OPERATOR, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { res, status: res.status, json };
}

async function get(app: Hono, path: string) {
  const res = await app.request(path, { headers: { authorization: OPERATOR } });
  return { res, status: res.status, json: (await res.json()) as Json };
}

const deposit = (clientId: string, account: string, amount: number) => ({ clientId, type: 'deposit', account, amount });
const order = (clientId: string, account: string, side: 'buy' | 'sell', price: number, qty: number, extra: Record<string, unknown> = {}) => ({
  clientId,
  type: 'place_order',
  account,
  market: BTC,
  side,
  price,
  qty,
  ...extra,
});

describe('POST /v1/commands: accepted commands', () => {
  it('a single deposit answers 200 with seq, tsMs and the result', async () => {
    const { core, app } = setup();
    const { status, json, res } = await post(app, deposit('c1', 'alice', 1000));
    expect(status).toBe(200);
    expect(json).toMatchObject({ clientId: 'c1', seq: 1, duplicate: false, result: { status: 'accepted', collateral: 1000 } });
    expect(typeof json.tsMs).toBe('number');
    expect(res.headers.get('x-statemirror-seq')).toBe('1');
    expect(core.log.lastSeq()).toBe(1);
    expect(core.machine.account('alice')?.collateral).toBe(1000);
  });

  it('a batch answers 200 with one result per command, in order and gap-free', async () => {
    const { core, app } = setup();
    const { status, json } = await post(app, {
      commands: [deposit('b1', 'alice', 1_000_000), deposit('b2', 'bob', 1_000_000), order('b3', 'alice', 'sell', 100, 5), order('b4', 'bob', 'buy', 100, 3)],
    });
    expect(status).toBe(200);
    expect(json.results.map((r: Json) => r.seq)).toEqual([1, 2, 3, 4]);
    expect(json.results.map((r: Json) => r.clientId)).toEqual(['b1', 'b2', 'b3', 'b4']);
    // tif defaults to GTC: the unfilled 2 lots of the sell rest, the buy fills 3 against it.
    expect(json.results[2].result).toMatchObject({ status: 'accepted', orderId: 3, restingQty: 5 });
    expect(json.results[3].result).toMatchObject({ status: 'accepted', orderId: 4, restingQty: 0, fills: [{ makerOrderId: 3, qty: 3, price: 100 }] });
    expect(core.log.lastSeq()).toBe(4);
    expect(core.machine.book(BTC, 10)?.asks).toEqual([{ price: 100, qty: 2, orders: 1 }]);
  });

  it('a batch carries business rejects inside results with status 200', async () => {
    const { app } = setup();
    const { status, json } = await post(app, { commands: [deposit('r1', 'alice', 10), { clientId: 'r2', type: 'withdraw', account: 'alice', amount: 11 }] });
    expect(status).toBe(200);
    expect(json.results[1]).toMatchObject({ seq: 2, result: { status: 'rejected', code: 'insufficient_collateral' } });
  });
});

describe('POST /v1/commands: business rejects on a single command map via REJECT_HTTP', () => {
  it('withdrawing more than the collateral is 422 insufficient_collateral, logged with its seq', async () => {
    const { core, app } = setup();
    await post(app, deposit('d1', 'alice', 100));
    const { status, json } = await post(app, { clientId: 'w1', type: 'withdraw', account: 'alice', amount: 101 });
    expect(status).toBe(422);
    expect(json).toMatchObject({ seq: 2, result: { status: 'rejected', code: 'insufficient_collateral' } });
    // Business rejects are part of the history: stored so a replay reproduces them.
    expect(core.log.lastSeq()).toBe(2);
    expect(core.machine.account('alice')?.collateral).toBe(100);
  });

  it('cancelling an unknown order is 404 unknown_order', async () => {
    const { app } = setup();
    await post(app, deposit('d1', 'alice', 100));
    const { status, json } = await post(app, { clientId: 'x1', type: 'cancel_order', account: 'alice', orderId: 999 });
    expect(status).toBe(404);
    expect(json.result).toMatchObject({ status: 'rejected', code: 'unknown_order' });
  });

  it('cancelling another account\'s order is 403 not_order_owner; an unknown account is 404', async () => {
    const { app } = setup();
    await post(app, { commands: [deposit('d1', 'alice', 100_000), deposit('d2', 'bob', 100_000), order('o1', 'alice', 'buy', 10, 1)] });
    expect((await post(app, { clientId: 'x1', type: 'cancel_order', account: 'bob', orderId: 3 })).status).toBe(403);
    const { status, json } = await post(app, { clientId: 'x2', type: 'withdraw', account: 'nobody', amount: 1 });
    expect(status).toBe(404);
    expect(json.result.code).toBe('unknown_account');
  });
});

describe('POST /v1/commands: bad input never reaches the log', () => {
  const bad: Array<[string, unknown, number, string]> = [
    ['malformed JSON', '{"clientId": "a", ', 400, 'malformed_json'],
    ['an unknown field', { ...deposit('u1', 'alice', 5), memo: 'hi' }, 400, 'unknown_field'],
    ['an unknown field in a batch item', { commands: [{ ...deposit('u2', 'alice', 5), extra: 1 }] }, 400, 'unknown_field'],
    ['an unknown top-level field next to commands', { commands: [deposit('u3', 'alice', 5)], more: true }, 400, 'unknown_field'],
    ['a negative qty', order('q1', 'alice', 'buy', 10, -1), 400, 'invalid_command'],
    ['a zero qty', order('q0', 'alice', 'buy', 10, 0), 400, 'invalid_command'],
    ['a float qty', order('q2', 'alice', 'buy', 10, 1.5), 400, 'invalid_command'],
    ['a string qty', order('q3', 'alice', 'buy', 10, 1, { qty: '1' }), 400, 'invalid_command'],
    ['a qty above maxQtyLots', order('q4', 'alice', 'buy', 10, 1_000_001), 400, 'invalid_command'],
    ['a price above maxPriceTicks', order('q5', 'alice', 'buy', 10_000_001, 1), 400, 'invalid_command'],
    ['an unknown market', order('q6', 'alice', 'buy', 10, 1, { market: 'DOGE-USD' }), 400, 'invalid_command'],
    ['a bad side', order('q7', 'alice', 'hold' as 'buy', 10, 1), 400, 'invalid_command'],
    ['a bad tif', order('q8', 'alice', 'buy', 10, 1, { tif: 'FOK' }), 400, 'invalid_command'],
    ['a missing clientId', { type: 'deposit', account: 'alice', amount: 5 }, 400, 'invalid_command'],
    ['bad clientId characters', deposit('bad id/with spaces', 'alice', 5), 400, 'invalid_command'],
    ['an empty clientId', deposit('', 'alice', 5), 400, 'invalid_command'],
    ['a clientId over 128 chars', deposit('x'.repeat(129), 'alice', 5), 400, 'invalid_command'],
    ['bad account id characters', deposit('a1', 'al ice', 5), 400, 'invalid_command'],
    ['an unknown command type', { clientId: 't1', type: 'transfer', account: 'alice', amount: 5 }, 400, 'invalid_command'],
    ['a deposit above maxAmount', deposit('m1', 'alice', 1_000_000_000_001), 400, 'invalid_command'],
    ['a JSON array body', [deposit('arr', 'alice', 5)], 400, 'invalid_command'],
    ['a JSON null body', 'null', 400, 'invalid_command'],
    ['an empty batch', { commands: [] }, 400, 'invalid_command'],
    ['commands that is not an array', { commands: 'nope' }, 400, 'invalid_command'],
    ['a duplicate clientId within one batch', { commands: [deposit('dup', 'alice', 5), deposit('dup', 'bob', 5)] }, 400, 'duplicate_client_id_in_batch'],
    ['too many commands', { commands: Array.from({ length: MAX_COMMANDS + 1 }, (_, i) => deposit(`many-${i}`, 'alice', 1)) }, 413, 'too_many_commands'],
  ];

  it.each(bad.map(([name, body, status, code]) => ({ name, body, status, code })))('$name → $status $code', async ({ body, status, code }) => {
    const { core, app } = setup();
    await post(app, deposit('seed', 'alice', 1_000_000));
    const seqBefore = core.log.lastSeq();
    const hashBefore = core.stateHash;
    const r = await post(app, body);
    expect(r.status).toBe(status);
    expect(r.json?.error?.code).toBe(code);
    expect(typeof r.json?.error?.message).toBe('string');
    expect(core.log.lastSeq()).toBe(seqBefore);
    expect(core.seq).toBe(seqBefore);
    expect(core.stateHash).toBe(hashBefore);
  });

  it('a wrong content-type is 415 unsupported_media_type', async () => {
    const { core, app } = setup();
    for (const headers of [{ 'content-type': 'text/plain' }, {} as Record<string, string>, { 'content-type': 'application/jsonx' }]) {
      const r = await post(app, deposit('ct', 'alice', 5), headers);
      expect(r.status).toBe(415);
      expect(r.json.error.code).toBe('unsupported_media_type');
    }
    expect(core.log.lastSeq()).toBe(0);
    // A charset parameter is fine.
    expect((await post(app, deposit('ct', 'alice', 5), { 'content-type': 'application/json; charset=utf-8' })).status).toBe(200);
  });

  it('a body over maxBodyBytes is 413 body_too_large, with or without content-length', async () => {
    const { core, app } = setup();
    const hashBefore = core.stateHash;
    // Valid JSON that is only too large: { ...deposit, pad } would also be an unknown field, so
    // the size check must be what answers.
    const big = JSON.stringify(deposit('big', 'alice', 5)).replace('{', `{${' '.repeat(MAX_BODY_BYTES)}`);
    expect(big.length).toBeGreaterThan(MAX_BODY_BYTES);
    const withLength = await post(app, big, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(big)) });
    expect(withLength.status).toBe(413);
    expect(withLength.json.error.code).toBe('body_too_large');
    // Streamed body with no content-length: the limit is enforced while reading.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const res = await app.request('/v1/commands', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: OPERATOR },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as Json).error.code).toBe('body_too_large');
    expect(core.log.lastSeq()).toBe(0);
    expect(core.stateHash).toBe(hashBefore);
  });
});

describe('POST /v1/commands: idempotency', () => {
  it('the same clientId and command twice answers the stored entry as a duplicate', async () => {
    const { core, app } = setup();
    const first = await post(app, deposit('idem', 'alice', 500));
    const second = await post(app, deposit('idem', 'alice', 500));
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(first.json.duplicate).toBe(false);
    expect(second.json).toMatchObject({ duplicate: true, seq: first.json.seq, tsMs: first.json.tsMs, result: first.json.result });
    expect(core.log.lastSeq()).toBe(1);
    expect(core.machine.account('alice')?.collateral).toBe(500);
  });

  it('a duplicate of a rejected command keeps the reject status', async () => {
    const { core, app } = setup();
    const first = await post(app, { clientId: 'rj', type: 'withdraw', account: 'ghost', amount: 1 });
    const second = await post(app, { clientId: 'rj', type: 'withdraw', account: 'ghost', amount: 1 });
    expect(first.status).toBe(404);
    expect(second.status).toBe(404);
    expect(second.json).toMatchObject({ duplicate: true, seq: 1 });
    expect(core.log.lastSeq()).toBe(1);
  });

  it('the same clientId with a different command is 409 idempotency_conflict and changes nothing', async () => {
    const { core, app } = setup();
    await post(app, deposit('conf', 'alice', 500));
    const hash = core.stateHash;
    const r = await post(app, deposit('conf', 'alice', 501));
    expect(r.status).toBe(409);
    expect(r.json.error).toMatchObject({ code: 'idempotency_conflict', clientId: 'conf', seq: 1 });
    expect(core.log.lastSeq()).toBe(1);
    expect(core.stateHash).toBe(hash);
  });

  it('a conflicting clientId inside a batch is reported in its result slot', async () => {
    const { core, app } = setup();
    await post(app, deposit('conf', 'alice', 500));
    const r = await post(app, { commands: [deposit('conf', 'alice', 1), deposit('fresh', 'bob', 7)] });
    expect(r.status).toBe(200);
    expect(r.json.results[0].error).toMatchObject({ code: 'idempotency_conflict', seq: 1 });
    expect(r.json.results[1]).toMatchObject({ seq: 2, duplicate: false });
    expect(core.log.lastSeq()).toBe(2);
  });

  it('concurrent identical submissions get one seq', async () => {
    const { core, app } = setup();
    const [a, b] = await Promise.all([post(app, deposit('race', 'alice', 42)), post(app, deposit('race', 'alice', 42))]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.json.seq).toBe(1);
    expect(b.json.seq).toBe(1);
    expect([a.json.duplicate, b.json.duplicate].sort()).toEqual([false, true]);
    expect(core.log.lastSeq()).toBe(1);
    expect(core.machine.account('alice')?.collateral).toBe(42);
  });

  it('concurrent same clientId with different commands: one commits, the other conflicts', async () => {
    const { core, app } = setup();
    const [a, b] = await Promise.all([post(app, deposit('race2', 'alice', 1)), post(app, deposit('race2', 'alice', 2))]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    expect(core.log.lastSeq()).toBe(1);
  });
});

describe('POST /v1/commands: overload', () => {
  it('a batch larger than the free queue space is 429 overloaded with retry-after; nothing logged', async () => {
    const { core, app } = setup({ maxQueue: 5 });
    const hash = core.stateHash;
    const r = await post(app, { commands: Array.from({ length: 6 }, (_, i) => deposit(`ov-${i}`, 'alice', 1)) });
    expect(r.status).toBe(429);
    expect(r.json.error).toMatchObject({ code: 'overloaded', maxQueue: 5 });
    expect(r.res.headers.get('retry-after')).toBe('1');
    expect(core.log.lastSeq()).toBe(0);
    expect(core.stateHash).toBe(hash);
    expect(core.sequencer.queueDepth).toBe(0);
    // The same number that fits is accepted.
    const ok = await post(app, { commands: Array.from({ length: 5 }, (_, i) => deposit(`ok-${i}`, 'alice', 1)) });
    expect(ok.status).toBe(200);
    expect(core.log.lastSeq()).toBe(5);
  });
});

describe('after a log failure (halted core)', () => {
  it('POST answers 503 halted and reads never expose the state the log does not hold', async () => {
    const log = new MemoryCommandLog();
    const { core, app } = setup({ log });
    await post(app, deposit('ok', 'alice', 10));
    const durableHash = core.stateHash;
    log.append = () => {
      throw new Error('EIO');
    };
    const r = await post(app, deposit('lost', 'alice', 5));
    expect(r.status).toBe(503);
    expect(r.json.error.code).toBe('halted');
    expect((await post(app, deposit('later', 'alice', 5))).json.error.code).toBe('halted');
    expect(log.lastSeq()).toBe(1);

    // The client was told its deposit failed, so no read may show it: status reports the durable
    // seq (consistent with the stateHash it prints) and the account is not 15.
    const status = await get(app, '/v1/status');
    expect(status.json.halted).toBe(true);
    expect(status.json).toMatchObject({ seq: 1, stateHash: durableHash });
    const acct = await get(app, '/v1/accounts/alice');
    expect(acct.status === 200 ? acct.json.collateral : 'refused').not.toBe(15);
    // Read-your-writes must not report seq 2 as reached.
    expect((await get(app, '/v1/accounts/alice?minSeq=2&waitMs=0')).status).not.toBe(200);
  });
});

describe('read routes on the core', () => {
  it('GET /v1/status shows role, seq and stateHash', async () => {
    const { core, app } = setup();
    await post(app, deposit('s1', 'alice', 5));
    const { status, json, res } = await get(app, '/v1/status');
    expect(status).toBe(200);
    expect(json).toMatchObject({ role: 'primary', region: 'core', seq: 1, stateHash: core.stateHash, generation: core.publisher.generation, halted: false, accounts: 1 });
    expect(json.stateHash).toMatch(/^[0-9a-f]{64}$/);
    expect(res.headers.get('x-statemirror-seq')).toBe('1');
    expect(res.headers.get('x-statemirror-region')).toBe('core');
  });

  it('GET /v1/accounts/:id returns the authoritative view', async () => {
    const { core, app } = setup();
    await post(app, deposit('a1', 'alice', 77));
    const { status, json } = await get(app, '/v1/accounts/alice');
    expect(status).toBe(200);
    // The stored view, plus what the read adds from the marks: equity (no positions: the collateral).
    expect(json).toEqual({ ...core.machine.account('alice'), equity: 77 });
    expect((await get(app, '/v1/accounts/nobody')).json.error.code).toBe('unknown_account');
    expect((await app.request('/v1/accounts/bad%20id')).status).toBe(400);
  });

  it('minSeq beyond the current seq with waitMs=50 is 503 seq_not_reached with the current seq', async () => {
    const { app } = setup();
    await post(app, deposit('a1', 'alice', 77));
    const { status, json, res } = await get(app, '/v1/accounts/alice?minSeq=5&waitMs=50');
    expect(status).toBe(503);
    expect(json.error).toMatchObject({ code: 'seq_not_reached', seq: 1, minSeq: 5 });
    expect(res.headers.get('x-statemirror-seq')).toBe('1');
    expect(res.headers.get('retry-after')).toBe('1');
  });

  it('minSeq that a concurrent write reaches within waitMs answers 200', async () => {
    const { app } = setup();
    await post(app, deposit('a1', 'alice', 77));
    const read = get(app, '/v1/accounts/alice?minSeq=2&waitMs=1000');
    const write = post(app, deposit('a2', 'alice', 3));
    const [r] = await Promise.all([read, write]);
    expect(r.status).toBe(200);
    expect(r.json.collateral).toBe(80);
    expect(r.res.headers.get('x-statemirror-seq')).toBe('2');
  });

  it.each(['abc', '-1', '1.5', '99999999999999999'])('invalid minSeq %s is 400 invalid_query', async (minSeq) => {
    const { app } = setup();
    await post(app, deposit('a1', 'alice', 77));
    const { status, json } = await get(app, `/v1/accounts/alice?minSeq=${encodeURIComponent(minSeq)}`);
    expect(status).toBe(400);
    expect(json.error.code).toBe('invalid_query');
  });

  it('waitMs above minSeqWaitMsMax is 400 invalid_query', async () => {
    const { app } = setup();
    const { status, json } = await get(app, '/v1/status?minSeq=0&waitMs=1001');
    expect(status).toBe(400);
    expect(json.error.code).toBe('invalid_query');
  });

  it('GET /v1/markets/:symbol/book reflects the machine; unknown market is 404', async () => {
    const { core, app } = setup();
    await post(app, { commands: [deposit('d', 'alice', 1_000_000), order('o', 'alice', 'buy', 100, 4)] });
    const { status, json } = await get(app, `/v1/markets/${BTC}/book`);
    expect(status).toBe(200);
    expect(json).toEqual({ market: BTC, ...core.machine.book(BTC, 50), mark: null }); // no trade yet: no mark
    expect(json.bids).toEqual([{ price: 100, qty: 4, orders: 1 }]);
    expect((await get(app, '/v1/markets/NOPE/book')).status).toBe(404);
  });

  it('GET /v1/sync/info lists the generation and every doc', async () => {
    const { core, app } = setup();
    const { status, json } = await get(app, '/v1/sync/info');
    expect(status).toBe(200);
    expect(json.generation).toBe(core.publisher.generation);
    expect(json.role).toBe('primary');
    expect(json.docs).toEqual(['meta', 'acct-0', 'acct-1', 'acct-2', 'acct-3', `mkt-${BTC}`, 'mkt-ETH-USD']);
    expect(json.docs.every((d: string) => core.publisher.docs.has(d))).toBe(true);
  });

  it('an unknown route is 404 not_found', async () => {
    const { app } = setup();
    const { status, json } = await get(app, '/v1/nope');
    expect(status).toBe(404);
    expect(json.error.code).toBe('not_found');
    expect((await app.request('/v1/commands')).status).toBe(404);
  });

  it('over a real socket too: a chunked body over the limit is answered 413 with the JSON shape, and the node goes on', async () => {
    const { core, app } = setup();
    const server = await listen(app, '127.0.0.1', 0);
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        const s = connect(server.port, '127.0.0.1');
        let out = '';
        s.on('connect', () => {
          s.write(`POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: ${OPERATOR}\r\nTransfer-Encoding: chunked\r\n\r\n`);
          const chunk = ' '.repeat(40_000);
          for (let i = 0; i < 4; i++) s.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
          s.write('0\r\n\r\n');
        });
        s.on('data', (d) => {
          out += d;
          if (out.includes('}}')) {
            s.destroy();
            resolve(out);
          }
        });
        s.on('error', reject);
        s.on('close', () => resolve(out));
      });
      expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 413 Payload Too Large');
      expect(JSON.parse(answer.slice(answer.indexOf('{'))).error.code).toBe('body_too_large');
      const ok = await fetch(`${server.url}/v1/commands`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: OPERATOR }, body: JSON.stringify(deposit('after', 'alice', 5)) });
      expect(ok.status).toBe(200);
      expect(core.log.lastSeq()).toBe(1);
    } finally {
      await server.close();
    }
  });
});


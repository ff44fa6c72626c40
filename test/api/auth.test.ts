// Tokens on the HTTP API via app.request() (no sockets): POST /v1/commands needs a bearer token
// allowed to issue every command of the request (else 401/403 and nothing reaches the log); account
// reads need a token for that account, an operator or a cluster token; market data and status are
// public. The rules themselves live in src/auth/rules.ts; this checks the routes apply them.
import { afterEach, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { sign } from 'hono/jwt';
import { signToken, type Claims } from '../../src/auth/tokens.js';
import { mountReadRoutes, type ReadModel } from '../../src/http/read-routes.js';
import type { Core } from '../../src/publish/core.js';
import type { AccountView } from '../../src/domain/types.js';
import { BTC, coreApp, makeCore } from '../core/helpers.js';

const SECRETS = { jwtSecret: 'auth-test-jwt-secret-0123456789abcdef0123', clusterSecret: 'auth-test-cluster-secret' };

const cores: Core[] = [];
afterEach(() => {
  for (const c of cores.splice(0)) c.close();
});

// Hono's json() is typed unknown; tests read fields freely.
type Json = any;

const user = (claims: Claims, ttlS?: number) => signToken(SECRETS.jwtSecret, claims, ttlS);
const operator = () => user({ sub: 'ops', role: 'operator' });
const account = (id: string) => user({ sub: id, role: 'account' });

const deposit = (clientId: string, acct: string, amount: number) => ({ clientId, type: 'deposit', account: acct, amount });
const order = (clientId: string, acct: string, side: 'buy' | 'sell' = 'buy') => ({ clientId, type: 'place_order', account: acct, market: BTC, side, price: 100, qty: 1 });

/** A core app whose alice and bob already have collateral (deposited by the operator). */
async function setup(): Promise<{ core: Core; app: Hono }> {
  const core = makeCore();
  cores.push(core);
  const app = coreApp(core, { secrets: SECRETS, maxBodyBytes: 65_536, maxCommandsPerRequest: 10 });
  const seeded = await post(app, { commands: [deposit('seed-a', 'alice', 1_000_000), deposit('seed-b', 'bob', 1_000_000)] }, await operator());
  expect(seeded.status).toBe(200);
  return { core, app };
}

async function post(app: Hono, body: unknown, token: string | null, headers: Record<string, string> = {}) {
  const res = await app.request('/v1/commands', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token !== null ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: JSON.stringify(body),
  });
  return { res, status: res.status, json: (await res.json()) as Json };
}

async function get(app: Hono, path: string, token: string | null) {
  const res = await app.request(path, token !== null ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { res, status: res.status, json: (await res.json()) as Json };
}

/** Runs `write` and checks it changed neither the log nor the state. */
async function expectNothingLogged(core: Core, write: () => Promise<unknown>): Promise<void> {
  const seq = core.log.lastSeq();
  const hash = core.stateHash;
  await write();
  expect(core.log.lastSeq()).toBe(seq);
  expect(core.seq).toBe(seq);
  expect(core.stateHash).toBe(hash);
}

describe('POST /v1/commands: authentication (401 unauthenticated)', () => {
  const nowS = () => Math.floor(Date.now() / 1000);
  const cases: Array<[string, () => Promise<string | null>]> = [
    ['no token', async () => null],
    ['a garbage token', async () => 'not.a.jwt'],
    ['an empty bearer', async () => ''],
    ['a token signed with another secret', () => signToken('some-other-secret-0123456789abcdef0123', { sub: 'ops', role: 'operator' })],
    ['a token signed with a negative ttl (already expired)', () => user({ sub: 'ops', role: 'operator' }, -1)],
    ['an expired token', () => sign({ sub: 'ops', role: 'operator', iat: nowS() - 120, exp: nowS() - 60 }, SECRETS.jwtSecret, 'HS256')],
    ['a token with an unknown role', () => sign({ sub: 'ops', role: 'admin' }, SECRETS.jwtSecret, 'HS256')],
    ['a replica-role token signed with the JWT secret', () => user({ sub: 'near', role: 'replica' })],
    ['an operator-role token signed with the cluster secret', () => signToken(SECRETS.clusterSecret, { sub: 'ops', role: 'operator' })],
  ];

  it.each(cases.map(([name, token]) => ({ name, token })))('$name → 401, log unchanged', async ({ token }) => {
    const { core, app } = await setup();
    const t = await token();
    await expectNothingLogged(core, async () => {
      const r = await post(app, deposit('d1', 'alice', 5), t);
      expect(r.status).toBe(401);
      expect(r.json.error.code).toBe('unauthenticated');
      expect(typeof r.json.error.message).toBe('string');
      expect(r.res.headers.get('www-authenticate')).toBe('Bearer');
    });
  });

  it('a token that is not a Bearer one is not taken', async () => {
    const { core, app } = await setup();
    await expectNothingLogged(core, async () => {
      const r = await post(app, deposit('d1', 'alice', 5), null, { authorization: `Basic ${await operator()}` });
      expect(r.status).toBe(401);
    });
  });

  it('parsing comes first: a malformed body is 400 even without a token', async () => {
    const { app } = await setup();
    const res = await app.request('/v1/commands', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"clientId":' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Json).error.code).toBe('malformed_json');
  });
});

describe('POST /v1/commands: authorization (403 forbidden)', () => {
  it('an account token cannot deposit or withdraw, even for itself', async () => {
    const { core, app } = await setup();
    const alice = await account('alice');
    await expectNothingLogged(core, async () => {
      for (const body of [deposit('d1', 'alice', 5), { clientId: 'w1', type: 'withdraw', account: 'alice', amount: 5 }]) {
        const r = await post(app, body, alice);
        expect(r.status).toBe(403);
        expect(r.json.error).toMatchObject({ code: 'forbidden', index: 0, clientId: body.clientId });
        expect(r.json.error.message).toMatch(/operator/);
      }
    });
  });

  it('an account token cannot order or cancel for another account', async () => {
    const { core, app } = await setup();
    const alice = await account('alice');
    await expectNothingLogged(core, async () => {
      for (const body of [order('o1', 'bob'), { clientId: 'x1', type: 'cancel_order', account: 'bob', orderId: 1 }]) {
        const r = await post(app, body, alice);
        expect(r.status).toBe(403);
        expect(r.json.error.code).toBe('forbidden');
        expect(r.json.error.message).toMatch(/bob/);
      }
    });
  });

  it('one forbidden command refuses the whole batch, with its index; nothing is logged', async () => {
    const { core, app } = await setup();
    const alice = await account('alice');
    await expectNothingLogged(core, async () => {
      const r = await post(app, { commands: [order('o1', 'alice'), order('o2', 'alice', 'sell'), order('o3', 'bob'), order('o4', 'alice')] }, alice);
      expect(r.status).toBe(403);
      expect(r.json.error).toMatchObject({ code: 'forbidden', index: 2, clientId: 'o3' });
    });
    // Nothing was recorded under those clientIds either: the same batch, fixed, goes through fresh.
    const fixed = await post(app, { commands: [order('o1', 'alice'), order('o2', 'alice', 'sell'), order('o4', 'alice')] }, alice);
    expect(fixed.status).toBe(200);
    expect(fixed.json.results.map((x: Json) => x.duplicate)).toEqual([false, false, false]);
  });

  it('a cluster token (role replica, cluster secret) cannot write', async () => {
    const { core, app } = await setup();
    const cluster = await signToken(SECRETS.clusterSecret, { sub: 'near', role: 'replica' }, 0);
    await expectNothingLogged(core, async () => {
      const r = await post(app, deposit('d1', 'alice', 5), cluster);
      expect(r.status).toBe(403);
      expect(r.json.error.code).toBe('forbidden');
    });
  });
});

describe('POST /v1/commands: allowed', () => {
  it('an account token orders and cancels for its own account', async () => {
    const { core, app } = await setup();
    const alice = await account('alice');
    const placed = await post(app, order('o1', 'alice'), alice);
    expect(placed.status).toBe(200);
    expect(placed.json.result.status).toBe('accepted');
    const cancelled = await post(app, { clientId: 'x1', type: 'cancel_order', account: 'alice', orderId: placed.json.seq }, alice);
    expect(cancelled.status).toBe(200);
    expect(cancelled.json.result.status).toBe('accepted');
    expect(core.log.lastSeq()).toBe(cancelled.json.seq);
  });

  it('an operator token does everything, for any account, in one batch', async () => {
    const { app } = await setup();
    const r = await post(
      app,
      {
        commands: [
          deposit('d1', 'carol', 1_000),
          { clientId: 'w1', type: 'withdraw', account: 'bob', amount: 10 },
          order('o1', 'alice'),
          order('o2', 'bob', 'sell'),
        ],
      },
      await operator(),
    );
    expect(r.status).toBe(200);
    expect(r.json.results.map((x: Json) => x.result.status)).toEqual(['accepted', 'accepted', 'accepted', 'accepted']);
  });
});

describe('reads', () => {
  it.each(['/v1/accounts/alice', '/v1/accounts/alice/positions'])('%s: own token and operator 200, other account 403, no token 401', async (path) => {
    const { app } = await setup();
    expect((await get(app, path, await account('alice'))).status).toBe(200);
    expect((await get(app, path, await operator())).status).toBe(200);
    const other = await get(app, path, await account('bob'));
    expect(other.status).toBe(403);
    expect(other.json.error.code).toBe('forbidden');
    const none = await get(app, path, null);
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('unauthenticated');
    expect((await get(app, path, 'garbage')).status).toBe(401);
  });

  it('the token is checked before a minSeq wait', async () => {
    const { app } = await setup();
    const t0 = performance.now();
    expect((await get(app, '/v1/accounts/alice?minSeq=999&waitMs=1000', await account('bob'))).status).toBe(403);
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('market data and status are public', async () => {
    const { app } = await setup();
    await post(app, order('o1', 'alice'), await account('alice'));
    const book = await get(app, `/v1/markets/${BTC}/book`, null);
    expect(book.status).toBe(200);
    expect(book.json.bids).toHaveLength(1);
    expect((await get(app, `/v1/markets/${BTC}/trades`, null)).status).toBe(200);
    expect((await get(app, '/v1/status', null)).status).toBe(200);
    expect((await get(app, '/v1/sync/info', null)).status).toBe(200);
  });

  it('read routes on any model (as a read node mounts them): cluster tokens read, user tokens as on the core', async () => {
    const view: AccountView = { id: 'alice', collateral: 5, marginRequired: 0, available: 5, positions: [], openOrders: [] };
    const model: ReadModel = {
      region: 'near',
      generation: () => 'g1',
      seqFor: () => 1,
      waitFor: async () => true,
      account: (id) => (id === 'alice' ? view : undefined),
      hasMarket: () => false,
      book: () => undefined,
      trades: () => [],
      status: () => ({}),
    };
    const app = new Hono();
    mountReadRoutes(app, model, { minSeqWaitMsDefault: 10, minSeqWaitMsMax: 10 }, SECRETS);
    expect((await get(app, '/v1/accounts/alice', await signToken(SECRETS.clusterSecret, { sub: 'far', role: 'replica' }, 0))).json).toMatchObject(view);
    expect((await get(app, '/v1/accounts/alice', await account('alice'))).status).toBe(200);
    expect((await get(app, '/v1/accounts/alice', await account('mallory'))).status).toBe(403);
    expect((await get(app, '/v1/accounts/alice', await user({ sub: 'far', role: 'replica' }))).status).toBe(401);
    expect((await get(app, '/v1/accounts/alice', null)).status).toBe(401);
    expect((await get(app, '/v1/status', null)).status).toBe(200);
  });
});

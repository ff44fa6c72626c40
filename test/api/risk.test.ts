// Issue 10's scenarios over HTTP with the committed config: every hostile step is answered (200 or
// a 4xx with a reason code, never 5xx), the core never halts, and money is conserved; plus the
// account read carries marks, unrealized PnL and equity, and the book its mark.
import { afterEach, describe, expect, it } from 'vitest';
import { signToken } from '../../src/auth/tokens.js';
import { EMBEDDED_DEFAULTS, parseConfig } from '../../src/config/schema.js';
import type { Core } from '../../src/publish/core.js';
import { coreApp, makeCore } from '../core/helpers.js';

const SECRETS = { jwtSecret: 'risk-test-jwt-secret-0123456789abcdef-xyz', clusterSecret: 'risk-test-cluster-secret' };
const OPERATOR = `Bearer ${await signToken(SECRETS.jwtSecret, { sub: 'ops', role: 'operator' })}`;
const config = parseConfig(EMBEDDED_DEFAULTS);
const cores: Core[] = [];
afterEach(() => {
  for (const c of cores.splice(0)) c.close();
});

function setup() {
  const core = makeCore({ domain: config.domain, layout: { accountShards: 4, markets: config.domain.markets.map((m) => m.symbol) } });
  cores.push(core);
  const app = coreApp(core, { secrets: SECRETS, maxBodyBytes: 65_536, maxCommandsPerRequest: 100 });
  let n = 0;
  const post = async (body: Record<string, unknown>) => {
    const res = await app.request('/v1/commands', {
      method: 'POST',
      headers: { authorization: OPERATOR, 'content-type': 'application/json' },
      body: JSON.stringify({ clientId: `c${++n}`, ...body }),
    });
    return { status: res.status, json: (await res.json()) as any };
  };
  const get = async (path: string) => {
    const res = await app.request(path, { headers: { authorization: OPERATOR } });
    return { status: res.status, json: (await res.json()) as any };
  };
  return { core, post, get };
}

describe('issue 10 scenarios over HTTP', () => {
  it('the overflow walk: 90 rounds of 1,000,000-lot orders at 1 and 100,000,000 never halt the core', async () => {
    const { core, post } = setup();
    expect((await post({ type: 'deposit', account: 'X', amount: 10_000_000 })).status).toBe(200);
    expect((await post({ type: 'deposit', account: 'Y', amount: 10_000_000 })).status).toBe(200);
    const codes = new Set<string>();
    for (let round = 0; round < 90; round++) {
      for (const [account, side, price] of [['Y', 'sell', 1], ['X', 'buy', 1], ['Y', 'buy', 100_000_000], ['X', 'sell', 100_000_000]] as const) {
        const r = await post({ type: 'place_order', account, market: 'SOL-USD', side, price, qty: 1_000_000 });
        expect(r.status === 200 || (r.status >= 400 && r.status < 500)).toBe(true);
        if (r.status !== 200) {
          const code: unknown = r.json.result?.code ?? r.json.error?.code;
          expect(typeof code).toBe('string');
          codes.add(code as string);
        }
      }
    }
    expect(codes).toContain('position_limit_exceeded');
    expect(core.sequencer.isHalted).toBe(false);
    expect(core.machine.valueSum()).toBe(core.machine.totalDeposits);
    expect((await post({ type: 'deposit', account: 'X', amount: 1 })).status).toBe(200);
  });

  it('a sell @1 into a bid @30,000 with collateral 1,000 answers 422 insufficient_collateral', async () => {
    const { core, post } = setup();
    await post({ type: 'deposit', account: 'A', amount: 1_000 });
    await post({ type: 'deposit', account: 'B', amount: 100_000_000 });
    expect((await post({ type: 'place_order', account: 'B', market: 'BTC-USD', side: 'buy', price: 30_000, qty: 1000 })).status).toBe(200);
    const r = await post({ type: 'place_order', account: 'A', market: 'BTC-USD', side: 'sell', price: 1, qty: 1000, tif: 'IOC' });
    expect(r.status).toBe(422);
    expect(r.json.result).toMatchObject({ status: 'rejected', code: 'insufficient_collateral' });
    expect(core.machine.account('A')).toMatchObject({ collateral: 1000, positions: [] });
  });

  it('reads carry the mark: book mark, positions marked, equity', async () => {
    const { post, get } = setup();
    await post({ type: 'deposit', account: 'A', amount: 1_000_000 });
    await post({ type: 'deposit', account: 'B', amount: 1_000_000 });
    await post({ type: 'place_order', account: 'B', market: 'BTC-USD', side: 'sell', price: 30_000, qty: 2 });
    await post({ type: 'place_order', account: 'A', market: 'BTC-USD', side: 'buy', price: 30_000, qty: 2, tif: 'IOC' });
    await post({ type: 'place_order', account: 'B', market: 'BTC-USD', side: 'buy', price: 30_500, qty: 1 });
    await post({ type: 'place_order', account: 'A', market: 'BTC-USD', side: 'sell', price: 30_500, qty: 1, tif: 'IOC' });
    expect((await get('/v1/markets/BTC-USD/book')).json.mark).toBe(30_500);
    const a = (await get('/v1/accounts/A')).json;
    expect(a.positions).toEqual([expect.objectContaining({ market: 'BTC-USD', qty: 1, costBasis: 30_000, mark: 30_500, unrealizedPnl: 500 })]);
    expect(a.equity).toBe(a.collateral + 500);
  });
});

describe('read versions (ETag)', () => {
  it('answers 304 to If-None-Match while the account is unchanged, 200 with a new ETag after it changes', async () => {
    const { post } = setup();
    const core = cores.at(-1)!;
    const app = coreApp(core, { secrets: SECRETS, maxBodyBytes: 65_536, maxCommandsPerRequest: 100 });
    const get = (path: string, etag?: string) => app.request(path, { headers: { authorization: OPERATOR, ...(etag ? { 'if-none-match': etag } : {}) } });
    await post({ type: 'deposit', account: 'A', amount: 100 });
    const first = await get('/v1/accounts/A');
    const etag = first.headers.get('etag')!;
    expect(first.status).toBe(200);
    expect(etag).toMatch(/^W\/"/);
    // Another account's write moves the seq but not A's version.
    await post({ type: 'deposit', account: 'B', amount: 5 });
    const again = await get('/v1/accounts/A', etag);
    expect(again.status).toBe(304);
    expect(Number(again.headers.get('x-statemirror-seq'))).toBe(2);
    await post({ type: 'deposit', account: 'A', amount: 1 });
    const changed = await get('/v1/accounts/A', etag);
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
    expect(((await changed.json()) as any).collateral).toBe(101);
    // The book too.
    const book = await get('/v1/markets/BTC-USD/book');
    expect((await get('/v1/markets/BTC-USD/book', book.headers.get('etag')!)).status).toBe(304);
  });
});

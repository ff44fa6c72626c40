// Read endpoints shared by the core (authoritative, in-memory) and the read nodes (their local Yjs
// copy): one ReadModel interface (replica/read-model.ts), one set of routes, so both answer
// identically. Every answer carries the seq it reflects and the region that served it; `?minSeq=N` waits (bounded) until the
// scope reaches N, else 503 seq_not_reached with the current seq — read-your-writes for a client
// that remembers the seq of its last write. Account routes need a bearer token for that account
// (or an operator/cluster token; auth/rules.ts decides); market data and status are public.
import type { Context, Hono } from 'hono';
import { withMarks, type ReadModel, type ReadScope } from '../replica/read-model.js';
import { authenticate, tokenFrom } from '../auth/tokens.js';
import { authorizeAccountRead } from '../auth/rules.js';
import { ACCOUNT_ID, TRADES_LIMIT_MAX, readQuerySchemas } from './schemas.js';
import type { z } from 'zod';
import type { AccountView } from '../domain/types.js';
import { requestError } from './errors.js';
import { headerOf } from './node-request.js';

export type { ReadModel, ReadScope };

export interface ReadLimits {
  minSeqWaitMsDefault: number;
  minSeqWaitMsMax: number;
}

const HEADER_SEQ = 'x-statemirror-seq';
const HEADER_REGION = 'x-statemirror-region';
const HEADER_GENERATION = 'x-statemirror-generation';

/** Entries the serialized-answer cache keeps (one per account or market read recently). */
const JSON_CACHE_MAX = 10_000;

/**
 * Serialized answers by key, reused while their version (the ETag) holds, so repeated reads of an
 * unchanged account or book cost no re-encoding. Bounded: the oldest entry goes first.
 */
class JsonCache {
  private readonly entries = new Map<string, { etag: string; body: string }>();

  body(key: string, etag: string, make: () => unknown): string {
    const hit = this.entries.get(key);
    if (hit && hit.etag === etag) return hit.body;
    const body = JSON.stringify(make());
    this.entries.delete(key);
    this.entries.set(key, { etag, body });
    if (this.entries.size > JSON_CACHE_MAX) this.entries.delete(this.entries.keys().next().value!);
    return body;
  }
}

/**
 * A version number per stored value object: the docs hand out the same object until the value
 * changes (Yjs), so identity is the change test. WeakMap: nothing is kept alive by it.
 */
const versions = new WeakMap<object, number>();
let nextVersion = 1;
function versionOf(v: object): number {
  let n = versions.get(v);
  if (n === undefined) versions.set(v, (n = nextVersion++));
  return n;
}

/** undefined when absent, null when invalid, else the value (schemas.ts readQuerySchemas, also in the OpenAPI document). */
function parseIntParam(raw: string | undefined, schema: z.ZodType<number, string>): number | null | undefined {
  if (raw === undefined) return undefined;
  const r = schema.safeParse(raw);
  return r.success ? r.data : null;
}

export function mountReadRoutes(app: Hono, model: ReadModel, limits: ReadLimits, secrets: { jwtSecret: string; clusterSecret: string }): void {
  const query = readQuerySchemas(limits.minSeqWaitMsMax);
  /** Applies minSeq/waitMs, sets headers; returns an error response or null to go on. */
  const consistency = async (c: Context, scope: ReadScope): Promise<Response | null> => {
    // Most reads carry no query string: skip parsing one.
    const plain = !c.req.url.includes('?');
    const minSeq = plain ? undefined : parseIntParam(c.req.query('minSeq'), query.minSeq);
    const waitMs = plain ? undefined : parseIntParam(c.req.query('waitMs'), query.waitMs);
    if (minSeq === null) return requestError(c, 'invalid_query', 'minSeq must be a non-negative integer');
    if (waitMs === null) return requestError(c, 'invalid_query', `waitMs must be an integer in 0..${limits.minSeqWaitMsMax}`);
    c.header(HEADER_REGION, model.region);
    if (minSeq !== undefined && model.seqFor(scope) < minSeq) {
      const reached = await model.waitFor(scope, minSeq, waitMs ?? limits.minSeqWaitMsDefault);
      if (!reached) {
        const seq = model.seqFor(scope);
        const at = model.generation();
        if (at !== null) c.header(HEADER_GENERATION, at);
        c.header(HEADER_SEQ, String(seq));
        c.header('retry-after', '1');
        return requestError(c, 'seq_not_reached', `replica at seq ${seq}, asked for ${minSeq}`, { seq, minSeq });
      }
    }
    // After any wait: the generation may have changed (a new leader) while we waited.
    const gen = model.generation();
    if (gen !== null) c.header(HEADER_GENERATION, gen);
    if (gen === null) {
      c.header(HEADER_SEQ, '0');
      c.header('retry-after', '1');
      return requestError(c, 'seq_not_reached', 'this node has not synced any state yet', { seq: 0, minSeq: minSeq ?? 0 });
    }
    c.header(HEADER_SEQ, String(model.seqFor(scope)));
    return null;
  };

  const cache = new JsonCache();
  /** 304 when the client holds this version (If-None-Match), else the cached or freshly serialized body. */
  const versioned = (c: Context, key: string, etag: string, make: () => unknown): Response => {
    c.header('etag', etag);
    if (headerOf(c, 'if-none-match') === etag) return c.body(null, 304);
    return c.body(cache.body(key, etag, make), 200, { 'content-type': 'application/json; charset=UTF-8' });
  };
  /** An account's version: its stored view and the marks of the markets it holds positions in. */
  const accountEtag = (view: AccountView, marks: (m: string) => number | null) =>
    `W/"${model.generation()}.${versionOf(view)}${view.positions.map((p) => `.${marks(p.market) ?? '-'}`).join('')}"`;
  const markOf = (m: string) => model.book(m)?.mark ?? null;

  /** The :id of an account route the bearer token may read (checked before any wait), or the error answer. */
  const accountParam = async (c: Context): Promise<string | Response> => {
    const id = c.req.param('id') ?? '';
    if (!ACCOUNT_ID.test(id)) return requestError(c, 'invalid_account_id', 'account id: 1-64 of A-Z a-z 0-9 _ . -');
    const claims = await authenticate(tokenFrom({ authorization: headerOf(c, 'authorization') }, c.req.url), secrets);
    const decision = authorizeAccountRead(claims, id);
    return decision.ok ? id : requestError(c, decision.code, decision.reason);
  };

  /** An account read: token, minSeq, the stored view, versioned (ETag) and shaped by `shape`. */
  const accountRead = (prefix: string, shape: (id: string, view: AccountView) => unknown) => async (c: Context) => {
    const id = await accountParam(c);
    if (id instanceof Response) return id;
    const early = await consistency(c, { kind: 'account', id });
    if (early) return early;
    const view = model.account(id);
    if (!view) return requestError(c, 'unknown_account', `no account ${id}`);
    return versioned(c, `${prefix}:${id}`, accountEtag(view, markOf), () => shape(id, view));
  };
  app.get('/v1/accounts/:id', accountRead('a', (_id, view) => withMarks(view, markOf)));
  app.get('/v1/accounts/:id/positions', accountRead('p', (id, view) => ({ account: id, positions: withMarks(view, markOf).positions })));

  app.get('/v1/markets/:symbol/book', async (c) => {
    const symbol = c.req.param('symbol');
    if (!model.hasMarket(symbol)) return requestError(c, 'unknown_market', `no market ${symbol}`);
    const early = await consistency(c, { kind: 'market', symbol });
    if (early) return early;
    const book = model.book(symbol)!;
    const etag = `W/"${model.generation()}.${versionOf(book.bids)}.${versionOf(book.asks)}.${book.mark ?? '-'}"`;
    return versioned(c, `b:${symbol}`, etag, () => ({ market: symbol, ...book }));
  });

  app.get('/v1/markets/:symbol/trades', async (c) => {
    const symbol = c.req.param('symbol');
    if (!model.hasMarket(symbol)) return requestError(c, 'unknown_market', `no market ${symbol}`);
    const limit = parseIntParam(c.req.query('limit'), query.limit);
    if (limit === null) return requestError(c, 'invalid_query', `limit must be an integer in 0..${TRADES_LIMIT_MAX}`);
    const early = await consistency(c, { kind: 'market', symbol });
    if (early) return early;
    return c.json({ market: symbol, trades: model.trades(symbol, limit ?? 100) });
  });

  app.get('/v1/status', async (c) => {
    const early = await consistency(c, { kind: 'all' });
    if (early) return early;
    return c.json({ region: model.region, generation: model.generation(), seq: model.seqFor({ kind: 'all' }), ...model.status() });
  });
}

// The OpenAPI 3.1 document a node serves at GET /openapi.json: every route of that kind of node
// (core or read node), with request bodies built from the SAME zod schemas the write route
// validates with (schemas.ts commandSchemas: markets, limits and strictness come from this node's
// config) and responses from the zod schemas below, which the tests also parse real answers with.
// zod 4's own z.toJSONSchema turns them into JSON Schema 2020-12, which OpenAPI 3.1 accepts as is.
// Invariants: built once per node (it depends only on the config); test/api/openapi.test.ts keeps
// the document and the registered routes equal, both ways.
import { z } from 'zod';
import { REJECT_CODES, type DomainConfig } from '../domain/types.js';
import { REJECT_HTTP, REQUEST_ERROR_HTTP } from './errors.js';
import { commandSchemas, readQuerySchemas } from './schemas.js';

const int = () => z.number().int();

/**
 * Every code a route answers with: request errors (errors.ts REQUEST_ERROR_HTTP), business
 * rejections (REJECT_HTTP), and the few answered outside requestError (a body that broke off, an
 * internal fault, a full session table).
 */
export const errorCodeSchema = z.enum([
  ...(Object.keys(REQUEST_ERROR_HTTP) as (keyof typeof REQUEST_ERROR_HTTP)[]),
  ...(Object.keys(REJECT_HTTP) as (keyof typeof REJECT_HTTP)[]),
  'request_aborted',
  'internal',
  'too_many_sessions',
]);

/**
 * `{"error":{"code","message",…details}}`: every error answer, HTTP or session. The code is one of
 * errorCodeSchema's, or one the HTTP server answers before any route (server.ts: a request the
 * parser refused, a bad WebSocket handshake, too many connections).
 */
export const errorBodySchema = z.looseObject({
  error: z.looseObject({
    code: z.union([
      errorCodeSchema,
      z.string().regex(/^[a-z0-9_]{1,64}$/).describe('a protocol error answered before any route: headers_too_large, bad_chunk_encoding, conflicting_length, expectation_failed, missing_host, bad_websocket_key, too_many_connections, …'),
    ]),
    message: z.string(),
  }),
});

const fillSchema = z.object({ makerOrderId: int(), makerAccount: z.string(), price: int(), qty: int() });
export const resultSchema = z.union([
  z.looseObject({
    status: z.literal('accepted'),
    orderId: int().optional(),
    fills: z.array(fillSchema).optional(),
    restingQty: int().optional(),
    cancelledQty: int().optional(),
    selfTradeCancelled: z.array(int()).optional(),
    bandCancelled: z.array(int()).optional(),
    liquidated: z.array(z.looseObject({})).optional(),
    collateral: int().optional(),
  }),
  z.object({ status: z.literal('rejected'), code: z.enum(REJECT_CODES), detail: z.string().optional() }),
]);

/** One acknowledged command (committed on a majority); a retry of its clientId answers duplicate: true. */
export const commandAnswerSchema = z.object({ clientId: z.string(), seq: int(), tsMs: int(), duplicate: z.boolean(), result: resultSchema });
export const batchAnswerSchema = z.object({ results: z.array(z.union([commandAnswerSchema, errorBodySchema])) });

const positionSchema = z.looseObject({
  market: z.string(),
  qty: int(),
  costBasis: int(),
  avgEntryPrice: int(),
  realizedPnl: int(),
  mark: int().nullable().optional(),
  unrealizedPnl: int().nullable().optional(),
});
const orderSchema = z.looseObject({ orderId: int(), account: z.string(), market: z.string(), side: z.enum(['buy', 'sell']), price: int(), qty: int(), remaining: int(), tif: z.enum(['GTC', 'IOC']), seq: int() });
export const accountSchema = z.looseObject({
  id: z.string(),
  collateral: int(),
  marginRequired: int(),
  available: int(),
  equity: int().optional(),
  positions: z.array(positionSchema),
  openOrders: z.array(orderSchema),
});
export const positionsSchema = z.object({ account: z.string(), positions: z.array(positionSchema) });
const levelSchema = z.object({ price: int(), qty: int(), orders: int() });
export const bookSchema = z.looseObject({ market: z.string(), bids: z.array(levelSchema), asks: z.array(levelSchema) });
export const tradesSchema = z.object({
  market: z.string(),
  trades: z.array(z.looseObject({ seq: int(), tsMs: int(), market: z.string(), price: int(), qty: int(), takerSide: z.enum(['buy', 'sell']), makerOrderId: int(), takerOrderId: int() })),
});
export const syncInfoSchema = z.looseObject({ generation: z.string(), seq: int(), epoch: int(), docs: z.array(z.string()) });
export const statusSchema = z.looseObject({ role: z.string(), seq: int().optional(), epoch: int().optional() });
export const overviewSchema = z.looseObject({ self: z.string(), at: int(), nodes: z.array(z.looseObject({})), regions: z.array(z.looseObject({})), events: z.array(z.looseObject({})) });

type Json = Record<string, unknown>;
/**
 * JSON Schema 2020-12 of a zod schema: 'input' for what a client sends (a field with a default is
 * optional), 'output' for what a node answers or a route parses into. $schema dropped: 2020-12 is
 * OpenAPI 3.1's own dialect.
 */
const json = (schema: z.ZodType, io: 'input' | 'output' = 'output'): Json => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  return rest;
};
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const jsonContent = (name: string) => ({ 'application/json': { schema: ref(name) } });
const errorResponse = (description: string) => ({ description, content: jsonContent('Error') });

/** Query parameters from the schemas the read routes parse with (schemas.ts readQuerySchemas; 'output': the integer a digit string must become). */
const consistencyParams = (waitMsMax: number) => {
  const q = readQuerySchemas(waitMsMax);
  return [
    { name: 'minSeq', in: 'query', required: false, schema: json(q.minSeq), description: 'read-your-writes: wait until this node holds seq ≥ minSeq (the seq of your write), else 503 seq_not_reached' },
    { name: 'waitMs', in: 'query', required: false, schema: json(q.waitMs), description: 'how long to wait for minSeq (default readNode.minSeqWaitMsDefault, at most readNode.minSeqWaitMsMax)' },
  ];
};
const limitParam = (waitMsMax: number) => ({ name: 'limit', in: 'query', required: false, schema: json(readQuerySchemas(waitMsMax).limit), description: 'how many of the last trades (default 100)' });
const readHeaders = {
  'x-statemirror-seq': { description: 'the seq this answer reflects', schema: { type: 'integer' } },
  'x-statemirror-region': { description: 'the region (or core) that answered', schema: { type: 'string' } },
  'x-statemirror-generation': { description: 'the Yjs generation read from', schema: { type: 'string' } },
};
const readErrors = {
  '400': errorResponse('invalid_query, invalid_account_id'),
  '401': errorResponse('unauthenticated: no valid bearer token'),
  '403': errorResponse("forbidden: another account's data"),
  '404': errorResponse('unknown_account / unknown_market'),
  '503': errorResponse('seq_not_reached (minSeq not reached within waitMs, or nothing synced yet); not_primary on a core standby'),
};
const pathParam = (name: string, description: string) => ({ name, in: 'path', required: true, schema: { type: 'string' }, description });

function readPaths(waitMsMax: number): Json {
  const versioned = (name: string, summary: string, auth: boolean, params: Json[]) => ({
    get: {
      summary,
      ...(auth ? { security: [{ bearer: [] }] } : { security: [] }),
      parameters: [...params, ...consistencyParams(waitMsMax), { name: 'If-None-Match', in: 'header', required: false, schema: { type: 'string' } }],
      responses: {
        '200': { description: 'the committed state this node holds', headers: { ...readHeaders, ETag: { schema: { type: 'string' } } }, content: jsonContent(name) },
        '304': { description: 'unchanged since the ETag sent as If-None-Match' },
        ...readErrors,
      },
    },
  });
  return {
    '/v1/accounts/{id}': versioned('Account', 'an account: collateral, margin, equity, positions with marks, open orders', true, [pathParam('id', 'account id')]),
    '/v1/accounts/{id}/positions': versioned('Positions', "an account's positions", true, [pathParam('id', 'account id')]),
    '/v1/markets/{symbol}/book': versioned('Book', 'the book, best first, publish.bookDepth levels (public)', false, [pathParam('symbol', 'market symbol')]),
    '/v1/markets/{symbol}/trades': {
      get: {
        summary: 'the last trades of a market (public)',
        security: [],
        parameters: [pathParam('symbol', 'market symbol'), limitParam(waitMsMax), ...consistencyParams(waitMsMax)],
        responses: { '200': { description: 'trades, oldest first', headers: readHeaders, content: jsonContent('Trades') }, ...readErrors },
      },
    },
  };
}

function operationalPaths(kind: 'core' | 'read', waitMsMax: number): Json {
  const text = (type: string, description: string) => ({ description, content: { [type]: { schema: { type: 'string' } } } });
  return {
    '/v1/status': {
      get: {
        summary: `this ${kind === 'core' ? 'core node' : 'read node'}'s role, seq, epoch and health (public)`,
        security: [],
        parameters: consistencyParams(waitMsMax),
        responses: {
          '200': { description: 'status', headers: readHeaders, content: jsonContent('Status') },
          '400': errorResponse('invalid_query'),
          '503': errorResponse('seq_not_reached (minSeq not reached within waitMs, or nothing synced yet)'),
        },
      },
    },
    '/v1/sync/info': {
      get: {
        summary: 'the generation and docs a read node syncs from here (public)',
        security: [],
        responses: { '200': { description: 'sync info', content: jsonContent('SyncInfo') }, '503': errorResponse('not_primary / seq_not_reached: nothing to sync from here') },
      },
    },
    '/v1/overview': { get: { summary: 'the cluster as this node sees it: core nodes, regions, lag history, events (public)', security: [], responses: { '200': { description: 'overview', content: jsonContent('Overview') } } } },
    '/metrics': { get: { summary: 'Prometheus metrics (public)', security: [], responses: { '200': text('text/plain', 'Prometheus text format 0.0.4') } } },
    '/cluster': { get: { summary: 'the live cluster page', security: [], responses: { '200': text('text/html', 'HTML page') } } },
    '/cluster.js': { get: { summary: "the cluster page's script", security: [], responses: { '200': text('text/javascript', 'bundled script') } } },
    '/openapi.json': { get: { summary: 'this document', security: [], responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } } } },
    '/sync/{generation}/{doc}': {
      get: {
        summary: 'read-only y-websocket room (WebSocket upgrade); docs/read-path.md',
        description: 'meta and mkt-* are public; acct-* need an operator or cluster token; view-<id> needs account <id> (Authorization header or ?token=). Refusals close with 4401/4403.',
        security: [],
        parameters: [pathParam('generation', 'generation id from /v1/sync/info'), pathParam('doc', 'doc name')],
        responses: { '101': { description: 'switching protocols' }, '400': errorResponse('bad WebSocket handshake'), '404': errorResponse('not_found') },
      },
    },
  };
}

function corePaths(command: z.ZodType, batch: z.ZodType): Json {
  return {
    '/v1/commands': {
      post: {
        summary: 'sequence commands; answered once durable on a majority of the core',
        description: 'One command or {commands:[…]}; checks in order: 413 → 415 → 400 → 401/403 → 503 not_primary → sequencer. A retry with the same clientId answers the stored entry (duplicate: true).',
        security: [{ bearer: [] }],
        requestBody: { required: true, content: { 'application/json': { schema: { oneOf: [json(command, 'input'), json(batch, 'input')] } } } },
        responses: {
          '200': { description: 'committed: one answer, or {results} for a batch (business rejections inside)', content: { 'application/json': { schema: { oneOf: [ref('CommandAnswer'), ref('BatchAnswer')] } } } },
          '400': errorResponse('malformed_json, invalid_command, unknown_field, duplicate_client_id_in_batch'),
          '401': errorResponse('unauthenticated'),
          '403': { description: 'forbidden (the token may not issue a command; index and clientId), or the business rejection not_order_owner', content: { 'application/json': { schema: { oneOf: [ref('Error'), ref('CommandAnswer')] } } } },
          '404': { description: 'business rejection: unknown_account, unknown_market, unknown_order (single command, logged with its seq)', content: jsonContent('CommandAnswer') },
          '409': errorResponse('idempotency_conflict: the clientId was used for a different command'),
          '413': errorResponse('body_too_large, too_many_commands'),
          '415': errorResponse('unsupported_media_type'),
          '422': { description: 'business rejection: insufficient_collateral, amount_limit_exceeded, price_out_of_range, qty_out_of_range, price_out_of_band, deposit_limit_exceeded', content: jsonContent('CommandAnswer') },
          '429': { description: 'overloaded (Retry-After), or a business limit: too_many_orders, too_many_accounts, position_limit_exceeded, open_interest_limit_exceeded', content: { 'application/json': { schema: { oneOf: [ref('Error'), ref('CommandAnswer')] } } } },
          '503': errorResponse('not_primary (leader, leaderUrl), commit_timeout, halted: retry with the same clientId'),
        },
      },
    },
    '/v1/session': {
      get: {
        summary: 'order-entry session (WebSocket upgrade, MessagePack frames); docs/order-entry.md',
        security: [{ bearer: [] }],
        responses: { '101': { description: 'switching protocols' }, '401': errorResponse('unauthenticated'), '429': errorResponse('too_many_sessions'), '503': errorResponse('not_primary') },
      },
    },
    '/v1/cluster/snapshots': {
      get: { summary: "this node's snapshot files (cluster secret)", security: [{ cluster: [] }], responses: { '200': { description: 'list', content: { 'application/json': { schema: { type: 'object' } } } }, '401': errorResponse('unauthenticated') } },
    },
    '/v1/cluster/snapshots/{seq}': {
      get: {
        summary: 'one snapshot file, Range-resumable (cluster secret)',
        security: [{ cluster: [] }],
        parameters: [pathParam('seq', 'the snapshot seq')],
        responses: { '200': { description: 'file', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, '206': { description: 'range' }, '401': errorResponse('unauthenticated'), '404': errorResponse('not_found'), '416': errorResponse('range_not_satisfiable') },
      },
    },
  };
}

function dashboardPaths(): Json {
  const html = { description: 'HTML page', content: { 'text/html': { schema: { type: 'string' } } } };
  return {
    '/': { get: { summary: 'redirects to /dashboard', security: [], responses: { '302': { description: 'redirect' } } } },
    '/dashboard': { get: { summary: 'the regional dashboard (?account=&token=&market=)', security: [], responses: { '200': html } } },
    '/dashboard.js': { get: { summary: "the dashboard's script", security: [], responses: { '200': { description: 'script', content: { 'text/javascript': { schema: { type: 'string' } } } } } } },
  };
}

/**
 * The document of one kind of node. A core node serves the writes, sessions, snapshots and the
 * reads of its published state; a read node the reads and the dashboard.
 */
export function apiDocument(
  opts: ({ kind: 'core'; domain: DomainConfig; maxCommandsPerRequest: number } | { kind: 'read' }) & { readLimits: { minSeqWaitMsMax: number } },
): Json {
  const paths: Json = { ...readPaths(opts.readLimits.minSeqWaitMsMax), ...operationalPaths(opts.kind, opts.readLimits.minSeqWaitMsMax) };
  if (opts.kind === 'core') {
    const { command, batch } = commandSchemas(opts.domain, opts.maxCommandsPerRequest);
    Object.assign(paths, corePaths(command, batch));
  } else {
    Object.assign(paths, dashboardPaths());
  }
  return {
    openapi: '3.1.0',
    info: {
      title: opts.kind === 'core' ? 'statemirror core node' : 'statemirror read node',
      version: '0.1.0',
      description: 'State replication for a trading exchange. Errors always answer {"error":{"code","message",…}}. Integers only for money, prices and quantities.',
    },
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'operator or account token (statemirror token)' },
        cluster: { type: 'http', scheme: 'bearer', description: 'the cluster secret (core nodes and read nodes only)' },
      },
      schemas: {
        Error: json(errorBodySchema),
        CommandAnswer: json(commandAnswerSchema),
        BatchAnswer: json(batchAnswerSchema),
        Account: json(accountSchema),
        Positions: json(positionsSchema),
        Book: json(bookSchema),
        Trades: json(tradesSchema),
        Status: json(statusSchema),
        SyncInfo: json(syncInfoSchema),
        Overview: json(overviewSchema),
      },
    },
  };
}

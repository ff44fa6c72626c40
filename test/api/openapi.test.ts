// GET /openapi.json against the routes it documents: a core node's and a read node's document
// list exactly the routes their hono apps register (both ways), every $ref resolves, every
// operation has responses, the command body schema is the one the route validates with (markets
// and limits of this config), and real answers parse with the response schemas the document is
// built from.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import type { Hono } from 'hono';
import { startCluster, type Cluster } from '../../src/cli/cluster.js';
import { accountSchema, batchAnswerSchema, bookSchema, commandAnswerSchema, errorBodySchema, errorCodeSchema, statusSchema, syncInfoSchema, tradesSchema } from '../../src/http/api-doc.js';
import { get, operatorToken, post, tempDir, testConfig } from '../e2e/helpers.js';

const config = testConfig();
let cluster: Cluster;
let dir: string;

beforeAll(async () => {
  dir = tempDir('sm-openapi-');
  cluster = await startCluster(config, { ephemeralPorts: true, dataRoot: dir, discoveryIntervalMs: 100 });
});

afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** "METHOD /path/{param}" for every route an app registers (middleware excluded). */
function routesOf(app: Hono): string[] {
  const out = new Set<string>();
  for (const r of app.routes) {
    if (r.method === 'ALL') continue;
    out.add(`${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`);
  }
  return [...out].sort();
}

/** "METHOD /path" for every operation of a document (WebSocket upgrades are documented as GET but are not hono routes). */
function documented(doc: any): { http: string[]; upgrades: string[] } {
  const http: string[] = [];
  const upgrades: string[] = [];
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(item)) (op.responses['101'] ? upgrades : http).push(`${method.toUpperCase()} ${path}`);
  }
  return { http: http.sort(), upgrades: upgrades.sort() };
}

function checkStructure(doc: any): void {
  expect(doc.openapi).toMatch(/^3\.1\./);
  const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
  expect(refs.length).toBeGreaterThan(10);
  for (const ref of refs) {
    const path = ref.slice(8, -1).replace(/^#\//, '').split('/');
    let at: any = doc;
    for (const part of path) at = at?.[part];
    expect(at, ref).toBeDefined();
  }
  for (const item of Object.values<any>(doc.paths)) for (const op of Object.values<any>(item)) expect(Object.keys(op.responses).length).toBeGreaterThan(0);
}

describe('GET /openapi.json', () => {
  it('documents exactly the routes of a core node and of a read node', async () => {
    const core = cluster.cores[0]!;
    const region = [...cluster.regions.values()][0]!;
    const coreDoc = (await get(`${core.url}/openapi.json`, null)).body;
    const readDoc = (await get(`${region.url}/openapi.json`, null)).body;
    checkStructure(coreDoc);
    checkStructure(readDoc);
    expect(documented(coreDoc).http).toEqual(routesOf(core.app));
    expect(documented(readDoc).http).toEqual(routesOf(region.node.app!));
    expect(documented(coreDoc).upgrades).toEqual(['GET /sync/{generation}/{doc}', 'GET /v1/session']);
    expect(documented(readDoc).upgrades).toEqual(['GET /sync/{generation}/{doc}']);
    // The body schema is the route's own: this config's markets, strict objects, integer limits.
    const body = JSON.stringify(coreDoc.paths['/v1/commands'].post.requestBody);
    expect(body).toContain('"BTC-USD"');
    expect(body).toContain('"ETH-USD"');
    expect(body).toContain('"additionalProperties":false');
    expect(body).toContain(`"maximum":${config.domain.limits.maxAmount}`);
    // The read routes' bounds are this config's too (read-routes.ts refuses waitMs above it).
    for (const doc of [coreDoc, readDoc]) {
      const waitMs = doc.paths['/v1/accounts/{id}'].get.parameters.find((p: { name: string }) => p.name === 'waitMs');
      expect(waitMs.schema.maximum).toBe(config.readNode.minSeqWaitMsMax);
    }
    // A request body is documented as what a client sends: tif has a default, so it is optional.
    const place = coreDoc.paths['/v1/commands'].post.requestBody.content['application/json'].schema.oneOf[0].oneOf.find(
      (c: any) => c.properties.type.const === 'place_order',
    );
    expect(place.required).not.toContain('tif');
    expect(place.properties.tif.enum).toEqual(['GTC', 'IOC']);
    const limit = coreDoc.paths['/v1/markets/{symbol}/trades'].get.parameters.find((p: { name: string }) => p.name === 'limit');
    expect(limit.schema).toEqual({ type: 'integer', minimum: 0, maximum: 1000 });
  });

  it('the read routes refuse the query parameters the document rules out', async () => {
    const region = [...cluster.regions.values()][0]!;
    const cases: [string, string][] = [
      ['/v1/markets/BTC-USD/trades?limit=1001', 'limit must be an integer in 0..1000'],
      ['/v1/markets/BTC-USD/trades?limit=-1', 'limit must be an integer in 0..1000'],
      ['/v1/markets/BTC-USD/book?minSeq=1e3', 'minSeq must be a non-negative integer'],
      ['/v1/markets/BTC-USD/book?minSeq=', 'minSeq must be a non-negative integer'],
      ['/v1/markets/BTC-USD/book?minSeq=99999999999999999', 'minSeq must be a non-negative integer'],
      [`/v1/status?minSeq=0&waitMs=${config.readNode.minSeqWaitMsMax + 1}`, `waitMs must be an integer in 0..${config.readNode.minSeqWaitMsMax}`],
    ];
    for (const [path, message] of cases) {
      const r = await get(`${region.url}${path}`, null);
      expect(r.status, path).toBe(400);
      expect(errorBodySchema.parse(r.body).error).toMatchObject({ code: 'invalid_query', message });
    }
    const ok = await get(`${region.url}/v1/markets/BTC-USD/trades?limit=0&minSeq=0&waitMs=${config.readNode.minSeqWaitMsMax}`, null);
    expect(ok.status).toBe(200);
    expect(tradesSchema.parse(ok.body).trades).toEqual([]);
  });

  it('real answers parse with the documented response schemas', async () => {
    const core = cluster.cores[0]!;
    const region = [...cluster.regions.values()][0]!;
    const w = await post(`${core.url}/v1/commands`, { clientId: 'oa-1', type: 'deposit', account: 'alice', amount: 100 });
    expect(w.status).toBe(200);
    commandAnswerSchema.parse(w.body);
    const rejected = await post(`${core.url}/v1/commands`, { clientId: 'oa-2', type: 'withdraw', account: 'alice', amount: 1000 });
    expect(rejected.status).toBe(422);
    expect(commandAnswerSchema.parse(rejected.body).result).toMatchObject({ status: 'rejected', code: 'insufficient_collateral' });
    const batch = await post(`${core.url}/v1/commands`, { commands: [{ clientId: 'oa-3', type: 'deposit', account: 'bob', amount: 5 }] });
    batchAnswerSchema.parse(batch.body);
    const bad = await fetch(`${core.url}/v1/commands`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
    expect(bad.status).toBe(400);
    // Codes a route answers with are in the documented enum (not merely snake_case).
    expect(errorCodeSchema.parse(errorBodySchema.parse(await bad.json()).error.code)).toBe('malformed_json');
    const acct = await get(`${region.url}/v1/accounts/alice?minSeq=${w.body.seq}`);
    expect(acct.status).toBe(200);
    accountSchema.parse(acct.body);
    const again = await fetch(`${region.url}/v1/accounts/alice`, { headers: { authorization: `Bearer ${await operatorToken(config)}`, 'if-none-match': acct.headers.get('etag')! } });
    expect(again.status).toBe(304);
    bookSchema.parse((await get(`${region.url}/v1/markets/BTC-USD/book`, null)).body);
    tradesSchema.parse((await get(`${region.url}/v1/markets/BTC-USD/trades?limit=5`, null)).body);
    statusSchema.parse((await get(`${region.url}/v1/status`, null)).body);
    statusSchema.parse((await get(`${core.url}/v1/status`, null)).body);
    syncInfoSchema.parse((await get(`${core.url}/v1/sync/info`, null)).body);
    expect(errorCodeSchema.parse(errorBodySchema.parse((await get(`${region.url}/v1/markets/NOPE/book`, null)).body).error.code)).toBe('unknown_market');
  });
});

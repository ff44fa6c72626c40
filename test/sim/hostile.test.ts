// Property test: a seeded stream of malformed and hostile HTTP requests and WebSocket messages
// against the core and a read node. Every request is refused with a 4xx and a reason code (never a
// 5xx, never a crash); afterwards the log, the state hash and every replica are exactly as before.
// SIM_SEED reproduces a run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';
import * as syncProtocol from 'y-protocols/sync';
import { startCluster, type Cluster } from '../../src/cli/cluster.js';
import { signToken } from '../../src/auth/tokens.js';
import { mulberry32, type Rng } from '../../sim/prng.js';
import { accountShardDoc, shardOf } from '../../src/publish/layout.js';
import { tempDir, testConfig } from '../e2e/helpers.js';

const SEED = Number(process.env.SIM_SEED ?? Math.floor(Math.random() * 2 ** 31));
const REQUESTS = 400;
const WS_SESSIONS = 40;
const config = testConfig();
let cluster: Cluster;
let dir: string;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  dir = tempDir('sm-hostile-');
  cluster = await startCluster(config, { ephemeralPorts: true, dataRoot: dir, discoveryIntervalMs: 100 });
  const s = config.auth.jwtSecret;
  tokens.operator = await signToken(s, { sub: 'ops', role: 'operator' });
  tokens.alice = await signToken(s, { sub: 'alice', role: 'account' });
  tokens.expired = await signToken(s, { sub: 'alice', role: 'account' }, -10);
  tokens.wrongSecret = await signToken('x'.repeat(40), { sub: 'ops', role: 'operator' });
  tokens.clusterAsUser = await signToken(config.replication.clusterSecret, { sub: 'ops', role: 'operator' });
  const seed = await fetch(`${cluster.cores[0]!.url}/v1/commands`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.operator}` },
    body: JSON.stringify({
      commands: [
        { clientId: 's1', type: 'deposit', account: 'alice', amount: 100_000 },
        { clientId: 's2', type: 'deposit', account: 'bob', amount: 100_000 },
        { clientId: 's3', type: 'place_order', account: 'bob', market: 'BTC-USD', side: 'sell', price: 50, qty: 2 },
      ],
    }),
  });
  expect(seed.status).toBe(200);
});

afterAll(async () => {
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;

/** A valid command, then exactly one mutation that makes it invalid or unauthorized. */
function hostileRequest(rng: Rng): { path: string; method: string; headers: Record<string, string>; body?: string | Uint8Array } {
  const valid = pick(rng, [
    { clientId: `h${Math.floor(rng() * 1e9)}`, type: 'place_order', account: 'alice', market: 'BTC-USD', side: 'buy', price: 40, qty: 1 },
    { clientId: `h${Math.floor(rng() * 1e9)}`, type: 'deposit', account: 'alice', amount: 5 },
    { clientId: `h${Math.floor(rng() * 1e9)}`, type: 'cancel_order', account: 'bob', orderId: 3 },
  ] as Array<Record<string, unknown>>);
  const json = { 'content-type': 'application/json' };
  const op = { ...json, authorization: `Bearer ${tokens.operator}` };
  const field = pick(rng, Object.keys(valid).filter((k) => k !== 'type'));
  const mutations: Array<() => { path: string; method: string; headers: Record<string, string>; body?: string | Uint8Array }> = [
    () => ({ path: '/v1/commands', method: 'POST', headers: op, body: JSON.stringify(valid).slice(0, Math.floor(rng() * 30)) }), // truncated JSON
    () => ({ path: '/v1/commands', method: 'POST', headers: op, body: crypto.getRandomValues(new Uint8Array(1 + Math.floor(rng() * 200))) }),
    () => ({ path: '/v1/commands', method: 'POST', headers: op, body: JSON.stringify({ ...valid, [field]: pick(rng, [-1, 0.5, ' 1', null, [], {}, 1e300, -0, true, 'x'.repeat(300)]) }) }),
    () => ({ path: '/v1/commands', method: 'POST', headers: op, body: JSON.stringify({ ...valid, extra: 1 }) }),
    () => ({ path: '/v1/commands', method: 'POST', headers: op, body: `{"__proto__":{"admin":true},${JSON.stringify(valid).slice(1)}` }),
    () => ({ path: '/v1/commands', method: 'POST', headers: op, body: JSON.stringify({ ...valid, type: pick(rng, ['epoch_start', 'transfer', '', 'DEPOSIT']) }) }),
    () => ({ path: '/v1/commands', method: 'POST', headers: op, body: JSON.stringify({ commands: Array.from({ length: 101 }, (_, i) => ({ ...valid, clientId: `b${i}` })) }) }),
    () => ({ path: '/v1/commands', method: 'POST', headers: op, body: JSON.stringify({ commands: [valid, valid] }) }), // duplicate id in batch
    () => ({ path: '/v1/commands', method: 'POST', headers: op, body: 'x'.repeat(70_000) }),
    () => ({ path: '/v1/commands', method: 'POST', headers: op, body: '['.repeat(5000) + ']'.repeat(5000) }),
    () => ({ path: '/v1/commands', method: 'POST', headers: { authorization: op.authorization, 'content-type': 'text/plain' }, body: JSON.stringify(valid) }),
    () => ({ path: '/v1/commands', method: 'POST', headers: json, body: JSON.stringify(valid) }), // no token
    () => ({ path: '/v1/commands', method: 'POST', headers: { ...json, authorization: `Bearer ${pick(rng, [tokens.expired, tokens.wrongSecret, tokens.clusterAsUser, 'garbage', ''])}` }, body: JSON.stringify(valid) }),
    () => ({ path: '/v1/commands', method: 'POST', headers: { ...json, authorization: `Bearer ${tokens.alice}` }, body: JSON.stringify({ clientId: 'x1', type: 'deposit', account: 'alice', amount: 5 }) }),
    () => ({ path: '/v1/commands', method: 'POST', headers: { ...json, authorization: `Bearer ${tokens.alice}` }, body: JSON.stringify({ clientId: 'x2', type: 'cancel_order', account: 'bob', orderId: 3 }) }),
    () => ({ path: pick(rng, ['/v1/accounts/bob', '/v1/accounts/bob/positions']), method: 'GET', headers: { authorization: `Bearer ${tokens.alice}` } }),
    () => ({ path: pick(rng, ['/v1/accounts/..%2F..%2Fetc', '/v1/accounts/' + 'a'.repeat(500), '/v1/markets/NOPE/book', '/v1/accounts/alice?minSeq=-5', '/v1/accounts/alice?minSeq=1e99', '/v1/status?waitMs=99999999&minSeq=1', '/nope', '/v1/commands']), method: 'GET', headers: op }),
    () => ({ path: '/v1/commands', method: pick(rng, ['PUT', 'DELETE', 'PATCH']), headers: op, body: JSON.stringify(valid) }),
  ];
  return pick(rng, mutations)();
}

/** Hostile bytes for a sync room: garbage, oversized, and well-formed Yjs writes (must be dropped). */
function hostileFrame(rng: Rng): Uint8Array {
  const write = () => {
    const d = new Y.Doc();
    d.getMap(pick(rng, ['accounts', 'book', 'stamp', 'meta', 'changedAt'])).set(pick(rng, ['alice', 'seq', 'bids']), pick(rng, [1e9, 'pwned', { collateral: 1e12 }]));
    const e = encoding.createEncoder();
    encoding.writeVarUint(e, 0);
    if (rng() < 0.5) syncProtocol.writeUpdate(e, Y.encodeStateAsUpdate(d));
    else {
      encoding.writeVarUint(e, syncProtocol.messageYjsSyncStep2);
      encoding.writeVarUint8Array(e, Y.encodeStateAsUpdate(d));
    }
    return encoding.toUint8Array(e);
  };
  return pick(rng, [
    write,
    write,
    () => crypto.getRandomValues(new Uint8Array(1 + Math.floor(rng() * 64))),
    () => Uint8Array.of(1, 5, 1, 2, 3, 4, 5), // awareness from a client
    () => new Uint8Array(300 * 1024), // over maxPayload
    () => Uint8Array.of(0, 0, 255, 255, 255, 255, 15), // step1 with an absurd length
  ])();
}

async function snapshot() {
  const core = cluster.cores[0]!;
  const op = { authorization: `Bearer ${tokens.operator}` };
  const status = await (await fetch(`${core.url}/v1/status`)).json();
  // Regions are read at the core's seq, so a comparison is never against a copy still catching up.
  const read = async (base: string) =>
    Promise.all(
      ['/v1/accounts/alice', '/v1/accounts/bob', '/v1/markets/BTC-USD/book'].map(async (p) => (await fetch(`${base}${p}?minSeq=${status.seq}`, { headers: op })).json()),
    );
  return {
    seq: status.seq,
    stateHash: status.stateHash,
    log: [...core.log.entriesFrom(1)],
    core: await read(core.url),
    regions: await Promise.all([...cluster.regions.values()].map(async (r) => ({ status: (await (await fetch(`${r.url}/v1/status`)).json()).stateHash, views: await read(r.url) }))),
  };
}

describe('hostile input', () => {
  it(`is refused with 4xx and changes nothing (SIM_SEED=${SEED})`, async () => {
    console.log(`hostile input seed: SIM_SEED=${SEED}`);
    const rng = mulberry32(SEED);
    const before = await snapshot();
    const targets = [cluster.cores[0]!.url, ...[...cluster.regions.values()].map((r) => r.url)];
    for (let i = 0; i < REQUESTS; i++) {
      const req = hostileRequest(rng);
      const base = req.path === '/v1/commands' ? targets[0]! : pick(rng, targets);
      const res = await fetch(base + req.path, { method: req.method, headers: req.headers, ...(req.body !== undefined ? { body: typeof req.body === 'string' ? req.body : Buffer.from(req.body) } : {}) });
      const text = await res.text();
      expect(res.status, `${req.method} ${req.path} -> ${res.status} ${text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${req.method} ${req.path} -> ${res.status} ${text.slice(0, 200)}`).toBeLessThan(500);
      if (res.headers.get('content-type')?.includes('json')) expect(JSON.parse(text).error.code).toMatch(/^[a-z_]+$/);
    }

    const roomTargets = [cluster.cores[0]!.url, ...[...cluster.regions.values()].map((r) => r.url)];
    const shard = accountShardDoc(shardOf('alice', config.publish.accountShards));
    for (let i = 0; i < WS_SESSIONS; i++) {
      const base = pick(rng, roomTargets);
      const generation = (await (await fetch(`${base}/v1/sync/info`)).json()).generation;
      const room = pick(rng, ['meta', 'mkt-BTC-USD', shard, 'view-alice']);
      const ws = new WebSocket(`${base.replace('http', 'ws')}/sync/${generation}/${room}?token=${tokens.operator}`);
      await new Promise<void>((resolve) => {
        ws.on('open', () => {
          for (let k = 0; k < 5; k++) ws.send(hostileFrame(rng));
          ws.close();
        });
        ws.on('close', () => resolve());
        ws.on('error', () => resolve());
      });
    }
    // The cluster endpoint, with and without the cluster secret: garbage, a bogus vote, an
    // oversized frame. The leader must refuse them and stay up.
    for (let i = 0; i < 6; i++) {
      const secret = i % 2 === 0 ? config.replication.clusterSecret : 'wrong-secret-wrong-secret';
      const ws = new WebSocket(`${cluster.cores[0]!.url.replace('http', 'ws')}/v1/cluster`, { headers: { authorization: `Bearer ${secret}`, 'x-statemirror-node': i < 4 ? 'core-b' : 'evil' } });
      await new Promise<void>((resolve) => {
        ws.on('open', () => {
          ws.send(pick(rng, [JSON.stringify({ t: 3, cluster: 'x', from: 'core-b', epoch: 1e9, pre: false, lastSeq: -1, lastEpoch: 0 }), '{"t":5,"epoch":1,"entries":[]}', new Uint8Array(2 * 1024 * 1024), 'not json']));
          ws.close();
        });
        ws.on('close', () => resolve());
        ws.on('error', () => resolve());
        ws.on('unexpected-response', () => resolve());
      });
    }
    // A write that does happen afterwards, read at every region with minSeq: it proves the regions
    // are live and caught up, so "unchanged" below is not "stale".
    const probe = await fetch(`${cluster.cores[0]!.url}/v1/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.operator}` },
      body: JSON.stringify({ clientId: 'probe', type: 'deposit', account: 'carol', amount: 1 }),
    });
    const probeSeq = (await probe.json()).seq as number;
    for (const r of cluster.regions.values()) {
      expect((await fetch(`${r.url}/v1/accounts/carol?minSeq=${probeSeq}`, { headers: { authorization: `Bearer ${tokens.operator}` } })).status).toBe(200);
    }
    const after = await snapshot();
    expect(after.log.slice(0, before.log.length)).toEqual(before.log);
    expect(after.log.length).toBe(before.log.length + 1);
    expect(after.core).toEqual(before.core);
    for (const [i, r] of after.regions.entries()) {
      expect(r.views).toEqual(before.regions[i]!.views);
      expect(r.status).toBe(after.stateHash);
    }
  }, 60_000);
});

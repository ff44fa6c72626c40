// End to end over real sockets: the core and two read nodes (one relaying through the other), each
// behind a simulated link. Crossing orders at the core; positions read at each region with minSeq.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { WebSocket } from 'ws';
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, type Cluster } from '../../src/cli/cluster.js';
import { startCoreNode } from '../../src/node/core-node.js';
import { ReadNode } from '../../src/node/region-node.js';
import { accountShardDoc, shardOf } from '../../src/publish/layout.js';
import { get, operatorToken, post, secretsOf, tempDir, testConfig, waitForEvent } from './helpers.js';

const config = testConfig();
let cluster: Cluster;
let dir: string;

beforeAll(async () => {
  dir = tempDir();
  cluster = await startCluster(config, { ephemeralPorts: true, dataRoot: dir, discoveryIntervalMs: 200 });
});

afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('walking skeleton end to end', () => {
  it('replicates crossing orders to every region, readable with minSeq', async () => {
    const core = cluster.cores[0]!.url;
    const setup = await post(`${core}/v1/commands`, {
      commands: [
        { clientId: 'dep-a', type: 'deposit', account: 'alice', amount: 1_000_000 },
        { clientId: 'dep-b', type: 'deposit', account: 'bob', amount: 1_000_000 },
        { clientId: 'ask-1', type: 'place_order', account: 'alice', market: 'BTC-USD', side: 'sell', price: 30_000, qty: 3, tif: 'GTC' },
      ],
    });
    expect(setup.status).toBe(200);
    expect(setup.body.results.map((r: any) => r.result.status)).toEqual(['accepted', 'accepted', 'accepted']);
    const cross = await post(`${core}/v1/commands`, {
      clientId: 'bid-1', type: 'place_order', account: 'bob', market: 'BTC-USD', side: 'buy', price: 31_000, qty: 2, tif: 'IOC',
    });
    expect(cross.status).toBe(200);
    expect(cross.body.result.fills).toEqual([{ makerOrderId: setup.body.results[2].seq, makerAccount: 'alice', price: 30_000, qty: 2 }]);
    const seq: number = cross.body.seq;
    const status = await get(`${core}/v1/status`);

    for (const region of ['near', 'far']) {
      const url = cluster.regions.get(region)!.url;
      const bob = await get(`${url}/v1/accounts/bob/positions?minSeq=${seq}`);
      expect(bob.status).toBe(200);
      expect(bob.headers.get('x-statemirror-region')).toBe(region);
      expect(Number(bob.headers.get('x-statemirror-seq'))).toBeGreaterThanOrEqual(seq);
      expect(bob.body.positions).toEqual([{ market: 'BTC-USD', qty: 2, costBasis: 60_000, avgEntryPrice: 30_000, realizedPnl: 0, mark: 30_000, unrealizedPnl: 0 }]);
      const alice = await get(`${url}/v1/accounts/alice?minSeq=${seq}`);
      expect(alice.body.positions).toEqual([{ market: 'BTC-USD', qty: -2, costBasis: 60_000, avgEntryPrice: 30_000, realizedPnl: 0, mark: 30_000, unrealizedPnl: 0 }]);
      expect(alice.body.openOrders).toHaveLength(1);
      expect(alice.body.openOrders[0].remaining).toBe(1);
      expect(alice.body).toEqual((await get(`${core}/v1/accounts/alice`)).body);
      const book = await get(`${url}/v1/markets/BTC-USD/book?minSeq=${seq}`);
      expect(book.body).toEqual({ market: 'BTC-USD', bids: [], asks: [{ price: 30_000, qty: 1, orders: 1 }], mark: 30_000 });
      const trades = await get(`${url}/v1/markets/BTC-USD/trades?minSeq=${seq}`);
      expect(trades.body.trades).toHaveLength(1);
      expect(trades.body).toEqual((await get(`${core}/v1/markets/BTC-USD/trades`)).body);
      const st = await get(`${url}/v1/status?minSeq=${seq}`);
      expect(st.body.stateHash).toBe(status.body.stateHash);
      expect(st.body.seq).toBe(seq);
    }
  });

  it('answers 503 with its seq when minSeq is not reached within waitMs', async () => {
    const url = cluster.regions.get('far')!.url;
    const res = await get(`${url}/v1/accounts/alice?minSeq=999999&waitMs=50`);
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('seq_not_reached');
    expect(Number(res.headers.get('x-statemirror-seq'))).toBe(res.body.error.seq);
    const bad = await get(`${url}/v1/accounts/alice?minSeq=-1`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_query');
  });

  it('drops updates a client sends to a read-only room (read node and core)', async () => {
    const region = cluster.regions.get('near')!;
    const name = accountShardDoc(shardOf('mallory', config.publish.accountShards));
    for (const [i, base, emitter] of [
      [0, region.url, region.node],
      [1, cluster.cores[0]!.url, null],
    ] as const) {
      const generation = (await get(`${base}/v1/sync/info`)).body.generation;
      const doc = new Y.Doc();
      const provider = new WebsocketProvider(`${base.replace('http', 'ws')}/sync/${generation}`, name, doc, {
        WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
        disableBc: true,
        // Account shards are operator/cluster-only rooms: this client is allowed in, and still may not write.
        params: { token: await operatorToken(config) },
      });
      await waitForEvent(provider as any, 'sync', (synced: boolean) => synced);
      const dropped = emitter ? waitForEvent(emitter, 'droppedClientMessage', (d: string) => d === name) : null;
      doc.getMap('accounts').set('mallory', { id: 'mallory', collateral: 10 ** 12 });
      await dropped;
      provider.destroy();
      doc.destroy();
      // A fresh reader of the same room never sees it, and neither does the HTTP view.
      const probe = await post(`${cluster.cores[0]!.url}/v1/commands`, { clientId: `probe-${i}`, type: 'deposit', account: 'probe', amount: 1 });
      const read = await get(`${region.url}/v1/accounts/mallory?minSeq=${probe.body.seq}`);
      expect(read.status).toBe(404);
      expect(read.body.error.code).toBe('unknown_account');
    }
    expect(cluster.cores[0]!.sync.droppedClientMessages).toBeGreaterThan(0);
  });

  it('a restarted read node serves its persisted copy before upstream is reachable', async () => {
    const near = cluster.regions.get('near')!;
    const seq = (await get(`${near.url}/v1/status`)).body.seq as number;
    const expected = (await get(`${near.url}/v1/accounts/bob`)).body;
    const dataDir = join(dir, 'near');
    // Point the copy at a closed port: it can only answer from disk.
    const copy = new ReadNode({
      region: 'near-copy',
      upstreamUrls: ['http://127.0.0.1:1'],
      layout: { accountShards: config.publish.accountShards, markets: ['BTC-USD', 'ETH-USD'] },
      dataDir: tempCopy(dataDir),
      readLimits: config.readNode,
      secrets: secretsOf(config),
      maxConnections: 16,
    });
    await copy.start();
    try {
      const res = await get(`${copy.url}/v1/accounts/bob?minSeq=${seq}&waitMs=0`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual(expected);
    } finally {
      await copy.stop();
    }
  });

  it('a core restart replays to the same hash, and regions follow the new generation', async () => {
    const before = (await get(`${cluster.cores[0]!.url}/v1/status`)).body;
    const port = cluster.cores[0]!.port;
    const near = cluster.regions.get('near')!.node;
    const far = cluster.regions.get('far')!.node;
    await cluster.cores[0]!.close();
    cluster.cores[0] = await startCoreNode(config, { port, dataDir: join(dir, 'core-a') });
    const after = (await get(`${cluster.cores[0]!.url}/v1/status`)).body;
    expect(after.seq).toBe(before.seq);
    expect(after.stateHash).toBe(before.stateHash);
    expect(after.generation).not.toBe(before.generation);
    await Promise.all(
      [near, far].map((n) => (n.generation() === after.generation ? null : waitForEvent(n, 'swapped', (g: string) => g === after.generation, 15_000))),
    );
    const w = await post(`${cluster.cores[0]!.url}/v1/commands`, { clientId: 'after-restart', type: 'deposit', account: 'bob', amount: 5 });
    expect(w.status).toBe(200);
    const bob = await get(`${cluster.regions.get('far')!.url}/v1/accounts/bob?minSeq=${w.body.seq}`);
    expect(bob.status).toBe(200);
    expect(bob.headers.get('x-statemirror-generation')).toBe(after.generation);
    expect(bob.body.collateral).toBe((await get(`${cluster.cores[0]!.url}/v1/accounts/bob`)).body.collateral);
  });
});

/** Copies a read node's SQLite files so a second node can open them without sharing locks. */
function tempCopy(src: string): string {
  const dst = tempDir('sm-copy-');
  cpSync(src, dst, { recursive: true });
  return dst;
}

// A region scaled out behind a relay (docs/read-path.md): one relay read node syncs from the core
// over the long link; three leaf read nodes sync from the relay over short links, so the long link
// carries each update once however many leaves serve the region. Checked: every leaf converges to
// the core's exact state (read-your-writes through minSeq), the relay counts each leaf as one page
// (not one socket per doc), and when the relay goes away the leaves keep serving what they hold,
// say so in their status, and catch up when it returns on the same address.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/schema.js';
import { startRegion } from '../../src/cli/cluster.js';
import { clusterPerTest, get, post, testConfig, waitForEvent } from './helpers.js';

const base = testConfig();
const config = parseConfig({
  ...base,
  regions: [
    { name: 'relay', port: 0, upstream: 'core' },
    { name: 'leaf-1', port: 0, upstream: 'relay' },
    { name: 'leaf-2', port: 0, upstream: 'relay' },
    { name: 'leaf-3', port: 0, upstream: 'relay' },
  ],
  links: [
    { from: 'core', to: 'relay', latencyMs: 20, jitterMs: 2 },
    { from: 'relay', to: 'leaf-1', latencyMs: 1 },
    { from: 'relay', to: 'leaf-2', latencyMs: 1 },
    { from: 'relay', to: 'leaf-3', latencyMs: 1 },
  ],
});
const LEAVES = ['leaf-1', 'leaf-2', 'leaf-3'];

const start = clusterPerTest('sm-relay-');

async function writeBatch(url: string, tag: string, n: number): Promise<number> {
  const commands = Array.from({ length: n }, (_, i) =>
    i % 3 === 0
      ? { clientId: `${tag}-${i}`, type: 'deposit', account: `acct-${i % 7}`, amount: 1_000_000 }
      : { clientId: `${tag}-${i}`, type: 'place_order', account: `acct-${i % 7}`, market: 'BTC-USD', side: i % 2 ? 'buy' : 'sell', price: 1000 + (i % 5), qty: 1, tif: 'GTC' },
  );
  const res = await post(`${url}/v1/commands`, { commands });
  expect(res.status).toBe(200);
  return Math.max(...res.body.results.map((r: { seq: number }) => r.seq));
}

describe('a region of several read nodes behind one relay', () => {
  it('every leaf serves the core state; leaves count as one page each at the relay; a relay restart is survived', async () => {
    const cluster = await start(config, { discoveryIntervalMs: 100 });
    const core = cluster.primary()!;
    const relay = cluster.regions.get('relay')!;
    await writeBatch(core.url, 'a0', 1); // open accounts before orders reference them
    const seq = await writeBatch(core.url, 'a', 60);

    const truth = async (id: string) => (await get(`${core.url}/v1/accounts/${id}`)).body;
    for (const leaf of LEAVES) {
      const url = cluster.regions.get(leaf)!.url;
      for (let i = 0; i < 7; i++) {
        const res = await get(`${url}/v1/accounts/acct-${i}?minSeq=${seq}`);
        expect(res.status).toBe(200);
        expect(res.body).toEqual(await truth(`acct-${i}`));
      }
      const book = await get(`${url}/v1/markets/BTC-USD/book?minSeq=${seq}`);
      expect(book.body).toEqual((await get(`${core.url}/v1/markets/BTC-USD/book`)).body);
    }
    // Each leaf opens one socket per doc to the relay, all under one page id.
    const relayStatus = (await get(`${relay.url}/v1/status`)).body;
    expect(relayStatus.pages).toBe(LEAVES.length);
    expect(relayStatus.connections).toBeGreaterThan(LEAVES.length);

    // The relay goes away: leaves keep answering from what they hold and report the upstream error.
    const relayPort = relay.node.port;
    await relay.close();
    const leaf1 = cluster.regions.get('leaf-1')!;
    const stale = await get(`${leaf1.url}/v1/accounts/acct-1`);
    expect(stale.status).toBe(200);
    await waitForEvent(leaf1.node, 'advanced', () => false, 1).catch(() => {}); // no-op: nothing to advance
    let status = (await get(`${leaf1.url}/v1/status`)).body;
    for (let i = 0; i < 100 && status.upstreamError === null; i++) {
      await new Promise((r) => setTimeout(r, 50)); // polling a status field with a bound, not synchronising
      status = (await get(`${leaf1.url}/v1/status`)).body;
    }
    expect(status.upstreamError).not.toBeNull();

    // Writes go on at the core; the relay comes back on the same address and the leaves catch up.
    const later = await writeBatch(core.url, 'b', 30);
    const back = await startRegion(config, relay.config, {
      upstreams: cluster.cores.map((c) => ({ host: c.server.host, port: c.port })),
      port: relayPort,
      dataDir: null,
      discoveryIntervalMs: 100,
    });
    cluster.regions.set('relay', back);
    for (const leaf of LEAVES) {
      const url = cluster.regions.get(leaf)!.url;
      const res = await get(`${url}/v1/accounts/acct-2?minSeq=${later}`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual(await truth('acct-2'));
    }
  }, 60_000);
});

// The regional dashboard in headless Debian chromium (playwright-core): the page syncs over
// y-websocket from its read node; a write at the core shows up on the page without a reload; and
// another account's data never reaches it (its token can't open that account's room, nor the
// shard rooms that hold many accounts). Set STATEMIRROR_REQUIRE_BROWSER=1 (CI does) to fail
// instead of skipping when /usr/bin/chromium is missing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { WebSocket } from 'ws';
import { startCluster, type Cluster } from '../../src/cli/cluster.js';
import { signToken } from '../../src/auth/tokens.js';
import { accountShardDoc, shardOf } from '../../src/publish/layout.js';
import { get, tempDir, testConfig } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const hasBrowser = existsSync(CHROMIUM);
if (!hasBrowser && process.env.STATEMIRROR_REQUIRE_BROWSER === '1') throw new Error(`${CHROMIUM} is required (apt-get install chromium)`);
if (!hasBrowser) console.warn(`dashboard test skipped: ${CHROMIUM} not installed (apt-get install chromium)`);

const config = testConfig();
let cluster: Cluster;
let browser: Browser;
let dir: string;
let operator: string;
let alice: string;

/** Opens a room of `base`'s current generation and resolves with the code it gets closed with. */
async function roomCloser(base: string): Promise<(room: string, token?: string) => Promise<number>> {
  const generation = (await get(`${base}/v1/sync/info`)).body.generation;
  return (room, token) =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(`${base.replace('http', 'ws')}/sync/${generation}/${room}${token ? `?token=${token}` : ''}`);
      ws.on('close', (code) => resolve(code));
      ws.on('error', () => {});
    });
}

async function write(body: unknown): Promise<any> {
  const res = await fetch(`${cluster.cores[0]!.url}/v1/commands`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${operator}` },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return res.json();
}

beforeAll(async () => {
  if (!hasBrowser) return;
  dir = tempDir('sm-dash-');
  cluster = await startCluster(config, { ephemeralPorts: true, dataRoot: dir, discoveryIntervalMs: 100 });
  operator = await signToken(config.auth.jwtSecret, { sub: 'ops', role: 'operator' });
  alice = await signToken(config.auth.jwtSecret, { sub: 'alice', role: 'account' });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasBrowser)('regional dashboard', () => {
  it('shows a write made at the core without a reload, and only its own account', async () => {
    await write({
      commands: [
        { clientId: 'd-alice', type: 'deposit', account: 'alice', amount: 1_000_000 },
        { clientId: 'd-bob', type: 'deposit', account: 'bob', amount: 777_777 },
        { clientId: 'ask-bob', type: 'place_order', account: 'bob', market: 'BTC-USD', side: 'sell', price: 100, qty: 5 },
      ],
    });
    const far = cluster.regions.get('far')!;
    const page = await browser.newPage();
    await page.goto(`${far.url}/dashboard?account=alice&market=BTC-USD&token=${alice}`);
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', null, { timeout: 15_000 });
    await page.waitForFunction(() => document.getElementById('collateral')?.textContent === '1000000', null, { timeout: 15_000 });
    expect(await page.textContent('#region')).toBe('far');
    expect(await page.textContent('#book-asks')).toContain('100');

    // A fill at the core reaches the far region's page live.
    const fill = await write({ clientId: 'bid-alice', type: 'place_order', account: 'alice', market: 'BTC-USD', side: 'buy', price: 100, qty: 3, tif: 'IOC' });
    expect(fill.result.fills).toHaveLength(1);
    await page.waitForFunction(
      () => document.querySelector('#positions tr[data-market="BTC-USD"] .qty')?.textContent === '3',
      null,
      { timeout: 15_000 },
    );
    await page.waitForFunction((seq) => Number(document.getElementById('seq')?.textContent) >= seq, fill.seq, { timeout: 15_000 });
    await page.waitForFunction(() => document.querySelector('#book-asks tr td:nth-child(2)')?.textContent === '2', null, { timeout: 15_000 }); // 5 - 3 left at 100
    const html = await page.content();
    expect(html).not.toContain('777777');
    expect(html).not.toContain('bob');

    // Alice's token asking for bob's view: refused, nothing of bob's arrives.
    const snoop = await browser.newPage();
    await snoop.goto(`${far.url}/dashboard?account=bob&market=BTC-USD&token=${alice}`);
    await snoop.waitForFunction(() => /refused \(4403\)/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
    expect(await snoop.content()).not.toContain('777777');
    await page.close();
    await snoop.close();
  });

  it('refuses shard rooms to account tokens and every account room to anonymous peers', async () => {
    const closeCode = await roomCloser(cluster.regions.get('near')!.url);
    expect(await closeCode(accountShardDoc(shardOf('alice', config.publish.accountShards)), alice)).toBe(4403);
    expect(await closeCode('view-alice')).toBe(4401);
    expect(await closeCode('view-bob', alice)).toBe(4403);
    expect(await closeCode('view-alice', 'not-a-jwt')).toBe(4401);
  });

  it("refuses the core's rooms to anyone but read nodes and operators", async () => {
    const closeCode = await roomCloser(cluster.cores[0]!.url);
    expect(await closeCode('meta')).toBe(4401);
    expect(await closeCode('mkt-BTC-USD', alice)).toBe(4403);
  });
});

// The live cluster page in headless Debian chromium (playwright-core): three core processes and two
// read nodes (near follows the core, far follows near); the page is opened on a read node and shows
// the leader; the leader is SIGKILLed (no handover) while a client keeps writing; without a reload
// the page then shows another leader, the dead node unreachable, a failover event, and lag points
// plotted after the kill. Waits are on page state (waitForFunction) with bounded timeouts. Set
// STATEMIRROR_REQUIRE_BROWSER=1 (CI does) to fail instead of skipping when /usr/bin/chromium is missing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import type { Config } from '../../src/config/schema.js';
import type { RegionNode } from '../../src/cli/cluster.js';
import type { CoreProcesses } from '../../sim/process-cluster.js';
import { get, operatorToken, startProcessCluster, type ProcessCluster } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const hasBrowser = existsSync(CHROMIUM);
if (!hasBrowser && process.env.STATEMIRROR_REQUIRE_BROWSER === '1') throw new Error(`${CHROMIUM} is required (apt-get install chromium)`);
if (!hasBrowser) console.warn(`cluster view test skipped: ${CHROMIUM} not installed (apt-get install chromium)`);

let pc: ProcessCluster | null = null;
let config: Config;
let cores: CoreProcesses | null = null;
let regions: RegionNode[] = [];
let browser: Browser | null = null;
let stopWriting = false;
let writer: Promise<number> | null = null;

beforeAll(async () => {
  if (!hasBrowser) return;
  // Core processes on real ports (the config's addresses are the ones every view polls); the read
  // nodes in this process bind port 0 and are told each other's address once bound.
  pc = await startProcessCluster('sm-cluster-view-');
  ({ config, cores, regions } = pc);
  for (const a of regions) for (const b of regions) a.node.overview.setTarget(b.config.name, 'region', b.url);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 90_000);

afterAll(async () => {
  stopWriting = true;
  await writer;
  await browser?.close();
  await pc?.stop();
}, 60_000);

/** Writes deposits one after another until stopped, each retried (same clientId) at the next node. */
async function writeContinuously(): Promise<number> {
  const authorization = `Bearer ${await operatorToken(config)}`;
  const names = cores!.names;
  let target = 0;
  let acked = 0;
  for (let i = 0; !stopWriting; i++) {
    const body = JSON.stringify({ clientId: `cv-${i}`, type: 'deposit', account: `acct-${i % 7}`, amount: 1 });
    while (!stopWriting) {
      try {
        const res = await fetch(`${cores!.url(names[target]!)}/v1/commands`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization },
          body,
          signal: AbortSignal.timeout(3000),
        });
        await res.body?.cancel();
        if (res.status === 200) {
          acked++;
          break;
        }
      } catch {
        // a killed node: try the next one
      }
      target = (target + 1) % names.length;
      await new Promise((r) => setTimeout(r, 10)); // client retry backoff, not synchronisation
    }
  }
  return acked;
}

describe.skipIf(!hasBrowser)('the /cluster page', () => {
  it('shows the new leader, the failover and the lag after the leader is killed, without a reload', async () => {
    const near = regions[0]!;
    const leader = (await cores!.waitFor((s) => s.role === 'primary', 10_000, 'a leader')).node;
    writer = writeContinuously();

    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${near.url}/cluster`);
    await page.waitForFunction((name) => document.getElementById('leader')?.textContent === name, leader, { timeout: 15_000 });
    expect(await page.textContent('#self')).toBe('near');
    // Every core node and region is in the tables, the leader's row lists its followers.
    await page.waitForFunction(() => document.querySelectorAll('#cores tr').length === 3 && document.querySelectorAll('#regions tr').length === 2, null, { timeout: 15_000 });
    await page.waitForFunction(
      (name) => /core-\w: \d+/.test(document.querySelector(`#cores tr[data-node="${name}"] .followers`)?.textContent ?? ''),
      leader,
      { timeout: 15_000 },
    );
    await page.waitForFunction(() => document.querySelector('#regions tr[data-region="far"] .seq')?.textContent !== '–', null, { timeout: 15_000 });
    const pollsBefore = await page.evaluate(() => window.clusterView!.polls);

    const killedAt = Date.now();
    await cores!.kill(leader, 'SIGKILL');

    // Without a reload: another leader, the dead one unreachable, a failover event from it.
    await page.waitForFunction(
      (old) => {
        const now = document.getElementById('leader')?.textContent ?? '';
        return now !== old && now.startsWith('core-');
      },
      leader,
      { timeout: 30_000 },
    );
    await page.waitForFunction((old) => document.querySelector(`#cores tr[data-node="${old}"]`)?.getAttribute('data-role') === 'unreachable', leader, { timeout: 15_000 });
    const failover = await page.waitForFunction(
      (old) => {
        const events = window.clusterView?.overview?.events ?? [];
        const e = events.find((x) => x.kind === 'failover' && x.from === old);
        return e && document.querySelector(`#events li[data-kind="failover"][data-at="${e.at}"]`) ? e : null;
      },
      leader,
      { timeout: 15_000 },
    );
    const event = (await failover.jsonValue()) as { at: number; to: string };
    expect(event.at).toBeGreaterThanOrEqual(killedAt - 1000);
    expect(await page.textContent('#leader')).toBe(event.to);
    expect(await page.textContent('#events')).toContain(`failover: ${leader} → ${event.to}`);

    // The lag chart has plotted points from after the kill, with a region lagging (writes went on
    // through the failover; each region took the new leader's generation after it).
    const lag = await page.waitForFunction(
      (since) => {
        const plot = window.clusterView?.plot;
        if (!plot) return null;
        const [xs, ...series] = plot.data as unknown as Array<Array<number | null>>;
        const after = xs!.map((x, i) => (x! * 1000 >= since ? i : -1)).filter((i) => i >= 0);
        const max = Math.max(0, ...after.flatMap((i) => series.map((s) => s[i] ?? 0)));
        return after.length >= 2 && max > 0 ? { points: after.length, max } : null;
      },
      killedAt,
      { timeout: 20_000 },
    );
    expect(((await lag.jsonValue()) as { max: number }).max).toBeGreaterThan(0);
    expect(await page.evaluate(() => window.clusterView!.polls)).toBeGreaterThan(pollsBefore);
    expect(errors).toEqual([]);

    // The JSON behind it agrees, from a core node too.
    const overview = (await get(`${cores!.url(event.to)}/v1/overview`, null)).body;
    expect(overview.leader.node).toBe(event.to);
    expect(overview.nodes.find((n: { name: string }) => n.name === leader).reachable).toBe(false);
    stopWriting = true;
    expect(await writer).toBeGreaterThan(0);
    await page.close();
  }, 120_000);
});

// A read node whose upstream stops serving its generation for a moment (a relay or core restarting:
// its rooms answer 4410, which y-websocket treats as terminal) resumes every doc once the upstream
// serves that generation again — before, those docs stayed stopped and the node never advanced.
import { describe, expect, it } from 'vitest';
import { clusterPerTest, get, post, testConfig } from './helpers.js';

const start = clusterPerTest('sm-upstream-');

describe('a read node whose upstream stops serving its generation for a moment', () => {
  it('resumes every doc when the generation is served again, and advances', async () => {
    const cluster = await start(testConfig(), { discoveryIntervalMs: 100 });
    const core = cluster.primary()!;
    const near = cluster.regions.get('near')!;
    const first = await post(`${core.url}/v1/commands`, { clientId: 'a-1', type: 'deposit', account: 'alice', amount: 5 });
    expect((await get(`${near.url}/v1/accounts/alice?minSeq=${first.body.seq}`)).status).toBe(200);
    const publisher = core.core!.publisher;
    // Every room of the generation closes with 4410 (terminal for the read node's providers)...
    core.sync.retire(publisher.generation);
    // The server sees each close handshake complete, so the read node has seen every 4410.
    expect(await waitUntil(() => core.sync.connections === 0, 5000)).toBe(true);
    // ...then the same generation is served again, as a restarted upstream would.
    core.sync.serve({ generation: publisher.generation, docs: publisher.docs });
    const next = await post(`${core.url}/v1/commands`, { clientId: 'a-2', type: 'deposit', account: 'alice', amount: 7 });
    const res = await get(`${near.url}/v1/accounts/alice?minSeq=${next.body.seq}&waitMs=8000`);
    expect(res.status).toBe(200);
    expect(res.body.collateral).toBe(12);
  }, 30_000);
});

/** Polls `pred` until true or `ms` pass (a status field, not synchronisation). */
async function waitUntil(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return pred();
}

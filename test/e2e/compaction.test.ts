// Compaction end to end: with a tiny tombstone budget and a short grace the core rotates to new Yjs generations while
// writes go on; regions (one relaying) follow every rotation and keep answering minSeq reads with
// the core's exact state.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { startCluster, type Cluster } from '../../src/cli/cluster.js';
import { get, post, tempDir, testConfig } from './helpers.js';

const config = testConfig({ publish: { compactTombstonesPerAccount: 2, compactTombstonesMin: 0, compactGraceMs: 300 } });
let cluster: Cluster;
let dir: string;

beforeAll(async () => {
  dir = tempDir('sm-compact-');
  cluster = await startCluster(config, { ephemeralPorts: true, dataRoot: dir, discoveryIntervalMs: 100 });
});
afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('compaction into new generations', () => {
  it('regions follow every rotation and stay exact', async () => {
    const core = cluster.cores[0]!;
    const generations = new Set<string>([core.core!.publisher.generation]);
    core.core!.on('generation', (p) => generations.add(p.generation));
    let last = 0;
    // Rotations are spaced by the handover grace (at most one replaced generation is published at a
    // time), so write until three generations have been seen (bounded by the round count).
    for (let round = 0; round < 2000 && generations.size <= 2; round++) {
      const commands = Array.from({ length: 10 }, (_, i) => ({ clientId: `c${round}-${i}`, type: 'deposit', account: `a${i}`, amount: 1 + round }));
      const r = await post(`${core.url}/v1/commands`, { commands });
      expect(r.status).toBe(200);
      last = r.body.results.at(-1).seq;
    }
    expect(generations.size).toBeGreaterThan(2);
    for (const region of cluster.regions.values()) {
      for (let i = 0; i < 10; i++) {
        const res = await get(`${region.url}/v1/accounts/a${i}?minSeq=${last}`);
        expect(res.status).toBe(200);
        expect(res.body).toEqual((await get(`${core.url}/v1/accounts/a${i}`)).body);
      }
    }
  });
});

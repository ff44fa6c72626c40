// The cluster view's memory and poller with fake statuses: rows from core and read-node statuses,
// leader elections and failovers (also across a leaderless gap), generation changes, nodes going
// unreachable and back, region lag when its upstream is behind, bounded history and events; the
// aggregator polls lazily (only after a request), with bounded concurrency and per-request errors.
import { describe, expect, it } from 'vitest';
import { ClusterHistory, type NodeTarget, type PollResult } from '../../src/node/cluster-view/history.js';
import { OverviewAggregator } from '../../src/node/cluster-view/overview.js';

const targets: NodeTarget[] = [
  { name: 'a', kind: 'core', url: 'http://a' },
  { name: 'b', kind: 'core', url: 'http://b' },
  { name: 'near', kind: 'region', url: 'http://near' },
];

const core = (role: string, epoch: number, seq: number, peers: Array<{ node: string; match: number; lag: number }> = []) =>
  ({ ok: true, status: { role, epoch, seq, commit: seq, lastSeq: seq, leader: role === 'primary' ? 'self' : null, raft: { peers } } }) as PollResult;
const region = (seq: number, generation: string, extra: Record<string, unknown> = {}) =>
  ({ ok: true, status: { region: 'near', seq, upstreamSeq: seq, generation, lastCommitAgeMs: 1234, connections: 3, pages: 2, ...extra } }) as PollResult;
const down: PollResult = { ok: false, error: 'ECONNREFUSED' };
const poll = (h: ClusterHistory, at: number, a: PollResult, b: PollResult, near: PollResult) =>
  h.ingest(at, targets, new Map([['a', a], ['b', b], ['near', near]]));

describe('ClusterHistory', () => {
  it('reads rows from statuses and tolerates junk', () => {
    const h = new ClusterHistory();
    poll(h, 1000, core('primary', 2, 10, [{ node: 'b', match: 8, lag: 2 }]), { ok: true, status: 'junk' }, region(10, 'g1'));
    const s = h.snapshot();
    expect(s.leader).toEqual({ node: 'a', epoch: 2 });
    expect(s.nodes[0]).toMatchObject({ name: 'a', reachable: true, role: 'primary', epoch: 2, commit: 10, followers: [{ node: 'b', match: 8, lag: 2 }] });
    expect(s.nodes[1]).toMatchObject({ name: 'b', reachable: true, role: null, epoch: null, followers: [] });
    expect(s.regions[0]).toMatchObject({ name: 'near', seq: 10, lagSeq: 0, lagMs: 0, generation: 'g1', connections: 3, pages: 2 });
    expect(s.events.map((e) => e.kind)).toEqual(['leader']);
  });

  it('records a failover, also across a leaderless gap, and the lag of a region left behind', () => {
    const h = new ClusterHistory();
    poll(h, 1000, core('primary', 2, 10), core('standby', 2, 10), region(10, 'g1'));
    // The leader dies: nobody leads for a poll, the region still holds the dead leader's seq.
    poll(h, 2000, down, core('starting', 3, 10), region(10, 'g1'));
    // b leads and has committed more; the region has not caught up: it lags by its newest commit's age.
    poll(h, 3000, down, core('primary', 3, 14), region(10, 'g1'));
    poll(h, 4000, down, core('primary', 3, 15), region(15, 'g2'));
    const s = h.snapshot();
    expect(s.leader).toEqual({ node: 'b', epoch: 3 });
    expect(s.events.map((e) => [e.kind, e.node])).toEqual([
      ['leader', 'a'],
      ['unreachable', 'a'],
      ['no_leader', 'a'],
      ['failover', 'b'],
      ['generation', 'near'],
    ]);
    expect(s.events[3]).toMatchObject({ at: 3000, from: 'a', to: 'b', epoch: 3 });
    expect(s.events[4]).toMatchObject({ at: 4000, from: 'g1', to: 'g2' });
    expect(s.history.t).toEqual([1000, 2000, 3000, 4000]);
    expect(s.history.regions.near!.lagMs).toEqual([0, 0, 1234, 0]);
    expect(s.history.regions.near!.seq).toEqual([10, 10, 10, 15]);
    expect(s.nodes[0]).toMatchObject({ reachable: false, error: 'ECONNREFUSED', role: null });

    // a comes back as a follower: reachable again, no new leader event.
    poll(h, 5000, core('standby', 3, 15), core('primary', 3, 15), region(15, 'g2'));
    expect(h.snapshot().events.slice(5).map((e) => [e.kind, e.node])).toEqual([['reachable', 'a']]);
  });

  it('takes the node’s own lagMs when it reports more, and a deposed leader never outranks a newer epoch', () => {
    const h = new ClusterHistory();
    poll(h, 1000, core('primary', 2, 10), core('primary', 3, 10), region(10, 'g1', { lagMs: 50 }));
    expect(h.snapshot().leader).toEqual({ node: 'b', epoch: 3 });
    expect(h.snapshot().regions[0]!.lagMs).toBe(50);
    // A re-election of the same node is a failover too (a new epoch).
    poll(h, 2000, core('standby', 4, 10), core('primary', 4, 10), region(10, 'g1'));
    expect(h.snapshot().events.at(-1)).toMatchObject({ kind: 'failover', from: 'b', to: 'b', epoch: 4 });
  });

  it('keeps bounded history and events', () => {
    const h = new ClusterHistory({ maxSamples: 5, maxEvents: 3, historyMs: 10_000 });
    for (let i = 0; i < 20; i++) poll(h, i * 1000, core('primary', i + 1, i), core('standby', i + 1, i), region(i, `g${i}`));
    const s = h.snapshot();
    expect(s.history.t).toEqual([15_000, 16_000, 17_000, 18_000, 19_000]);
    expect(s.events).toHaveLength(3);
    expect(s.events.at(-1)!.at).toBe(19_000);
    // Older than historyMs goes too, whatever the count.
    poll(h, 100_000, core('primary', 30, 30), core('standby', 30, 30), region(30, 'g30'));
    expect(h.snapshot().history.t).toEqual([100_000]);
  });
});

describe('OverviewAggregator', () => {
  it('polls only once asked, every node with bounded concurrency, and reports each one’s error', async () => {
    let now = 1_000_000;
    let inFlight = 0;
    let maxInFlight = 0;
    const asked: string[] = [];
    const agg = new OverviewAggregator({
      self: 'a',
      targets: [...targets, { name: 'far', kind: 'region', url: 'http://far' }],
      concurrency: 2,
      now: () => now,
      fetchStatus: async (url) => {
        asked.push(url);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setImmediate(r));
        inFlight--;
        if (url === 'http://a') return (core('primary', 5, 7) as { status: unknown }).status;
        if (url === 'http://far') throw new Error('boom');
        return (region(7, 'g1') as { status: unknown }).status;
      },
    });
    try {
      expect(asked).toEqual([]); // nothing until someone asks
      agg.setTarget('b', 'core', 'http://b2/');
      const o = await agg.read();
      expect(asked.sort()).toEqual(['http://a', 'http://b2', 'http://far', 'http://near']);
      expect(maxInFlight).toBe(2);
      expect(o).toMatchObject({ self: 'a', at: now, leader: { node: 'a', epoch: 5 } });
      expect(o.regions.map((r) => [r.name, r.reachable, r.error])).toEqual([
        ['near', true, null],
        ['far', false, 'boom'],
      ]);
      // A second read within the poll interval answers from memory.
      now += 10;
      await agg.read();
      expect(asked).toHaveLength(4);
    } finally {
      agg.stop();
    }
  });
});

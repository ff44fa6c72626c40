// The Raft core over real sockets, in one process: a 3-node cluster whose every directed link
// crosses its own LinkProxy (so a test can cut one node off), majority commit, a new leader after
// the leader dies, read nodes following the leader with the highest epoch, a partitioned leader
// that cannot acknowledge and rejoins with its stranded tail dropped, a wiped follower refilled as
// a learner, a wiped node that never starts a second history, two nodes needing each other, and
// cluster-link authentication. Waits are on events or polled positions with bounded deadlines.
import { encodeMessage } from '../../src/replication/messages.js';
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type { Config } from '../../src/config/schema.js';
import { CoreNode, type CoreRole } from '../../src/node/core-node.js';
import { ReadNode } from '../../src/node/region-node.js';
import { LinkProxy } from '../../sim/index.js';
import { replay } from '../../src/engine/replay.js';
import type { LogEntry } from '../../src/log/command-log.js';
import { get, post, secretsOf, tempDir, testConfig, waitForEvent } from './helpers.js';

const T = 300;
const config = testConfig({ coreNodes: 3, replication: { heartbeatMs: 40, electionTimeoutMs: T, commitTimeoutMs: 1500 } });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const waitRole = (node: CoreNode, role: CoreRole, timeoutMs = 10_000) =>
  node.role === role ? Promise.resolve() : waitForEvent(node, 'role', (r: CoreRole) => r === role, timeoutMs).then(() => undefined);

/** Polls `cond` every 10 ms until it holds; fails after timeoutMs (a bounded wait on a position). */
async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Cluster {
  dir: string;
  cfg: Config;
  nodes: Map<string, CoreNode>;
  /** proxies.get('a>b'): what a dials to reach b (retargeted when b restarts). */
  proxies: Map<string, LinkProxy>;
  names: string[];
  start(name: string): Promise<CoreNode>;
  isolate(name: string): void;
  heal(name: string): void;
}

/** N core nodes, every directed link through its own LinkProxy. */
async function cluster(cfg: Config = config, startNodes?: string[]): Promise<Cluster> {
  const dir = tempDir('sm-raft-');
  const names = cfg.core.nodes.map((n) => n.name);
  const proxies = new Map<string, LinkProxy>();
  const nodes = new Map<string, CoreNode>();
  // Proxies first (their ports are the peers' stable addresses); each is pointed at its node once
  // that node has bound a port, and again whenever it restarts.
  for (const from of names) {
    for (const to of names) {
      if (from === to) continue;
      const p = new LinkProxy({ name: `${from}>${to}`, targetHost: '127.0.0.1', targetPort: 1, link: { latencyMs: 1, jitterMs: 0, lossPct: 0 } });
      await p.start();
      proxies.set(`${from}>${to}`, p);
    }
  }
  const c: Cluster = {
    dir, cfg, nodes, proxies, names,
    async start(name) {
      const peerUrls = Object.fromEntries(names.filter((p) => p !== name).map((p) => [p, `http://127.0.0.1:${proxies.get(`${name}>${p}`)!.port}`]));
      const node = new CoreNode(cfg, { nodeName: name, port: 0, dataDir: join(dir, name), peerUrls });
      await node.listen();
      for (const [key, p] of proxies) if (key.endsWith(`>${name}`)) p.retarget(node.port);
      node.begin();
      if (process.env.DEBUG_ROLES) node.on('role', (r) => console.log('ROLE', name, r, node.raft.role, node.raft.epoch, Math.round(performance.now())));
      nodes.set(name, node);
      return node;
    },
    isolate(name) {
      for (const [key, p] of proxies) if (key.startsWith(`${name}>`) || key.endsWith(`>${name}`)) p.partition('blackhole');
    },
    heal(name) {
      for (const [key, p] of proxies) if (key.startsWith(`${name}>`) || key.endsWith(`>${name}`)) p.heal();
    },
  };
  cleanups.push(async () => {
    await Promise.all([...nodes.values()].map((n) => n.close()));
    await Promise.all([...proxies.values()].map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  });
  for (const n of startNodes ?? names) await c.start(n);
  return c;
}

/** Waits until exactly one running node is primary and returns it. */
async function leaderOf(c: Cluster, timeoutMs = 10_000): Promise<CoreNode> {
  let leader: CoreNode | undefined;
  await until(() => {
    const primaries = [...c.nodes.values()].filter((n) => n.role === 'primary');
    leader = primaries.length === 1 ? primaries[0] : undefined;
    return leader !== undefined;
  }, 'one primary', timeoutMs);
  return leader!;
}

/** A read node following every core node directly, stopped after the test. */
async function regionNode(c: Cluster): Promise<ReadNode> {
  const region = new ReadNode({
    region: 'near',
    upstreamUrls: [...c.nodes.values()].map((n) => `http://127.0.0.1:${n.port}`),
    layout: { accountShards: c.cfg.publish.accountShards, markets: ['BTC-USD', 'ETH-USD'] },
    readLimits: c.cfg.readNode,
    secrets: secretsOf(c.cfg),
    maxConnections: 64,
    discoveryIntervalMs: 50,
  });
  await region.start();
  cleanups.push(() => region.stop());
  return region;
}

const logOf = (node: CoreNode): LogEntry[] => [...node.log.entriesFrom(1)];
const deposit = (clientId: string, account: string, amount: number) => ({ clientId, type: 'deposit', account, amount });

describe('raft core cluster', () => {
  it('acknowledges once a majority holds a write, elects a new leader when the leader dies, and the old one rejoins', async () => {
    const c = await cluster();
    const leader = await leaderOf(c);
    const followers = [...c.nodes.values()].filter((n) => n !== leader);
    const region = await regionNode(c);

    const w1 = await post(`${leader.url}/v1/commands`, deposit('w1', 'alice', 100));
    expect(w1.status).toBe(200);
    // Acknowledged means durable on a majority: the leader and at least one follower.
    expect(followers.filter((f) => f.log.findByClientId('w1')?.seq === w1.body.seq).length).toBeGreaterThanOrEqual(1);
    const toFollower = await post(`${followers[0]!.url}/v1/commands`, deposit('w-x', 'alice', 1));
    expect(toFollower.status).toBe(503);
    expect(toFollower.body.error.code).toBe('not_primary');
    expect((await get(`${followers[0]!.url}/v1/status`)).body.leader).toBe(leader.name);

    const oldEpoch = leader.raft.epoch;
    const oldName = leader.name;
    await leader.close();
    c.nodes.delete(oldName);
    const next = await leaderOf(c);
    expect(next.raft.epoch).toBeGreaterThan(oldEpoch);
    const w2 = await post(`${next.url}/v1/commands`, deposit('w2', 'alice', 50));
    expect(w2.status).toBe(200);
    // A retry of a write the old leader acknowledged is answered from the log, not re-applied.
    const again = await post(`${next.url}/v1/commands`, deposit('w1', 'alice', 100));
    expect(again.body).toMatchObject({ seq: w1.body.seq, duplicate: true });
    // The read node follows the new leader without a restart.
    const read = await get(`${region.url}/v1/accounts/alice?minSeq=${w2.body.seq}`);
    expect(read.status).toBe(200);
    expect(read.body.collateral).toBe(150);

    // The old leader comes back as a follower and catches up.
    const back = await c.start(oldName);
    await waitRole(back, 'standby');
    const w3 = await post(`${next.url}/v1/commands`, deposit('w3', 'bob', 7));
    expect(w3.status).toBe(200);
    await until(() => [...c.nodes.values()].every((n) => n.replicated.applied >= w3.body.seq), 'every node applied w3');
    const reference = logOf(next);
    for (const n of c.nodes.values()) expect(logOf(n)).toEqual(reference);
    const hash = (await get(`${next.url}/v1/status`)).body.stateHash;
    for (const n of c.nodes.values()) expect(n.replicated.machine.stateHash).toBe(hash);
    expect(replay(c.cfg.domain, back.log).stateHash).toBe(hash);
  });

  it('a leader that stops gracefully hands over (TIMEOUT_NOW) to its most up-to-date follower', async () => {
    const c = await cluster();
    const leader = await leaderOf(c);
    const w = await post(`${leader.url}/v1/commands`, deposit('before-handoff', 'alice', 10));
    expect(w.status).toBe(200);
    const epoch = leader.raft.epoch;
    const name = leader.name;
    const handedTo = new Promise<string>((resolve) => {
      for (const n of c.nodes.values()) if (n !== leader) n.on('role', (r) => r === 'primary' && resolve(n.name));
    });
    await leader.close();
    c.nodes.delete(name);
    // The handoff target campaigned at once, in the very next epoch (no election timeout, no split).
    const next = c.nodes.get(await handedTo)!;
    expect(leader.handedOverTo).toBe(next.name);
    expect(next.raft.epoch).toBe(epoch + 1);
    const again = await post(`${next.url}/v1/commands`, deposit('before-handoff', 'alice', 10));
    expect(again.body).toMatchObject({ seq: w.body.seq, duplicate: true });
    expect((await post(`${next.url}/v1/commands`, deposit('after-handoff', 'alice', 1))).status).toBe(200);
  });

  it('a partitioned leader cannot acknowledge; the majority elects a new one; after healing the stranded tail is dropped', async () => {
    const c = await cluster();
    const old = await leaderOf(c);
    const region = await regionNode(c);
    const acked = new Map<string, number>();
    for (let i = 0; i < 5; i++) {
      const r = await post(`${old.url}/v1/commands`, deposit(`pre-${i}`, 'alice', 10));
      expect(r.status).toBe(200);
      acked.set(`pre-${i}`, r.body.seq);
    }
    c.isolate(old.name);
    // The old leader takes the write into its own log but no majority acks it: 503, outcome unknown.
    const stranded = await post(`${old.url}/v1/commands`, deposit('stranded', 'alice', 999));
    expect(stranded.status).toBe(503);
    expect(['commit_timeout', 'not_primary']).toContain(stranded.body.error.code);
    expect(old.log.findByClientId('stranded')).toBeDefined();
    // CheckQuorum: cut off from the majority, it stops claiming leadership.
    await until(() => old.role !== 'primary', 'the isolated leader to step down', 5 * T);
    const others = new Map([...c.nodes].filter(([n]) => n !== old.name));
    let next: CoreNode | undefined;
    await until(() => (next = [...others.values()].find((n) => n.role === 'primary')) !== undefined, 'a new leader among the majority');
    const during = await post(`${next!.url}/v1/commands`, deposit('during', 'bob', 5));
    expect(during.status).toBe(200);
    acked.set('during', during.body.seq);
    const bob = await get(`${region.url}/v1/accounts/bob?minSeq=${during.body.seq}`);
    expect(bob.status).toBe(200);
    expect(bob.headers.get('x-statemirror-generation')).toBe(next!.core!.publisher.generation);

    c.heal(old.name);
    await waitRole(old, 'standby');
    const after = await post(`${next!.url}/v1/commands`, deposit('after', 'bob', 5));
    expect(after.status).toBe(200);
    acked.set('after', after.body.seq);
    await until(() => old.replicated.applied >= after.body.seq, 'the old leader to apply "after"');
    // One history: the stranded write is gone, every acknowledged one is there once, at its seq.
    const log = logOf(old);
    expect(log).toEqual(logOf(next!));
    expect(log.find((e) => e.clientId === 'stranded')).toBeUndefined();
    for (const [clientId, seq] of acked) expect(log.filter((e) => e.clientId === clientId).map((e) => e.seq)).toEqual([seq]);
    expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
    // Retrying the stranded write now applies it exactly once, on the new leader.
    const retry = await post(`${next!.url}/v1/commands`, deposit('stranded', 'alice', 999));
    expect(retry.body.duplicate).toBe(false);
  });

  it('the leader never serves or publishes a write a majority has not acknowledged', async () => {
    const c = await cluster();
    const leader = await leaderOf(c);
    const w = await post(`${leader.url}/v1/commands`, deposit('base', 'alice', 100));
    expect(w.status).toBe(200);
    // Cut the leader's links to both followers: nothing it appends can commit.
    for (const [key, p] of c.proxies) if (key.startsWith(`${leader.name}>`)) p.partition('blackhole');
    const pending = post(`${leader.url}/v1/commands`, deposit('unacked', 'alice', 5));
    await until(() => leader.log.findByClientId('unacked') !== undefined, 'the leader to log the write');
    const read = await get(`${leader.url}/v1/accounts/alice`);
    expect(read.body.collateral).toBe(100);
    expect(Number(read.headers.get('x-statemirror-seq'))).toBe(w.body.seq);
    expect((await pending).status).toBe(503);
  });

  it('a stalled process (GC, long sync work) does not count as a dead leader', async () => {
    const c = await cluster();
    const leader = await leaderOf(c);
    const before = await post(`${leader.url}/v1/commands`, deposit('before-stall', 'alice', 1));
    // Settled first: both followers hold the write and follow this leader.
    await until(() => [...c.nodes.values()].every((n) => n === leader || (n.role === 'standby' && n.raft.leader === leader.name && n.log.lastSeq() >= before.body.seq)), 'a settled cluster');
    const epoch = leader.raft.epoch;
    let changes = 0;
    for (const n of c.nodes.values()) n.on('role', () => changes++);
    // Every node shares this event loop: block it well past the election timeout. The heartbeats
    // wait in the sockets while the timers run first; that silence is not the leader's.
    const until2 = Date.now() + 3 * T;
    while (Date.now() < until2) {
      // busy: simulating a stall, not waiting for anything
    }
    const w = await post(`${leader.url}/v1/commands`, deposit('after-stall', 'alice', 1));
    expect(w.status).toBe(200);
    expect(leader.raft.epoch).toBe(epoch);
    expect(changes).toBe(0);
  });

  it('a follower that lost its disk rejoins as a learner, is refilled, and votes again once caught up', async () => {
    const c = await cluster();
    const leader = await leaderOf(c);
    for (let i = 0; i < 20; i++) expect((await post(`${leader.url}/v1/commands`, deposit(`d${i}`, `acct${i % 3}`, 10 + i))).status).toBe(200);
    const victim = [...c.nodes.values()].find((n) => n !== leader)!;
    await victim.close();
    rmSync(join(c.dir, victim.name), { recursive: true, force: true });
    const wiped = await c.start(victim.name);
    expect(wiped.raft.clusterId === null || wiped.log.hardState().learner).toBe(true);
    await until(() => wiped.raft.clusterId === leader.raft.clusterId, 'the wiped node to adopt the cluster id');
    const w = await post(`${leader.url}/v1/commands`, deposit('after-wipe', 'bob', 1));
    expect(w.status).toBe(200);
    await until(() => wiped.replicated.applied >= w.body.seq && !wiped.log.hardState().learner, 'the learner to catch up and graduate');
    expect(logOf(wiped)).toEqual(logOf(leader));
    expect(wiped.replicated.machine.stateHash).toBe(leader.core!.stateHash);
  });

  it('a node with an empty disk never bootstraps a second history while its peers are away', async () => {
    const c = await cluster();
    const leader = await leaderOf(c);
    expect((await post(`${leader.url}/v1/commands`, deposit('h1', 'alice', 1))).status).toBe(200);
    const clusterId = leader.raft.clusterId;
    for (const n of [...c.nodes.values()]) await n.close();
    c.nodes.clear();
    const lone = c.names[0]!;
    rmSync(join(c.dir, lone), { recursive: true, force: true });
    const node = await c.start(lone);
    // It keeps asking its peers (unreachable) and stays out: no cluster id, no epoch, no leader.
    await until(() => Object.values(node.transport.status()).every((l) => l.dials >= 3), 'three dial attempts to each peer');
    expect(node.raft.role).toBe('joining');
    expect(node.raft.clusterId).toBeNull();
    expect(node.raft.epoch).toBe(0);
    expect((await get(`${node.url}/v1/status`)).body.role).toBe('starting');
    // The peers come back: it joins their cluster as a learner, never its own.
    for (const n of c.names.slice(1)) await c.start(n);
    await until(() => node.raft.clusterId === clusterId, 'the wiped node to join the existing cluster');
    const next = await leaderOf(c);
    await until(() => node.log.findByClientId('h1') !== undefined, 'the wiped node to be refilled');
    expect(logOf(node).slice(0, 1)).toEqual(logOf(next).slice(0, 1));
  });

  it('two nodes need each other: writes stop while one is down and resume when it returns', async () => {
    const cfg = testConfig({ coreNodes: 2, replication: { heartbeatMs: 40, electionTimeoutMs: T, commitTimeoutMs: 800 } });
    const c = await cluster(cfg);
    const leader = await leaderOf(c);
    expect((await post(`${leader.url}/v1/commands`, deposit('p1', 'alice', 1))).status).toBe(200);
    const other = [...c.nodes.values()].find((n) => n !== leader)!;
    const otherName = other.name;
    await other.close();
    c.nodes.delete(otherName);
    const refused = await post(`${leader.url}/v1/commands`, deposit('p2', 'alice', 1));
    expect(refused.status).toBe(503);
    await c.start(otherName);
    const again = await leaderOf(c);
    const ok = await post(`${again.url}/v1/commands`, deposit('p3', 'alice', 1));
    expect(ok.status).toBe(200);
  });

  it('refuses cluster peers without the secret or with an unknown name, and survives garbage from a real one', async () => {
    const c = await cluster();
    const leader = await leaderOf(c);
    const url = `${leader.url.replace('http', 'ws')}/v1/cluster`;
    const statusOf = (headers: Record<string, string>) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url, { headers });
        ws.on('error', () => {});
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      });
    expect(await statusOf({ authorization: 'Bearer wrong-secret-wrong-secret', 'x-statemirror-node': 'core-b' })).toBe(401);
    expect(await statusOf({ authorization: `Bearer ${c.cfg.replication.clusterSecret}`, 'x-statemirror-node': 'evil' })).toBe(403);
    const peer = [...c.nodes.values()].find((n) => n !== leader)!.name;
    for (const frame of [new Uint8Array(80 * 1024 * 1024), 'not msgpack', Uint8Array.of(0xc1), encodeMessage({ t: 5, cluster: 'other', from: peer, epoch: 1e9, prevSeq: 0, prevEpoch: 0, entries: [], commit: 0 })]) {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${c.cfg.replication.clusterSecret}`, 'x-statemirror-node': peer } });
      ws.on('error', () => {});
      await new Promise<void>((resolve) => {
        ws.on('open', () => {
          ws.send(frame);
          // A well-formed frame from another cluster is dropped (and counted), not closed on: close it ourselves.
          ws.close();
        });
        ws.on('close', () => resolve());
      });
    }
    expect(leader.role).toBe('primary');
    expect(leader.raft.refusedPeers).toBeGreaterThanOrEqual(1);
    expect((await post(`${leader.url}/v1/commands`, deposit('still-up', 'alice', 1))).status).toBe(200);
  });
});

// Snapshots in a real 3-node core (docs/snapshots.md): followers write one at every position while
// their apply waits, the leader fetches theirs (it never exports), every node ends with the same
// files, each agreeing with its own log; a restarted node starts from its newest valid snapshot (a
// corrupt newest one is set aside for the previous) and reaches the leader's exact state; a whole
// cluster restarted from snapshots elects, agrees and takes writes. Waits are bounded polls.
import { afterEach, describe, expect, it } from 'vitest';
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../../src/config/schema.js';
import { CoreNode } from '../../src/node/core-node.js';
import { readSnapshotFile } from '../../src/log/snapshot-file.js';
import { SqliteCommandLog } from '../../src/log/sqlite-log.js';
import { HashedMachine } from '../../src/engine/hashed-machine.js';
import type { LogEntry } from '../../src/log/command-log.js';
import type { Command, Result, Seq } from '../../src/domain/types.js';
import { get, post, tempDir, testConfig } from './helpers.js';

const base = testConfig({ coreNodes: 3, replication: { heartbeatMs: 40, electionTimeoutMs: 300, commitTimeoutMs: 3000 } });
const config: Config = { ...base, core: { ...base.core, snapshots: { everyEntries: 60, keep: 2, budgetMs: 1 } } };
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function startCluster(dir: string, cfg: Config = config): Promise<Map<string, CoreNode>> {
  const nodes = new Map<string, CoreNode>();
  for (const name of ['core-a', 'core-b', 'core-c']) {
    const node = new CoreNode(cfg, { nodeName: name, port: 0, dataDir: join(dir, name) });
    await node.listen();
    nodes.set(name, node);
  }
  return nodes;
}

function wire(nodes: Map<string, CoreNode>): void {
  for (const [name, node] of nodes) for (const [peer, other] of nodes) if (peer !== name) node.setPeerUrl(peer, other.url);
  for (const node of nodes.values()) node.begin();
}

async function leaderOf(nodes: Map<string, CoreNode>): Promise<CoreNode> {
  let leader: CoreNode | undefined;
  await until(() => (leader = [...nodes.values()].find((n) => n.role === 'primary')) !== undefined, 'a primary');
  return leader!;
}

async function write(leader: CoreNode, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i += 20) {
    const commands = Array.from({ length: Math.min(20, from + n - i) }, (_, k) => ({ clientId: `w-${i + k}`, type: 'deposit', account: `acct-${(i + k) % 13}`, amount: 10 + i + k }));
    const r = await post(`${leader.url}/v1/commands`, { commands });
    expect(r.status).toBe(200);
  }
}

const fileSeqs = (n: CoreNode) => n.snapshots!.store.list().map((f) => f.seq);

describe('a long log', () => {
  it('a cluster restarted on 120k entries without snapshots elects a leader that stays and takes writes', async () => {
    const cfg: Config = { ...config, core: { ...config.core, snapshots: { everyEntries: 0, keep: 2, budgetMs: 8 } } };
    const dir = tempDir('sm-long-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    // The log a long-running cluster leaves: written directly (no cluster needed), copied to two nodes.
    const seedDir = join(dir, 'seed');
    const log = new SqliteCommandLog(join(seedDir, 'log.db'));
    log.setHardState({ clusterId: 'long-cluster', epoch: 1, votedFor: 'core-a', learner: false });
    const hm = new HashedMachine(cfg.domain);
    for (let from = 1; from <= 120_000; from += 1000) {
      const batch: LogEntry[] = [];
      for (let seq = from; seq < from + 1000; seq++) {
        const command = { type: 'deposit', account: `acct-${seq % 500}`, amount: 1 } as Command;
        const { result, stateHash } = hm.apply({ seq: seq as Seq, tsMs: 1_700_000_000_000 + seq, command }, seq === from + 999);
        batch.push({ epoch: 1, seq: seq as Seq, clientId: `L${seq}`, tsMs: 1_700_000_000_000 + seq, command, result: result as Result, stateHash });
      }
      log.append(batch);
      hm.drainEffects();
    }
    log.close();
    for (const n of ['core-a', 'core-b', 'core-c']) cpSync(seedDir, join(dir, n), { recursive: true });
    const nodes = await startCluster(dir, cfg);
    cleanups.push(async () => {
      for (const n of nodes.values()) await n.close();
    });
    wire(nodes);
    const leader = await leaderOf(nodes);
    for (const id of ['acct-0', 'acct-7', 'acct-499']) expect(leader.replicated.machine.machine.account(id)).toEqual(hm.machine.account(id));
    await write(leader, 0, 40);
    // The leader stayed: every write went to it, and the first epoch it won is the one it holds.
    expect(leader.role).toBe('primary');
    expect(leader.raft.epoch).toBeLessThanOrEqual(4);
    await until(() => [...nodes.values()].every((n) => n.replicated.applied === leader.raft.commit), 'every node applied everything');
  }, 60_000);
});

describe('snapshots in a 3-node core', () => {
  it('retention trims every log; a wiped node is refilled from a peer\'s snapshot plus the tail', async () => {
    const cfg: Config = { ...config, core: { ...config.core, idempotencyWindow: 1000, snapshots: { everyEntries: 200, keep: 2, budgetMs: 1 }, retention: 'archive' } };
    const dir = tempDir('sm-snap-e2e-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const nodes = await startCluster(dir, cfg);
    cleanups.push(async () => {
      for (const n of nodes.values()) await n.close();
    });
    wire(nodes);
    const leader = await leaderOf(nodes);
    await write(leader, 0, 2000);
    // Every node trimmed its log below its oldest kept snapshot, never inside the last 1000 entries.
    await until(() => [...nodes.values()].every((n) => n.log.base().seq > 0), 'every log trimmed');
    for (const n of nodes.values()) {
      expect(n.log.base().seq).toBeLessThanOrEqual(n.log.lastSeq() - 1000);
      expect(readdirSync(join(dir, n.name, 'archive')).length).toBeGreaterThan(0);
    }
    // A retry of a recent command is still a duplicate, with its original seq.
    const again = await post(`${leader.url}/v1/commands`, { commands: [{ clientId: 'w-1990', type: 'deposit', account: `acct-${1990 % 13}`, amount: 10 + 1990 }] });
    expect(again.body.results[0]).toMatchObject({ duplicate: true });

    // Wipe a follower: it rejoins as a learner, the leader no longer holds entry 1, so it is told
    // to start after the leader's base and takes its state from a snapshot.
    const victim = [...nodes.values()].find((n) => n !== leader)!;
    const name = victim.name;
    await victim.close();
    rmSync(join(dir, name), { recursive: true, force: true });
    await write(leader, 2000, 100);
    const fresh = new CoreNode(cfg, { nodeName: name, port: 0, dataDir: join(dir, name) });
    await fresh.listen();
    nodes.set(name, fresh);
    for (const [peer, other] of nodes) if (peer !== name) {
      fresh.setPeerUrl(peer, other.url);
      other.setPeerUrl(name, fresh.url);
    }
    fresh.begin();
    await until(() => fresh.replicated.applied === leader.raft.commit && fresh.raft.role === 'follower', 'the wiped node refilled and caught up', 20_000);
    expect(fresh.replicated.machine.stateHash).toBe(leader.core!.stateHash);
    const st = fresh.snapshots!.status();
    expect(st.refilled?.seq).toBeGreaterThanOrEqual(leader.log.base().seq);
    expect(fresh.log.base().seq).toBeGreaterThan(0);
    await write(leader, 2100, 100);
    await until(() => fresh.replicated.applied === leader.raft.commit, 'the refilled node follows new writes');
    expect(fresh.replicated.machine.stateHash).toBe(leader.core!.stateHash);
  });

  it('every node holds the same snapshots; a restarted node starts from its newest valid one', async () => {
    const dir = tempDir('sm-snap-e2e-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const nodes = await startCluster(dir);
    cleanups.push(async () => {
      for (const n of nodes.values()) await n.close();
    });
    wire(nodes);
    const leader = await leaderOf(nodes);
    await write(leader, 0, 400);
    const commit = leader.raft.commit;
    // Followers write at their positions; the leader fetches theirs.
    await until(() => [...nodes.values()].every((n) => (fileSeqs(n)[0] ?? 0) >= commit - 60 && fileSeqs(n).length === 2), 'two snapshots on every node');
    // The leader fetches the newest position it committed (an older one is of no use once a newer
    // exists), so the newest file is the same everywhere.
    await until(() => new Set([...nodes.values()].map((n) => fileSeqs(n)[0])).size === 1, 'the same newest snapshot everywhere');
    for (const n of nodes.values()) {
      for (const f of n.snapshots!.store.list()) {
        const { meta } = readSnapshotFile(f.path);
        const e = n.log.entryAt(meta.seq)!;
        expect({ epoch: meta.epoch, stateHash: meta.stateHash }).toEqual({ epoch: e.epoch, stateHash: e.stateHash });
        expect(meta.seq % 60).toBeLessThan(20); // the first checkpoint at or after a multiple of 60
      }
    }
    const status = (await get(`${leader.url}/v1/status`)).body;
    expect(status.snapshots.fetched).toBeGreaterThan(0);
    expect(status.snapshots.taken).toBe(0);
    const follower = [...nodes.values()].find((n) => n !== leader)!;
    expect(follower.snapshots!.status().taken).toBeGreaterThan(0);

    // Snapshots are for peers only.
    const seq = fileSeqs(leader)[0]!;
    expect((await fetch(`${leader.url}/v1/cluster/snapshots/${seq}`)).status).toBe(401);
    const ok = await fetch(`${leader.url}/v1/cluster/snapshots/${seq}`, { headers: { authorization: `Bearer ${config.replication.clusterSecret}`, range: 'bytes=10-' } });
    expect(ok.status).toBe(206);
    expect(Buffer.from(await ok.arrayBuffer()).equals(readFileSync(leader.snapshots!.store.path(seq)).subarray(10))).toBe(true);
    const bad = await fetch(`${leader.url}/v1/cluster/snapshots/${seq}`, { headers: { authorization: `Bearer ${config.replication.clusterSecret}`, range: 'bytes=0-5' } });
    expect(bad.status).toBe(416);
    expect((await bad.json()).error.code).toBe('range_not_satisfiable');
    const peer = { authorization: `Bearer ${config.replication.clusterSecret}` };
    for (const [path, status, code] of [['../log.db', 404, 'not_found'], ['12abc', 400, 'invalid_query'], ['999999', 404, 'not_found']] as const) {
      const r = await fetch(`${leader.url}/v1/cluster/snapshots/${path}`, { headers: peer });
      expect(r.status, path).toBe(status);
      expect((await r.json()).error.code, path).toBe(code);
    }
    const list = await (await fetch(`${leader.url}/v1/cluster/snapshots`, { headers: peer })).json();
    expect(list.snapshots.map((f: { seq: number }) => f.seq)).toEqual(fileSeqs(leader));
    expect((await fetch(`${leader.url}/v1/cluster/snapshots`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);

    // Restart a follower with its newest snapshot corrupted: it takes the previous one.
    const name = follower.name;
    await follower.close();
    const [newest, previous] = fileSeqs(follower);
    const p = follower.snapshots!.store.path(newest!);
    const bytes = readFileSync(p);
    bytes[bytes.length >> 1]! ^= 0x55;
    writeFileSync(p, bytes);
    await write(leader, 400, 40);
    const again = new CoreNode(config, { nodeName: name, port: 0, dataDir: join(dir, name) });
    await again.listen();
    nodes.set(name, again);
    for (const [peer, other] of nodes) if (peer !== name) {
      again.setPeerUrl(peer, other.url);
      other.setPeerUrl(name, again.url);
    }
    again.begin();
    const st = again.snapshots!.status();
    expect(st.restoredFrom?.seq).toBe(previous);
    expect(st.corrupt).toBe(1);
    await until(() => again.replicated.applied === leader.raft.commit, 'the restarted node caught up');
    expect(again.replicated.machine.stateHash).toBe(leader.core!.stateHash);
    await until(() => again.snapshots!.status().verify === 'ok', 'the restored digests verified');
  });

  it('a whole cluster restarted from snapshots elects a leader with the same state and takes writes', async () => {
    const dir = tempDir('sm-snap-e2e-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    let nodes = await startCluster(dir);
    wire(nodes);
    let leader = await leaderOf(nodes);
    await write(leader, 0, 300);
    await until(() => [...nodes.values()].every((n) => fileSeqs(n).length >= 1), 'a snapshot on every node');
    const hash = leader.core!.stateHash;
    const seq = leader.core!.seq;
    for (const n of nodes.values()) await n.close();

    nodes = await startCluster(dir);
    cleanups.push(async () => {
      for (const n of nodes.values()) await n.close();
    });
    for (const n of nodes.values()) expect(n.snapshots!.status().restoredFrom?.seq).toBeGreaterThan(0);
    wire(nodes);
    leader = await leaderOf(nodes);
    // The new leader's epoch_start follows the old log: the state at `seq` is what it was.
    expect(leader.log.entryAt(seq)!.stateHash === '' || leader.log.entryAt(seq)!.stateHash === hash).toBe(true);
    await write(leader, 300, 100);
    await until(() => [...nodes.values()].every((n) => n.replicated.applied === leader.raft.commit), 'every node applied the new writes');
    const hashes = new Set([...nodes.values()].map((n) => n.replicated.machine.stateHash));
    expect(hashes.size).toBe(1);
    const r = await get(`${leader.url}/v1/accounts/acct-3`);
    expect(r.status).toBe(200);
  });
});

// Fault test with real processes on loopback: three core processes, every directed link between
// them through a LinkProxy in this process. Clients write continuously (over HTTP, and in frames
// over order-entry sessions) while the leader is hit at
// random points — SIGKILL (and restart), SIGSTOP (until the others elect, then SIGCONT) or a
// partition that cuts it off (then healed). Afterwards every acknowledged command is in every
// node's log exactly once with the acknowledged seq and result, all logs are identical, epochs only
// grow along the log, and the state hash equals a fresh replay. SIM_SEED reproduces the fault
// schedule (kinds and points in the write stream).
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMBEDDED_DEFAULTS, parseConfig } from '../../src/config/schema.js';
import { CoreProcesses, freePort, type NodeStatus } from '../../sim/process-cluster.js';
import { LinkProxy } from '../../sim/link-proxy.js';
import { SqliteCommandLog } from '../../src/log/sqlite-log.js';
import { readSnapshotFile, SnapshotStore } from '../../src/log/snapshot-file.js';
import { replay } from '../../src/engine/replay.js';
import { mulberry32 } from '../../sim/prng.js';
import { operatorToken, tempDir } from '../e2e/helpers.js';
import { WebSocket } from 'ws';
import { packFrame, unpackFrame } from '../../src/http/order-session.js';

const SEED = Number(process.env.SIM_SEED ?? Math.floor(Math.random() * 2 ** 31));
const FAULTS = 4;
const WRITERS = 3;
const SESSION_WRITERS = 2;
const T = 300;

const dir = tempDir('sm-fault-');
let cluster: CoreProcesses | null = null;
const proxies = new Map<string, LinkProxy>();
afterAll(async () => {
  await cluster?.stopAll();
  await Promise.all([...proxies.values()].map((p) => p.stop()));
  rmSync(dir, { recursive: true, force: true });
});

interface Acked {
  seq: number;
  result: unknown;
}

describe('SIGKILL, SIGSTOP and partition the leader of three core processes under load', () => {
  it(`loses no acknowledged write, applies none twice, forks nothing (SIM_SEED=${SEED})`, async () => {
    console.log(`fault test seed: SIM_SEED=${SEED}`);
    const rng = mulberry32(SEED);
    const raw = structuredClone(EMBEDDED_DEFAULTS) as any;
    const ports: number[] = [];
    for (const _ of raw.core.nodes) ports.push(await freePort());
    raw.core.nodes = raw.core.nodes.map((n: any, i: number) => ({ ...n, port: ports[i], dataDir: join(dir, n.name) }));
    raw.replication = { heartbeatMs: 50, electionTimeoutMs: T, commitTimeoutMs: 2000 };
    // Snapshots often, so kills land during exports and fetches and restarts start from one; the log
    // is kept whole ('keep') so the end can compare every node's log entry by entry.
    raw.core.snapshots = { everyEntries: 150, keep: 2, budgetMs: 2 };
    raw.core.retention = 'keep';
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify(raw));
    const config = parseConfig(raw);
    const names = config.core.nodes.map((n) => n.name);
    const authorization = `Bearer ${await operatorToken(config)}`;
    const urls = Object.fromEntries(config.core.nodes.map((n) => [n.name, `http://127.0.0.1:${n.port}`]));
    // a>b: what a dials to reach b.
    const peerUrls: Record<string, Record<string, string>> = {};
    for (const from of config.core.nodes) {
      peerUrls[from.name] = {};
      for (const to of config.core.nodes) {
        if (from === to) continue;
        const p = new LinkProxy({ name: `${from.name}>${to.name}`, targetHost: '127.0.0.1', targetPort: to.port, link: { latencyMs: 0.5, jitterMs: 0, lossPct: 0 } });
        await p.start();
        proxies.set(`${from.name}>${to.name}`, p);
        peerUrls[from.name]![to.name] = `http://127.0.0.1:${p.port}`;
      }
    }
    const isolate = (name: string, on: boolean) => {
      for (const [key, p] of proxies) if (key.startsWith(`${name}>`) || key.endsWith(`>${name}`)) on ? p.partition('blackhole') : p.heal();
    };
    cluster = new CoreProcesses({ configPath, urls, peerUrls });
    await Promise.all(names.map((n) => cluster!.start(n)));
    const leaderWithFollowers = (s: NodeStatus) => s.role === 'primary' && s.raft.peers.every((p) => p.lag === 0);
    await cluster.waitFor(leaderWithFollowers, 20_000, 'a leader with both followers');

    // Writers: each command has its own clientId and is retried (same id) against the next node
    // until acknowledged. Deposits are always accepted, so every ack changes state.
    const acked = new Map<string, Acked>();
    let stop = false;
    let progress: (() => void) | null = null;
    const writer = async (w: number) => {
      let target = w % names.length;
      for (let i = 0; !stop; i++) {
        const clientId = `w${w}-${i}`;
        const body = JSON.stringify({ clientId, type: 'deposit', account: `acct-${(w * 7 + i) % 13}`, amount: 1 + (i % 50) });
        for (;;) {
          try {
            const res = await fetch(`${cluster!.url(names[target]!)}/v1/commands`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization },
              body,
              signal: AbortSignal.timeout(3000),
            });
            const json = (await res.json()) as { seq?: number; result?: unknown };
            if (res.status === 200) {
              acked.set(clientId, { seq: json.seq!, result: json.result });
              progress?.();
              break;
            }
          } catch {
            // refused / reset / timeout (a killed or paused node): try the next one.
          }
          if (stop) return;
          target = (target + 1) % names.length;
          await new Promise((r) => setTimeout(r, 10)); // client retry backoff, not synchronisation
        }
      }
    };
    // Session writers: frames of 5 commands over an order-entry session; on any failure (refused,
    // closed, not_primary, a timeout) the same frame, same clientIds, goes to the next node.
    const sessionWriter = async (w: number) => {
      let target = w % names.length;
      let ws: WebSocket | null = null;
      let frameId = 0;
      const sendFrame = (commands: unknown[]) =>
        new Promise<{ results?: Array<{ clientId: string; seq: number; result: unknown }> } | null>((resolve) => {
          const id = ++frameId;
          const done = (v: { results?: Array<{ clientId: string; seq: number; result: unknown }> } | null) => {
            clearTimeout(timer);
            ws?.off('message', onMessage).off('close', onClose);
            resolve(v);
          };
          const onMessage = (data: Buffer) => {
            const msg = unpackFrame(data);
            if (msg.id === id) done(msg);
            else if (msg.id === undefined) done(null); // a session-level not_primary
          };
          const onClose = () => done(null);
          const timer = setTimeout(() => done(null), 3000);
          ws!.on('message', onMessage).on('close', onClose);
          ws!.send(packFrame({ id, commands }));
        });
      for (let i = 0; !stop; i += 5) {
        const commands = Array.from({ length: 5 }, (_, k) => ({ clientId: `s${w}-${i + k}`, type: 'deposit', account: `acct-${(w * 7 + i + k) % 13}`, amount: 1 + ((i + k) % 50) }));
        for (;;) {
          if (!ws || ws.readyState !== WebSocket.OPEN) {
            ws?.terminate();
            const next = new WebSocket(`${cluster!.url(names[target]!).replace('http', 'ws')}/v1/session`, { headers: { authorization } });
            ws = await new Promise<WebSocket | null>((resolve) => {
              next.once('open', () => resolve(next));
              next.once('error', () => resolve(null));
              next.once('unexpected-response', () => resolve(null));
            });
          }
          const answer = ws ? await sendFrame(commands) : null;
          if (answer?.results) {
            for (const r of answer.results) acked.set(r.clientId, { seq: r.seq, result: r.result });
            progress?.();
            break;
          }
          ws?.terminate();
          ws = null;
          if (stop) return;
          target = (target + 1) % names.length;
          await new Promise((r) => setTimeout(r, 10)); // client retry backoff, not synchronisation
        }
      }
      ws?.terminate();
    };
    const writers = [...Array.from({ length: WRITERS }, (_, w) => writer(w)), ...Array.from({ length: SESSION_WRITERS }, (_, w) => sessionWriter(w))];
    const waitForAcks = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const goal = acked.size + n;
        const timer = setTimeout(() => reject(new Error(`no progress: ${acked.size}/${goal} acks`)), 20_000);
        progress = () => {
          if (acked.size < goal) return;
          clearTimeout(timer);
          progress = null;
          resolve();
        };
      });

    const schedule: string[] = [];
    for (let k = 0; k < FAULTS; k++) {
      await waitForAcks(20 + Math.floor(rng() * 150)); // a random point in the write stream
      const leader = await cluster.waitFor((s) => s.role === 'primary', 10_000, 'the leader');
      const victim = leader.node;
      const kind = (['kill', 'pause', 'partition'] as const)[Math.floor(rng() * 3)]!;
      schedule.push(`${kind} ${victim}@epoch${leader.epoch}`);
      if (kind === 'kill') await cluster.kill(victim);
      else if (kind === 'pause') cluster.pause(victim);
      else isolate(victim, true);
      // The others elect a leader of a newer epoch and take writes again.
      const next = await cluster.waitFor((s) => s.role === 'primary' && s.node !== victim && s.epoch > leader.epoch, 10_000, `a new leader after ${kind}`);
      await waitForAcks(10);
      if (kind === 'kill') await cluster.start(victim);
      else if (kind === 'pause') cluster.resume(victim);
      else isolate(victim, false);
      // The victim comes back as a follower of a newer epoch and catches up.
      await cluster.waitFor((s) => s.node === next.node ? false : s.node === victim && s.role === 'standby' && s.epoch >= next.epoch, 15_000, `${victim} back as a follower`);
    }
    await waitForAcks(20);
    stop = true;
    await Promise.all(writers);
    const leader = await cluster.waitFor(leaderWithFollowers, 15_000, 'the leader with every follower caught up');
    // Followers apply what they learn is committed (the next heartbeat tells them): wait for that.
    let statuses: Array<NodeStatus | null> = [];
    const deadline = Date.now() + 10_000;
    do {
      statuses = await Promise.all(names.map((n) => cluster!.status(n)));
      if (statuses.every((s) => s?.seq === leader.seq)) break;
      await new Promise((r) => setTimeout(r, 20));
    } while (Date.now() < deadline);
    await cluster.stopAll();

    const logs = config.core.nodes.map((n) => new SqliteCommandLog(join(n.dataDir, 'log.db')));
    try {
      const survivor = logs[names.indexOf(leader.node)]!;
      const entries = [...survivor.entriesFrom(1)];
      expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
      for (let i = 1; i < entries.length; i++) expect(entries[i]!.epoch).toBeGreaterThanOrEqual(entries[i - 1]!.epoch);
      const byClient = new Map(entries.map((e) => [e.clientId, e]));
      expect(byClient.size).toBe(entries.length); // no client id twice
      for (const [clientId, a] of acked) {
        const e = byClient.get(clientId);
        expect(e, `acknowledged ${clientId} missing from the log`).toBeDefined();
        expect(e!.seq).toBe(a.seq);
        expect(e!.result).toEqual(a.result);
      }
      const fresh = replay(config.domain, survivor);
      expect(fresh.stateHash).toBe(entries.at(-1)!.stateHash);
      expect(fresh.stateHash).toBe(leader.stateHash);
      for (const log of logs) expect([...log.entriesFrom(1)]).toEqual(entries);
      for (const s of statuses) expect(s?.stateHash).toBe(leader.stateHash);
      // Snapshots were written, and every file agrees with the log at its seq.
      const restored = statuses.filter((s) => s?.snapshots?.restoredFrom).length;
      let files = 0;
      for (const n of config.core.nodes) {
        for (const f of new SnapshotStore(join(n.dataDir, 'snapshots')).list()) {
          const { meta } = readSnapshotFile(f.path);
          const e = entries[meta.seq - 1]!;
          expect({ epoch: meta.epoch, stateHash: meta.stateHash }).toEqual({ epoch: e.epoch, stateHash: e.stateHash });
          files += 1;
        }
      }
      expect(files).toBeGreaterThan(0);
      console.log(`fault test: ${files} snapshot files, all agreeing with the log; ${restored} node(s) last started from a snapshot`);
      const overSessions = [...acked.keys()].filter((k) => k.startsWith('s')).length;
      expect(overSessions).toBeGreaterThan(0); // the session writers did write through the faults
      console.log(`fault test: ${acked.size} acknowledged writes (${overSessions} over sessions), ${entries.length} log entries, faults: ${schedule.join(', ')}; final epoch ${leader.epoch}`);
    } finally {
      for (const log of logs) log.close();
    }
  }, 180_000);
});

// Fault test with real processes on loopback: clients write continuously while the primary core is
// SIGKILLed at random points, several times (each time the standby takes over and the killed node
// comes back as standby). Afterwards every acknowledged command is in the surviving log exactly
// once with the acknowledged seq and result, both nodes hold the same log, and the state hash
// equals a fresh replay of that log. SIM_SEED reproduces the kill points.
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMBEDDED_DEFAULTS } from '../../src/config/schema.js';
import { CoreProcesses, freePort } from '../../sim/process-cluster.js';
import { SqliteCommandLog } from '../../src/log/sqlite-log.js';
import { replay } from '../../src/engine/replay.js';
import { parseConfig } from '../../src/config/schema.js';
import { mulberry32 } from '../../sim/prng.js';
import { operatorToken, tempDir } from '../e2e/helpers.js';

const SEED = Number(process.env.SIM_SEED ?? Math.floor(Math.random() * 2 ** 31));
const KILLS = 3;
const WRITERS = 4;

const dir = tempDir('sm-fault-');
let cluster: CoreProcesses | null = null;
afterAll(async () => {
  await cluster?.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

interface Acked {
  seq: number;
  result: unknown;
}

describe('SIGKILL the primary under load', () => {
  it(`loses no acknowledged write and applies none twice (SIM_SEED=${SEED})`, async () => {
    console.log(`fault test seed: SIM_SEED=${SEED}`);
    const rng = mulberry32(SEED);
    const ports = [await freePort(), await freePort()];
    const raw = structuredClone(EMBEDDED_DEFAULTS) as any;
    raw.core.nodes = raw.core.nodes.map((n: any, i: number) => ({ ...n, port: ports[i], dataDir: join(dir, n.name) }));
    raw.replication = { mode: 'sync', heartbeatMs: 50, heartbeatTimeoutMs: 300, commitTimeoutMs: 2000 };
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify(raw));
    const config = parseConfig(raw);
    const authorization = `Bearer ${await operatorToken(config)}`;
    const urls = Object.fromEntries(config.core.nodes.map((n) => [n.name, `http://127.0.0.1:${n.port}`]));
    cluster = new CoreProcesses({ configPath, urls });
    await Promise.all(cluster.names.map((n) => cluster!.start(n)));
    const first = await cluster.waitFor((s) => s.role === 'primary' && s.replication?.standby != null, 15_000, 'a primary with its standby');

    // Writers: each command has its own clientId and is retried (same id) against whichever node
    // answers, until acknowledged. Deposits are always accepted, so every ack changes state.
    const acked = new Map<string, Acked>();
    let target = first.node;
    let stop = false;
    let progress: (() => void) | null = null;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const clientId = `w${w}-${i}`;
        const body = JSON.stringify({ clientId, type: 'deposit', account: `acct-${(w * 7 + i) % 13}`, amount: 1 + (i % 50) });
        for (;;) {
          try {
            const res = await fetch(`${cluster!.url(target)}/v1/commands`, {
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
            // connection refused / reset / timeout: the node died; fall through to switch.
          }
          if (stop) return;
          target = cluster!.names.find((n) => n !== target)!;
          await new Promise((r) => setTimeout(r, 10)); // client retry backoff, not synchronisation
        }
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
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

    let expectedEpoch = first.epoch;
    for (let k = 0; k < KILLS; k++) {
      await waitForAcks(20 + Math.floor(rng() * 150)); // a random point in the write stream
      const primary = await cluster.waitFor((s) => s.role === 'primary', 5000, 'the primary');
      const victim = primary.node;
      await cluster.kill(victim);
      expectedEpoch += 1;
      const promoted = await cluster.waitFor((s) => s.role === 'primary' && s.node !== victim, 10_000, 'promotion');
      expect(promoted.epoch).toBe(expectedEpoch);
      await cluster.start(victim);
      await cluster.waitFor((s) => s.role === 'primary' && s.replication?.standby === victim, 10_000, 'the killed node back as standby');
    }
    await waitForAcks(20);
    stop = true;
    await Promise.all(writers);
    const primary = await cluster.waitFor((s) => s.role === 'primary', 5000, 'the primary');
    await cluster.waitFor((s) => s.role === 'standby' && s.seq === primary.seq, 10_000, 'the standby in sync');
    await cluster.stopAll();

    const logs = config.core.nodes.map((n) => new SqliteCommandLog(join(n.dataDir, 'log.db')));
    try {
      const survivor = logs.find((_, i) => config.core.nodes[i]!.name === primary.node)!;
      const entries = [...survivor.entriesFrom(1)];
      expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
      const byClient = new Map(entries.map((e) => [e.clientId, e]));
      expect(byClient.size).toBe(entries.length); // no client id twice
      for (const [clientId, a] of acked) {
        const e = byClient.get(clientId);
        expect(e, `acknowledged ${clientId} missing from the log`).toBeDefined();
        expect(e!.seq).toBe(a.seq);
        expect(e!.result).toEqual(a.result);
      }
      expect(entries.filter((e) => e.command.type === 'epoch_start')).toHaveLength(KILLS);
      const fresh = replay(config.domain, survivor);
      expect(fresh.stateHash).toBe(entries.at(-1)!.stateHash);
      expect(fresh.stateHash).toBe(primary.stateHash);
      for (const log of logs) expect([...log.entriesFrom(1)]).toEqual(entries);
      console.log(`fault test: ${acked.size} acknowledged writes, ${entries.length} log entries, ${KILLS} kills, epoch ${primary.epoch}`);
    } finally {
      for (const log of logs) log.close();
    }
  }, 120_000);
});

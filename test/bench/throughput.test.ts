// Behaviour of the throughput bench library (not speed): the write load is acknowledged only for
// durable commands and every command the core logged was acknowledged (drain leaves nothing in
// flight), the raw baseline appends exactly the acknowledged payloads, and the read load against
// the bare hono baseline gets only 2xx answers. Short runs on a single-node core bound to port 0.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMBEDDED_DEFAULTS, parseConfig } from '../../src/config/schema.js';
import { startCoreNode, type CoreNode } from '../../src/node/core-node.js';
import { measureCoreWrites, measureRawSqliteAppend, measureReads, startBareHono } from '../../bench/lib/throughput.js';
import { decodeBatch } from '../../src/log/sqlite-log.js';
import { operatorToken } from '../e2e/helpers.js';

const DURATION_MS = 500;
const ACCOUNTS = 8;

describe('bench/lib/throughput', () => {
  let dir: string;
  let core: CoreNode;
  let writes: Awaited<ReturnType<typeof measureCoreWrites>>;
  let token: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sm-bench-'));
    const config = parseConfig({
      ...EMBEDDED_DEFAULTS,
      core: { nodes: [{ name: 'core-a', port: 0, dataDir: join(dir, 'core-a') }] },
    });
    core = await startCoreNode(config, { port: 0, dataDir: join(dir, 'core-a') });
    token = await operatorToken(config);
    writes = await measureCoreWrites({ coreUrl: core.url, durationMs: DURATION_MS, connections: 8, accounts: ACCOUNTS, token });
  });

  afterAll(async () => {
    await core?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('acknowledges only durable commands, and every logged command was acknowledged', async () => {
    expect(writes.commands).toBeGreaterThan(0);
    expect(writes.errors).toBe(0);
    expect(writes.non2xx).toBe(0);
    expect(writes.unacked).toBe(0);
    expect(writes.payloads).toHaveLength(writes.commands);
    expect(writes.commandsPerSec).toBeCloseTo(writes.commands / writes.seconds);
    expect(writes.ackP99Ms).toBeGreaterThanOrEqual(writes.ackP50Ms);
    expect(writes.ackP50Ms).toBeGreaterThan(0);
    expect(writes.avgBatch).toBeGreaterThanOrEqual(1);

    const status = (await (await fetch(`${core.url}/v1/status`)).json()) as { seq: number };
    expect(status.seq).toBe(writes.commands);
    expect(core.log.lastSeq()).toBe(writes.commands);
    for (const p of writes.payloads) {
      const { clientId } = JSON.parse(p) as { clientId: string };
      expect(core.log.findByClientId(clientId)?.clientId).toBe(clientId);
    }
  });

  it('appends exactly the acknowledged payloads to the raw baseline', () => {
    const raw = measureRawSqliteAppend({ payloads: writes.payloads, batchSize: writes.avgBatch ?? 64, dir });
    expect(raw.commands).toBe(writes.payloads.length);
    expect(raw.batches).toBe(Math.ceil(writes.payloads.length / Math.max(1, Math.round(writes.avgBatch ?? 64))));
    const db = new Database(raw.path, { readonly: true });
    try {
      expect(db.prepare<[], { n: number }>('SELECT sum(n) AS n FROM log_batch').get()!.n).toBe(writes.payloads.length);
      // Same stored form as the core's log: the command without its clientId, packed by encodeBatch.
      const first = db.prepare<[], { entries: Buffer }>('SELECT entries FROM log_batch WHERE first_seq = 1').get()!;
      const stored = decodeBatch(1, first.entries)[0]!;
      const { clientId, ...command } = JSON.parse(writes.payloads[0]!) as Record<string, unknown>;
      expect(stored.clientId).toBe(clientId);
      expect(stored.command).toEqual(core.log.findByClientId(clientId as string)!.command);
      expect(stored.command).toEqual(command);
    } finally {
      db.close();
    }
    expect(() => measureRawSqliteAppend({ payloads: writes.payloads, dir })).toThrow(/fresh file/);
  });

  it('reads the bare hono baseline with 2xx answers only', async () => {
    const objects = new Map<string, unknown>();
    for (let i = 0; i < ACCOUNTS; i++) {
      const res = await fetch(`${core.url}/v1/accounts/acct-${i}`, { headers: { authorization: `Bearer ${token}` } });
      if (res.ok) objects.set(`acct-${i}`, await res.json());
    }
    expect(objects.size).toBeGreaterThan(0);
    const bare = await startBareHono(objects);
    try {
      const reads = await measureReads({
        baseUrl: bare.url,
        paths: [...objects.keys()].map((id) => `/v1/accounts/${id}`),
        durationMs: DURATION_MS,
        connections: 8,
        token,
      });
      expect(reads.requests).toBeGreaterThan(0);
      expect(reads.non2xx).toBe(0);
      expect(reads.errors).toBe(0);
      expect(reads.p99Ms).toBeGreaterThanOrEqual(reads.p50Ms);
      const first = [...objects.entries()][0]!;
      expect(await (await fetch(`${bare.url}/v1/accounts/${first[0]}`)).json()).toEqual(first[1]);
    } finally {
      await bare.close();
    }
  });
});

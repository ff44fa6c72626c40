// Catch-up of a fresh regional read node: a single-node core (real CoreNode, SQLite log) is seeded
// with `accounts` accounts (one deposit each, submitted straight to the sequencer in batches, no
// HTTP: seedMs), then a read node with an empty data dir starts behind a LinkProxy with the given
// link and we time until it serves a generation (ready()) AND its complete seq equals the core's
// seq (catchUpMs). bytesTransferred is every byte the link proxy forwarded (both directions:
// discovery HTTP + y-websocket sync). Invariants: the core is idle while the read node catches
// up (the target seq is fixed), waits are event-driven ('advanced') and bounded, and everything
// started here is stopped before returning (or throwing).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as Y from 'yjs';
import { startRegion, type RegionNode } from '../../src/cli/cluster.js';
import { EMBEDDED_DEFAULTS, parseConfig } from '../../src/config/schema.js';
import { CoreNode } from '../../src/node/core-node.js';
import type { Submission } from '../../src/engine/sequencer.js';
import { assert } from '../../src/domain/assert.js';
import type { Amount } from '../../src/domain/types.js';
import type { LinkSpec } from '../../sim/link-proxy.js';

export interface CatchUpOptions {
  accounts: number;
  link: LinkSpec;
  /** Parent dir for the core's log and the read node's store (created if missing). */
  dataDir: string;
  /** Bound on the read node's catch-up (default 120 s). */
  timeoutMs?: number;
}

export interface CatchUpResult {
  accounts: number;
  seedMs: number;
  catchUpMs: number;
  bytesTransferred: number;
  /** Σ Y.encodeStateAsUpdate over the core's docs once seeded. */
  stateBytesV1: number;
  /** Σ JSON.stringify(doc.toJSON()) over the same docs: the plain JSON of the same data. */
  jsonBytes: number;
}

const REGION = 'bench-region';
const SEED_BATCH = 1000;
const DEPOSIT = 1_000_000;

export async function measureCatchUp(opts: CatchUpOptions): Promise<CatchUpResult> {
  assert(opts.accounts >= 1, 'need at least one account');
  const timeoutMs = opts.timeoutMs ?? 120_000;
  mkdirSync(opts.dataDir, { recursive: true });
  const config = parseConfig({
    ...EMBEDDED_DEFAULTS,
    core: { nodes: [{ name: 'bench-core', port: 0, dataDir: join(opts.dataDir, 'core') }], maxBatch: SEED_BATCH },
    regions: [{ name: REGION, port: 0, upstream: 'core', dataDir: join(opts.dataDir, REGION) }],
    links: [{ from: 'core', to: REGION, ...opts.link }],
  });
  assert(opts.accounts <= config.domain.limits.maxAccounts, 'more accounts than domain.limits.maxAccounts');
  const node = new CoreNode(config, { port: 0 });
  let region: RegionNode | null = null;
  try {
    await node.start();
    const core = node.core;
    assert(core !== null && node.role === 'primary', 'single-node core did not become primary');

    const seedStart = performance.now();
    for (let i = 0; i < opts.accounts; i += SEED_BATCH) {
      const subs: Submission[] = [];
      for (let j = i; j < Math.min(opts.accounts, i + SEED_BATCH); j++) {
        subs.push({ clientId: `seed-${j}`, command: { type: 'deposit', account: `acct${j}`, amount: DEPOSIT as Amount } });
      }
      const outcomes = await core.sequencer.submit(subs);
      for (const o of outcomes) assert(o.kind === 'committed' && o.result.status === 'accepted', `seed deposit not accepted: ${JSON.stringify(o)}`);
    }
    const seedMs = performance.now() - seedStart;
    const target = core.seq;
    let stateBytesV1 = 0;
    let jsonBytes = 0;
    for (const doc of core.publisher.docs.values()) {
      stateBytesV1 += Y.encodeStateAsUpdate(doc).length;
      jsonBytes += Buffer.byteLength(JSON.stringify(doc.toJSON()));
    }

    const regionConfig = config.regions[0]!;
    const catchUpStart = performance.now();
    region = await startRegion(config, regionConfig, {
      upstreams: [{ host: '127.0.0.1', port: node.port }],
      port: 0,
      dataDir: join(opts.dataDir, REGION),
    });
    const reader = region.node;
    await reader.ready(timeoutMs);
    const remainingMs = Math.max(0, timeoutMs - (performance.now() - catchUpStart));
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (reader.seqFor({ kind: 'all' }) < target) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`read node at seq ${reader.seqFor({ kind: 'all' })}, core at ${target}, after ${timeoutMs} ms`));
      }, remainingMs);
      const cleanup = () => {
        clearTimeout(timer);
        reader.off('advanced', check);
      };
      reader.on('advanced', check);
      check();
    });
    const catchUpMs = performance.now() - catchUpStart;
    assert(reader.seqFor({ kind: 'all' }) === target, 'read node went past the (idle) core');
    const bytesTransferred = region.proxies.reduce((sum, p) => sum + p.stats.bytesForwarded, 0);
    return { accounts: opts.accounts, seedMs, catchUpMs, bytesTransferred, stateBytesV1, jsonBytes };
  } finally {
    await region?.close();
    await node.close();
  }
}

// bench:snapshots helper, its own process: writes a core node's data dir as a long-running cluster
// would have left it — a log of `entries` deposits over `accounts` accounts in batches of 1024
// (results, checkpoint hashes, epoch 1, a cluster id) — and optionally a snapshot at the last
// batch end, with the log below it dropped (as retention leaves it). Measures the snapshot export
// in one go and spread over turns (8 ms budget, the longest turn and event-loop delay).
// `node --import tsx bench/proc/snapgen.ts '<json {dir, accounts, entries, snapshot, trim}>'` → JSON.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { rmSync, statSync } from 'node:fs';
import { EMBEDDED_DEFAULTS } from '../../src/config/schema.js';
import { HashedMachine } from '../../src/engine/hashed-machine.js';
import { take } from '../../src/engine/snapshot.js';
import { SqliteCommandLog } from '../../src/log/sqlite-log.js';
import { SnapshotStore } from '../../src/log/snapshot-file.js';
import type { LogEntry } from '../../src/log/command-log.js';
import type { Command, Result, Seq } from '../../src/domain/types.js';

const o = JSON.parse(process.argv[2]!) as { dir: string; accounts: number; entries: number; snapshot: boolean; trim: boolean };
const domain = { ...EMBEDDED_DEFAULTS.domain, limits: { ...EMBEDDED_DEFAULTS.domain.limits, maxAccounts: Math.max(o.accounts + 10, EMBEDDED_DEFAULTS.domain.limits.maxAccounts) } };
const log = new SqliteCommandLog(join(o.dir, 'log.db'), { idempotencyWindow: 1000, retention: 'drop' });
log.setHardState({ clusterId: 'bench-cluster', epoch: 1, votedFor: 'core-a', learner: false });
const hm = new HashedMachine(domain as never);
const t0 = performance.now();
const BATCH = 1024;
for (let from = 1; from <= o.entries; from += BATCH) {
  const to = Math.min(o.entries, from + BATCH - 1);
  const batch: LogEntry[] = [];
  for (let seq = from; seq <= to; seq++) {
    const command = { type: 'deposit', account: `acct-${(seq - 1) % o.accounts}`, amount: 1000 } as Command;
    const { result, stateHash } = hm.apply({ seq: seq as Seq, tsMs: 1_700_000_000_000 + seq, command }, seq === to);
    batch.push({ epoch: 1, seq: seq as Seq, clientId: `g-${seq}`, tsMs: 1_700_000_000_000 + seq, command, result: result as Result, stateHash });
  }
  log.append(batch);
  hm.drainEffects();
}
const genMs = performance.now() - t0;
let snap: Record<string, number> | null = null;
if (o.snapshot) {
  const store = new SnapshotStore(join(o.dir, 'snapshots'));
  // In one go: the export's whole cost (what a stall would be without spreading it).
  const t1 = performance.now();
  const once = (await take(hm, 1, store, { budgetMs: Number.POSITIVE_INFINITY }))!;
  const exportMs = performance.now() - t1;
  // Spread over turns as a follower does it: the longest turn and the event loop's worst delay.
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const spread = (await take(hm, 1, new SnapshotStore(join(o.dir, 'snapshots-spread')), { budgetMs: 8 }))!;
  h.disable();
  rmSync(join(o.dir, 'snapshots-spread'), { recursive: true, force: true });
  snap = { seq: once.seq, bytes: once.bytes, exportMs, spreadLongestTurnMs: spread.longestTurnMs, spreadTurns: spread.turns, spreadMaxDelayMs: h.max / 1e6 };
  if (o.trim) log.dropThrough(once.seq);
}
log.close();
console.log(JSON.stringify({ genMs, logBytes: statSync(join(o.dir, 'log.db')).size, lastSeq: o.entries, snapshot: snap }));

// `npm run bench:snapshots -- [--matrix 100000x200000,100000x1000000,1000000x1000000] [--skip-refill]`
// Issue 13's measurements, every measured node its own process, with and without snapshots in the
// same run, for each ACCOUNTSxENTRIES of the matrix:
//   - restart: a core node restarting on a data dir holding that log (bench/proc/snapgen.ts writes
//     it, with a snapshot at its end) — without snapshots it replays the whole log, with them it
//     loads the snapshot and the (empty) tail; "state" is the state restored, "published" adds the
//     first Yjs generation (written a slice per turn above 20 000 accounts);
//   - refill: a wiped third node joining two nodes holding that log — without snapshots the leader
//     streams every entry; with them the log below the snapshot was dropped (retention), so the
//     leader sends RESET and the node fetches the snapshot and the tail;
//   - the snapshot export in one go vs spread over turns (the longest turn, the worst event-loop
//     delay), and a compaction on a leader under writes vs the old synchronous rebuild (baseline).
// Report: bench/results/snapshots-<time>.md.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { EMBEDDED_DEFAULTS } from '../src/config/schema.js';
import { SqliteCommandLog } from '../src/log/sqlite-log.js';
import { CoreProcesses, freePort } from '../sim/process-cluster.js';

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--snapshots'),
  options: {
    matrix: { type: 'string', default: '100000x200000,100000x1000000,1000000x1000000' },
    'skip-refill': { type: 'boolean', default: false },
  },
});
const matrix = values.matrix.split(',').map((c) => c.split('x').map(Number) as [number, number]);
const root = mkdtempSync(join(tmpdir(), 'sm-snapbench-'));
const log = (line: string) => process.stderr.write(`${line}\n`);

function runNode(args: string[]): Promise<any> {
  const child = spawn(process.execPath, ['--max-old-space-size=8192', '--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!)) : reject(new Error(`${args[0]} exited ${code}: ${err}`)))),
  );
}

const domainFor = (accounts: number) => ({ ...EMBEDDED_DEFAULTS.domain, limits: { ...EMBEDDED_DEFAULTS.domain.limits, maxAccounts: Math.max(accounts + 10, EMBEDDED_DEFAULTS.domain.limits.maxAccounts) } });

/** A wiped core-c joins core-a and core-b (both holding `src`); ms until it applied `lastSeq`. */
async function refill(src: string, accounts: number, lastSeq: number, withSnapshots: boolean): Promise<{ ms: number; refilledFrom: number | null }> {
  const dir = mkdtempSync(join(root, 'refill-'));
  const names = ['core-a', 'core-b', 'core-c'];
  const ports = await Promise.all(names.map(() => freePort()));
  for (const n of names.slice(0, 2)) cpSync(src, join(dir, n), { recursive: true });
  const raw = {
    ...EMBEDDED_DEFAULTS,
    core: {
      ...EMBEDDED_DEFAULTS.core,
      nodes: names.map((name, i) => ({ name, port: ports[i]!, dataDir: join(dir, name) })),
      idempotencyWindow: 1000,
      snapshots: { everyEntries: withSnapshots ? 1_000_000_000 : 0, keep: 2, budgetMs: 8 },
      retention: withSnapshots ? 'drop' : 'keep',
    },
    domain: domainFor(accounts),
    replication: { ...(EMBEDDED_DEFAULTS as any).replication, commitTimeoutMs: 10_000 },
  };
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(raw));
  const cluster = new CoreProcesses({ configPath, urls: Object.fromEntries(names.map((n, i) => [n, `http://127.0.0.1:${ports[i]}`])) });
  try {
    await cluster.start('core-a', 600_000);
    await cluster.start('core-b', 600_000);
    const leader = await cluster.waitFor((s) => s.role === 'primary', 600_000, 'a primary');
    const target = leader.commit;
    const t0 = performance.now();
    await cluster.start('core-c', 600_000);
    const c = await (async () => {
      for (let i = 0; ; i++) {
        const s = await cluster.status('core-c');
        if (s && s.seq >= target && s.seq >= lastSeq) return s;
        if (i % 250 === 249) log(`    core-c: ${JSON.stringify({ role: s?.role, seq: s?.seq, lastSeq: s?.lastSeq, commit: s?.commit, snapshots: s?.snapshots })}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const ms = performance.now() - t0;
    return { ms, refilledFrom: (c as unknown as { snapshots?: { refilled?: { seq: number } | null } }).snapshots?.refilled?.seq ?? null };
  } finally {
    await cluster.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Row {
  accounts: number;
  entries: number;
  gen: { genMs: number; logBytes: number; snapshot: { seq: number; bytes: number; exportMs: number; spreadLongestTurnMs: number; spreadTurns: number; spreadMaxDelayMs: number } };
  restartWithout: { stateMs: number; primaryMs: number };
  restartWith: { stateMs: number; primaryMs: number; constructedMs: number };
  refillWithout?: { ms: number };
  refillWith?: { ms: number; refilledFrom: number | null };
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const compactions = new Map<number, any>();
  for (const [accounts, entries] of matrix) {
    log(`${accounts} accounts, ${entries} entries: writing the log and a snapshot`);
    const g = join(root, `gen-${accounts}-${entries}`);
    mkdirSync(g);
    const gen = await runNode(['bench/proc/snapgen.ts', JSON.stringify({ dir: g, accounts, entries, snapshot: true, trim: false })]);
    const copy = (name: string) => {
      const d = join(root, name);
      cpSync(g, d, { recursive: true });
      return d;
    };
    log('  restart without snapshots');
    const r1dir = copy('r1');
    rmSync(join(r1dir, 'snapshots'), { recursive: true, force: true });
    const restartWithout = await runNode(['bench/proc/restart.ts', JSON.stringify({ dir: r1dir, accounts, snapshots: false, lastSeq: entries })]);
    rmSync(r1dir, { recursive: true, force: true });
    log('  restart with snapshots');
    const r2dir = copy('r2');
    const restartWith = await runNode(['bench/proc/restart.ts', JSON.stringify({ dir: r2dir, accounts, snapshots: true, lastSeq: entries })]);
    rmSync(r2dir, { recursive: true, force: true });
    const row: Row = { accounts, entries, gen, restartWithout, restartWith };
    if (!values['skip-refill']) {
      log('  refill without snapshots');
      const plain = copy('plain');
      rmSync(join(plain, 'snapshots'), { recursive: true, force: true });
      row.refillWithout = await refill(plain, accounts, entries, false);
      rmSync(plain, { recursive: true, force: true });
      log('  refill with snapshots');
      const trimmed = copy('trimmed');
      const l = new SqliteCommandLog(join(trimmed, 'log.db'), { idempotencyWindow: 1000, retention: 'drop' });
      l.dropThrough(gen.snapshot.seq - 1000);
      l.close();
      row.refillWith = await refill(trimmed, accounts, entries, true);
      rmSync(trimmed, { recursive: true, force: true });
    }
    rmSync(join(root, 'snapshots-spread'), { recursive: true, force: true });
    rmSync(g, { recursive: true, force: true });
    rows.push(row);
    if (!compactions.has(accounts)) {
      log(`  compaction on a leader with ${accounts} accounts under writes`);
      const d = join(root, `compaction-${accounts}`);
      mkdirSync(d);
      compactions.set(accounts, await runNode(['bench/proc/compaction.ts', JSON.stringify({ dir: d, accounts })]));
      rmSync(d, { recursive: true, force: true });
    }
  }
  rmSync(root, { recursive: true, force: true });

  const f = (n: number | undefined | null, d = 0) => (n == null ? '–' : n.toFixed(d));
  const lines = [
    '# Snapshots: restart, refill and stalls',
    '',
    `${new Date().toISOString()}, node ${process.version}; each restart, each core node and each generator is its own process; the log is deposits over the accounts in batches of 1024, with a snapshot at its end.`,
    '',
    '| accounts | entries | log MB | snapshot MB | restart without: state / published s | restart with: state / published s | × (state) | refill without s | refill with s | × |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) =>
      `| ${r.accounts} | ${r.entries} | ${f(r.gen.logBytes / 1e6, 1)} | ${f(r.gen.snapshot.bytes / 1e6, 1)} | ${f(r.restartWithout.stateMs / 1000, 2)} / ${f(r.restartWithout.primaryMs / 1000, 2)} | ${f(r.restartWith.stateMs / 1000, 2)} / ${f(r.restartWith.primaryMs / 1000, 2)} | ${f(r.restartWith.stateMs / r.restartWithout.stateMs, 2)} | ${f(r.refillWithout ? r.refillWithout.ms / 1000 : null, 2)} | ${f(r.refillWith ? r.refillWith.ms / 1000 : null, 2)} | ${r.refillWith && r.refillWithout ? f(r.refillWith.ms / r.refillWithout.ms, 2) : '–'} |`,
    ),
    '',
    '"state": the node\'s state machine holds the log\'s last entry (from the snapshot plus the tail, or by replaying everything, 1024 entries per turn); "published": it also wrote and serves its first Yjs generation (above 20 000 accounts a slice per turn, while it already takes writes). Refill: from the wiped node\'s start until it applied the leader\'s commit.',
    '',
    '| accounts | entries | export in one go ms | spread: longest turn ms | turns | worst event-loop delay ms |',
    '|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.accounts} | ${r.entries} | ${f(r.gen.snapshot.exportMs)} | ${f(r.gen.snapshot.spreadLongestTurnMs, 1)} | ${r.gen.snapshot.spreadTurns} | ${f(r.gen.snapshot.spreadMaxDelayMs, 1)} |`),
    '',
    'A follower writes its snapshot spread over turns (8 ms budget) while its apply waits; the leader never exports (it fetches its followers\' file, streamed to disk).',
    '',
    '| accounts | old synchronous rebuild ms (baseline) | build ms | turns | longest turn ms | worst event-loop delay ms | ack p99 during the build ms |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...[...compactions.values()].map((c) => `| ${c.accounts} | ${f(c.syncRebuildMs)} | ${f(c.buildMs)} | ${c.buildTurns} | ${f(c.longestTurnMs, 1)} | ${f(c.maxEventLoopDelayMs, 1)} | ${f(c.ackP99Ms, 1)} |`),
    '',
    'Compaction on a single-node leader with writes of 256 deposits in flight; the baseline is the stall a compaction was before (one synchronous publishAll of every doc).',
  ];
  const report = lines.join('\n');
  mkdirSync('bench/results', { recursive: true });
  const path = `bench/results/snapshots-${new Date().toISOString().replace(/[:.]/g, '-')}.md`;
  writeFileSync(path, `${report}\n`);
  console.log(report);
  console.log(`report: ${path}`);
}

await main();

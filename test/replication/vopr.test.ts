// The replication protocol under the deterministic simulator (sim/vopr): many seeds with every
// fault enabled must keep every invariant; and each defect of the old two-node protocol, put back
// into the Raft code one at a time, must be caught. SIM_SEED=<n> runs one seed and prints its run.
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../src/log/command-log.js';
import { RaftNode, type RaftOptions } from '../../src/replication/raft.js';
import { simulate, type SimOptions, type SimResult } from '../../sim/vopr/simulator.js';

const SEEDS = Number(process.env.SIM_SEEDS ?? 1000);
const BASE = { durationMs: 1500, clientIntervalMs: 25 } satisfies Partial<SimOptions>;

function campaign(from: number, count: number, o: Partial<SimOptions> = {}): SimResult[] {
  const failed: SimResult[] = [];
  for (let seed = from; seed < from + count; seed++) {
    const r = simulate({ ...BASE, ...o, seed });
    if (!r.ok) failed.push(r);
  }
  return failed;
}

function report(failed: SimResult[]): string {
  return failed.map((r) => `seed ${r.seed}: ${r.failure}\n  reproduce: SIM_SEED=${r.seed} npx vitest run test/replication/vopr.test.ts`).join('\n');
}

/** Runs seeds until the defect is caught; returns the first failure (or undefined). */
function firstCatch(makeRaft: (o: RaftOptions<LogEntry>) => RaftNode<LogEntry>, maxSeeds: number, o: Partial<SimOptions> = {}): SimResult | undefined {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = simulate({ ...BASE, ...o, seed, makeRaft });
    if (!r.ok) return r;
  }
  return undefined;
}

describe('replication protocol under the deterministic simulator', () => {
  const one = process.env.SIM_SEED;
  if (one !== undefined) {
    it(`seed ${one}`, () => {
      const r = simulate({ ...BASE, seed: Number(one) });
      console.log(JSON.stringify(r, null, 2));
      expect(r.failure ?? null).toBeNull();
    });
    return;
  }

  it(`${SEEDS} seeds with every fault keep every invariant`, () => {
    const from = Number(process.env.SIM_FROM ?? 1);
    const failed = campaign(from, SEEDS);
    expect(report(failed)).toBe('');
  });

  it('with snapshots and log retention: restarts from snapshots, lagging and wiped nodes RESET and refilled', () => {
    const failed = campaign(1, 400, { snapshotEvery: 10 });
    expect(report(failed).replace(/reproduce: SIM_SEED/g, 'reproduce (snapshotEvery 10): SIM_SEED')).toBe('');
    // The campaign did exercise what it is for.
    const faults: Record<string, number> = {};
    for (let seed = 1; seed <= 40; seed++) for (const [k, v] of Object.entries(simulate({ ...BASE, seed, snapshotEvery: 10 }).faults)) faults[k] = (faults[k] ?? 0) + v;
    expect(faults['refilled']).toBeGreaterThan(0);
    expect(faults['restoredFromSnapshot']).toBeGreaterThan(0);
    expect(faults['logTrimmed']).toBeGreaterThan(0);
    expect(faults['snapshotFetched']).toBeGreaterThan(0);
  });

  it('five nodes too', () => {
    expect(report(campaign(1, 100, { nodes: 5 }))).toBe('');
  });

  // Each old defect, reintroduced into the Raft code, is caught within a bounded number of seeds.
  it('catches defect 1: a leader that commits alone (silent solo mode)', () => {
    class Solo extends RaftNode<LogEntry> {
      protected override commitQuorum(): number {
        return 1;
      }
    }
    const r = firstCatch((o) => new Solo(o), 200);
    expect(r?.failure).toMatch(/committed|lost|state hash/);
  });

  it('catches defect 2: elections only at start-up (a cluster that wedges)', () => {
    class StartupOnly extends RaftNode<LogEntry> {
      protected override mayCampaign(): boolean {
        return this.epoch === 0;
      }
    }
    const r = firstCatch((o) => new StartupOnly(o), 200);
    expect(r?.failure).toMatch(/liveness/);
  });

  it('catches defect 3: two sides judging "caught up" by different rules (a vote for a stale log)', () => {
    class AnyLog extends RaftNode<LogEntry> {
      protected override logUpToDate(): boolean {
        return true;
      }
    }
    const r = firstCatch((o) => new AnyLog(o), 500);
    expect(r?.failure).toMatch(/committed|lost|state hash|two leaders/);
  });

  it('catches defect 4: no cluster identity (an empty disk votes as if it never had history)', () => {
    class NoIdentity extends RaftNode<LogEntry> {
      protected override joinsAsLearner(): boolean {
        return false;
      }
    }
    const r = firstCatch((o) => new NoIdentity(o), 2000);
    expect(r?.failure).toMatch(/committed|lost|state hash|two leaders/);
  });
});

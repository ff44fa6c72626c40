// Test helpers for Core-level tests (core, api, publish): a standard Core factory, temp dirs and
// bounded waits. Not a test file itself (no .test suffix).
import { createCoreApp } from '../../src/http/write-routes.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Core, type CoreOptions } from '../../src/publish/core.js';
import { MemoryCommandLog } from '../../src/log/memory-log.js';
import type { Command } from '../../src/domain/types.js';
import { BTC, ETH, cmd, testConfig } from '../domain/helpers.js';

export { BTC, ETH, testConfig };
export const MARKETS = [BTC, ETH] as const;

export function coreOptions(overrides: Partial<CoreOptions> = {}): CoreOptions {
  return {
    domain: testConfig(),
    layout: { accountShards: 4, markets: [...MARKETS] },
    bookDepth: 50,
    tradesKept: 20,
    maxBatch: 64,
    maxQueue: 1000,
    ...overrides,
  };
}

/** A Core on a MemoryCommandLog unless `log` or `dataDir` is given. */
export function makeCore(overrides: Partial<CoreOptions> = {}): Core {
  const opts = coreOptions(overrides);
  if (opts.log === undefined && opts.dataDir === undefined) opts.log = new MemoryCommandLog();
  return new Core(opts);
}

export function tempDir(prefix = 'statemirror-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export { cmd };

/** Races a promise against a timeout so a missing event fails the test instead of hanging it. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Seed for randomized tests: SIM_SEED reproduces, otherwise time-based; callers print it. */
export function seedFromEnv(): number {
  const env = process.env.SIM_SEED;
  return env !== undefined && env !== '' ? Number(env) >>> 0 : (Date.now() ^ 0x5eed) >>> 0;
}

/** Seeded stream of mixed commands: deposits, withdrawals (some rejected), crossing GTC/IOC orders, cancels (some unknown), junk. */
export function commandStream(rnd: () => number, n: number, accounts: readonly string[] = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']): Command[] {
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const out: Command[] = accounts.map((a) => cmd.deposit(a, 5_000_000));
  // Seqs (== order ids) of each account's GTC orders, so most cancels name a real order.
  const placed = new Map<string, number[]>();
  while (out.length < n) {
    const account = rnd() < 0.03 ? 'mallory' : pick(accounts);
    const r = rnd();
    if (r < 0.08) out.push(cmd.deposit(account, int(1, 100_000)));
    else if (r < 0.14) out.push(cmd.withdraw(account, int(1, 8_000_000)));
    else if (r < 0.3) {
      const mine = placed.get(account) ?? [];
      out.push(cmd.cancel(account, mine.length > 0 && rnd() < 0.8 ? pick(mine) : int(1, out.length + 5)));
    } else {
      const tif = rnd() < 0.2 ? 'IOC' : 'GTC';
      out.push(cmd.order(account, pick(MARKETS), rnd() < 0.5 ? 'buy' : 'sell', int(990, 1010), int(1, 25), tif));
      if (tif === 'GTC') placed.set(account, [...(placed.get(account) ?? []), out.length]);
    }
  }
  return out.slice(0, n);
}

/** The core's HTTP app over `core`, as CoreNode builds it, for app.request() tests. */
export function coreApp(core: Core, opts: { secrets: { jwtSecret: string; clusterSecret: string }; maxBodyBytes: number; maxCommandsPerRequest: number }) {
  return createCoreApp({
    core,
    domain: core.opts.domain,
    layout: core.opts.layout,
    region: 'core',
    maxBodyBytes: opts.maxBodyBytes,
    maxCommandsPerRequest: opts.maxCommandsPerRequest,
    readLimits: { minSeqWaitMsDefault: 200, minSeqWaitMsMax: 1000 },
    secrets: opts.secrets,
  });
}

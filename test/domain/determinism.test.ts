// Deterministic simulation: a seeded random command stream applied to two machines must give
// byte-identical results and snapshots; a different stream must give a different snapshot; and
// conservation invariants hold after every command. Prints its seed; SIM_SEED=<n> reproduces.

import { describe, it, expect } from 'vitest';
import { canonicalJson } from '../../src/domain/canonical.js';
import { seq } from '../../src/domain/ints.js';
import { StateMachine } from '../../src/domain/state-machine.js';
import type { Command, Envelope } from '../../src/domain/types.js';
import { BTC, ETH, mulberry32, testConfig } from './helpers.js';

const COMMANDS = 5000;
const ACCOUNTS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace'];
const MARKETS = [BTC, ETH];

const envSeed = process.env.SIM_SEED;
const SEED = envSeed !== undefined && envSeed !== '' ? Number(envSeed) >>> 0 : (Date.now() ^ 0x5eed) >>> 0;

/** Generates a plausible stream: mostly valid orders around a drifting mid, some junk. */
function generate(seedValue: number, n: number): Envelope[] {
  const rnd = mulberry32(seedValue);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const mids = new Map(MARKETS.map((m) => [m, 1000]));
  const out: Envelope[] = [];
  for (let i = 1; i <= n; i++) {
    const account = rnd() < 0.02 ? 'mallory-unknown' : pick(ACCOUNTS);
    const r = rnd();
    let command: Command;
    if (r < 0.12) {
      command = { type: 'deposit', account, amount: (rnd() < 0.03 ? 0 : int(1_000, 300_000)) as never };
    } else if (r < 0.18) {
      command = { type: 'withdraw', account, amount: int(1, 200_000) as never };
    } else if (r < 0.85) {
      const market = rnd() < 0.01 ? 'DOGE-USD' : pick(MARKETS);
      const mid = mids.get(market) ?? 1000;
      const nextMid = Math.max(50, mid + int(-3, 3));
      mids.set(market, nextMid);
      const side = rnd() < 0.5 ? 'buy' : 'sell';
      // Takers cross the mid a little, makers sit a little behind it.
      const offset = int(-15, 15);
      const price = rnd() < 0.01 ? 0 : nextMid + (side === 'buy' ? offset : -offset);
      command = {
        type: 'place_order',
        account,
        market,
        side,
        price: price as never,
        qty: (rnd() < 0.01 ? 2_000_000 : int(1, 60)) as never,
        tif: rnd() < 0.3 ? 'IOC' : 'GTC',
      };
    } else {
      // Mostly recent ids (likely resting), sometimes anything.
      const id = rnd() < 0.8 ? Math.max(1, i - int(1, 200)) : int(1, i + 10);
      command = { type: 'cancel_order', account, orderId: id as never };
    }
    out.push({ seq: seq(i), tsMs: 1_700_000_000_000 + i * 7, command });
  }
  return out;
}

interface Ledger {
  deposits: number;
  withdrawals: number;
}

/** Plain checks (not expect(): called after every command, expect's overhead dominates). */
function checkInvariants(sm: StateMachine, ledger: Ledger, maxOpen: number, at: number): void {
  const fail = (msg: string): never => {
    throw new Error(`invariant broken after seq ${at} (seed ${SEED}): ${msg}`);
  };
  const qtyByMarket = new Map<string, number>();
  let collateral = 0;
  let realized = 0;
  for (const id of sm.accountIds()) {
    const a = sm.account(id) ?? fail(`account ${id} listed but missing`);
    collateral += a.collateral;
    if (a.openOrders.length > maxOpen) fail(`${id} has ${a.openOrders.length} open orders`);
    if (a.available !== a.collateral - a.marginRequired) fail(`${id} available mismatch`);
    for (const p of a.positions) {
      qtyByMarket.set(p.market, (qtyByMarket.get(p.market) ?? 0) + p.qty);
      realized += p.realizedPnl;
      if (p.costBasis < 0 || (p.qty === 0 && p.costBasis !== 0)) fail(`${id} ${p.market} costBasis ${p.costBasis} qty ${p.qty}`);
    }
    for (const o of a.openOrders) if (o.remaining <= 0) fail(`order ${o.orderId} rests with ${o.remaining}`);
  }
  for (const [m, q] of qtyByMarket) if (q !== 0) fail(`net position in ${m} is ${q}`);
  if (collateral - (ledger.deposits - ledger.withdrawals) !== realized) {
    fail(`collateral ${collateral} - net deposits ${ledger.deposits - ledger.withdrawals} != realized ${realized}`);
  }
  for (const m of sm.marketSymbols()) {
    const b = sm.book(m, 1);
    const bid = b?.bids[0];
    const ask = b?.asks[0];
    if (bid !== undefined && ask !== undefined && bid.price >= ask.price) fail(`${m} crossed: ${bid.price} >= ${ask.price}`);
  }
}

function runStream(envs: Envelope[], check: boolean): { machine: StateMachine; results: string[] } {
  const config = testConfig({ maxOpenOrdersPerAccount: 20 });
  const machine = new StateMachine(config);
  const ledger: Ledger = { deposits: 0, withdrawals: 0 };
  const results: string[] = [];
  for (const env of envs) {
    const r = machine.apply(env);
    results.push(canonicalJson(r));
    if (r.status === 'accepted' && env.command.type === 'deposit') ledger.deposits += env.command.amount;
    if (r.status === 'accepted' && env.command.type === 'withdraw') ledger.withdrawals += env.command.amount;
    if (check) checkInvariants(machine, ledger, config.limits.maxOpenOrdersPerAccount, env.seq);
  }
  return { machine, results };
}

describe('deterministic simulation', () => {
  it(`same stream -> identical snapshots; invariants hold throughout (seed ${SEED})`, () => {
    console.log(`domain simulation seed: ${SEED} (reproduce with SIM_SEED=${SEED})`);
    const envs = generate(SEED, COMMANDS);
    const a = runStream(envs, true);
    // The second machine gets structurally-cloned envelopes, as if read back from the log.
    const b = runStream(JSON.parse(JSON.stringify(envs)) as Envelope[], false);
    expect(b.results).toEqual(a.results);
    const snapA = canonicalJson(a.machine.snapshot());
    expect(canonicalJson(b.machine.snapshot())).toBe(snapA);
    expect(a.machine.lastSeq).toBe(COMMANDS);

    // The stream must actually exercise the machine, or the equality above proves little.
    const kinds = a.results.map((r) => JSON.parse(r) as { status: string; fills?: unknown[]; selfTradeCancelled?: unknown[] });
    const tally = new Map<string, number>();
    for (const r of kinds) {
      const k = r.status === 'rejected' ? (r as { code?: string }).code ?? '?' : (r.fills?.length ?? 0) > 0 ? 'filled' : 'accepted';
      tally.set(k, (tally.get(k) ?? 0) + 1);
    }
    console.log('outcomes:', Object.fromEntries([...tally].sort()));
    expect(kinds.filter((r) => (r.fills?.length ?? 0) > 0).length).toBeGreaterThan(100);
    expect(kinds.filter((r) => r.status === 'rejected').length).toBeGreaterThan(50);
    expect(kinds.filter((r) => (r.selfTradeCancelled?.length ?? 0) > 0).length).toBeGreaterThan(0);

    const trades = a.machine.drainEffects().trades;
    expect(trades.length).toBeGreaterThan(100);
    expect(b.machine.drainEffects().trades).toEqual(trades);
  });

  it('a different stream gives a different snapshot', () => {
    const a = runStream(generate(SEED, COMMANDS), false);
    const b = runStream(generate((SEED + 1) >>> 0, COMMANDS), false);
    expect(canonicalJson(b.machine.snapshot())).not.toBe(canonicalJson(a.machine.snapshot()));
  });

  it('one altered command changes the snapshot', () => {
    const envs = generate(SEED, 500);
    const altered = envs.map((e) => ({ ...e }));
    const first = altered.findIndex((e) => e.command.type === 'deposit');
    const target = altered[first];
    if (target !== undefined && target.command.type === 'deposit') {
      target.command = { ...target.command, amount: (target.command.amount + 1) as never };
    }
    const a = runStream(envs, false);
    const b = runStream(altered, false);
    expect(canonicalJson(b.machine.snapshot())).not.toBe(canonicalJson(a.machine.snapshot()));
  });
});

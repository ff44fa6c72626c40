// canonicalAccountView writes exactly canonicalJson(view) for every account view the machine
// produces (so the state hash is unchanged by using it), over a simulated run with positions,
// resting orders, liquidations and the insurance fund; a non-integer is still refused.
import { describe, expect, it } from 'vitest';
import { StateMachine } from '../../src/domain/state-machine.js';
import { canonicalJson } from '../../src/domain/canonical.js';
import { canonicalAccountView } from '../../src/engine/state-hash.js';
import type { AccountView, Seq } from '../../src/domain/types.js';
import { commandStream, testConfig } from './helpers.js';
import { mulberry32 } from '../domain/helpers.js';

describe('canonicalAccountView', () => {
  it('equals canonicalJson for every account after every command of a simulated run', () => {
    const m = new StateMachine(testConfig());
    const accounts = Array.from({ length: 10 }, (_, i) => `acct-${i}`);
    let seq = 0;
    let orders = 0;
    for (const command of commandStream(mulberry32(7), 2000, accounts)) {
      m.apply({ seq: ++seq as Seq, tsMs: 1_700_000_000_000 + seq, command });
      m.drainEffects();
      for (const id of m.accountIds()) {
        const v = m.account(id)!;
        orders += v.openOrders.length;
        expect(canonicalAccountView(v)).toBe(canonicalJson(v));
      }
    }
    expect(orders).toBeGreaterThan(0);
  });

  it('refuses a non-integer like canonicalJson does', () => {
    const v: AccountView = { id: 'x', collateral: 1.5, marginRequired: 0, available: 0, positions: [], openOrders: [] };
    expect(() => canonicalAccountView(v)).toThrow(/non-integer/);
    expect(canonicalAccountView({ ...v, collateral: -0 })).toBe(canonicalJson({ ...v, collateral: -0 }));
  });
});

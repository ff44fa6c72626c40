// The state machine's snapshot (exportState / fromSnapshot): a machine rebuilt from a snapshot taken
// at any point, after a round trip through JSON text (as on disk), has the same state hash and the
// same canonical export, and then answers every later command exactly as the original does — so
// books, queues, marks, holders and open interest all came back.
import { describe, expect, it } from 'vitest';
import { StateMachine } from '../../src/domain/state-machine.js';
import { hashFromScratch } from '../../src/engine/state-hash.js';
import { canonicalJson } from '../../src/domain/canonical.js';
import type { Seq } from '../../src/domain/types.js';
import { commandStream, testConfig } from '../core/helpers.js';
import { mulberry32 } from '../domain/helpers.js';

describe('state machine snapshots', () => {
  it('a machine rebuilt from a snapshot equals the original, now and for every later command', () => {
    const config = testConfig();
    const accounts = Array.from({ length: 12 }, (_, i) => `acct-${i}`);
    const commands = commandStream(mulberry32(42), 4000, accounts);
    const a = new StateMachine(config);
    let seq = 0;
    const cuts = new Set([1, 700, 2000, 3300]);
    const copies: StateMachine[] = [];
    for (const command of commands) {
      seq++;
      const env = { seq: seq as Seq, tsMs: 1_700_000_000_000 + seq, command };
      const expected = a.apply(env);
      // Every copy taken so far answers this command the same way.
      for (const b of copies) expect(canonicalJson(b.apply(env))).toBe(canonicalJson(expected));
      a.drainEffects();
      if (cuts.has(seq)) {
        const snap = JSON.parse(JSON.stringify(a.exportState()));
        const b = StateMachine.fromSnapshot(config, snap);
        expect(hashFromScratch(b)).toBe(hashFromScratch(a));
        expect(b.exportState()).toEqual(a.exportState());
        copies.push(b);
      }
    }
    expect(copies).toHaveLength(4);
    for (const b of copies) expect(hashFromScratch(b)).toBe(hashFromScratch(a));
    // The run did exercise what a snapshot must carry.
    const final = a.exportState();
    expect(final.orders.length).toBeGreaterThan(0);
    expect(final.accounts.some((x) => x.positions.some((p) => p.qty !== 0))).toBe(true);
  });
});

// The state machine plus its incremental state hash, advanced together one entry at a time, so
// every log entry can carry the hash of the state right after it. Used identically by the primary
// (sequencing), the standby (checking each shipped entry) and replay, so all three compute hashes
// the same way. Effects accumulate across entries until the publisher drains them per batch.
import { StateMachine } from '../domain/state-machine.js';
import type { DomainConfig, Effects, Envelope, Result, Seq } from '../domain/types.js';
import { StateHasher } from './state-hash.js';

export class HashedMachine {
  readonly machine: StateMachine;
  private readonly hasher = new StateHasher();
  private pending: Effects = { accounts: new Set(), markets: new Set(), trades: [], liquidations: [] };
  private hashedDeposits = 0;
  private hash: string;

  constructor(domain: DomainConfig) {
    this.machine = new StateMachine(domain);
    // Reference prices are marks from the start: part of the state before any command.
    this.hasher.recordMarkets(this.machine, this.machine.marketSymbols());
    this.hash = this.hasher.hash(0);
  }

  get lastSeq(): Seq {
    return this.machine.lastSeq;
  }

  get stateHash(): string {
    return this.hash;
  }

  apply(env: Envelope): { result: Result; stateHash: string } {
    const result = this.machine.apply(env);
    const effects = this.machine.drainEffects();
    for (const id of effects.accounts) {
      this.hasher.update(this.machine.account(id)!);
      this.pending.accounts.add(id);
    }
    this.hasher.recordMarkets(this.machine, effects.markets);
    for (const m of effects.markets) this.pending.markets.add(m);
    if (this.machine.totalDeposits !== this.hashedDeposits) {
      this.hashedDeposits = this.machine.totalDeposits;
      this.hasher.record('#deposits', this.hashedDeposits === 0 ? undefined : this.hashedDeposits);
    }
    for (const t of effects.trades) this.pending.trades.push(t);
    for (const l of effects.liquidations) this.pending.liquidations.push(l);
    this.hash = this.hasher.hash(env.seq);
    return { result, stateHash: this.hash };
  }

  /** What every entry applied since the last drain touched. */
  drainEffects(): Effects {
    const out = this.pending;
    this.pending = { accounts: new Set(), markets: new Set(), trades: [], liquidations: [] };
    return out;
  }
}

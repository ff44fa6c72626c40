// The state machine plus its incremental state hash. The hash is a function of the state alone
// (engine/state-hash.ts), so it need not be computed after every entry: what an entry touched is
// remembered, and folded into the hash at a checkpoint — the last entry of each sequenced batch
// carries the hash (the others carry ''), followers and replay check it there, and any reader of
// `stateHash` gets it up to date. An account touched by 50 commands of a batch is hashed once.
// Used identically by the leader (sequencing), followers (checking each shipped entry) and replay,
// so all compute hashes the same way. Effects accumulate across entries until the publisher drains
// them per batch. Invariant: after flush(), the hash equals hashFromScratch(machine) — for a
// machine restored from a snapshot, once firstWrongDigest has found nothing over every account.
import { StateMachine } from '../domain/state-machine.js';
import type { AccountView, DomainConfig, Effects, Envelope, Result, Seq } from '../domain/types.js';
import { canonicalAccountView, StateHasher } from './state-hash.js';

export class HashedMachine {
  readonly machine: StateMachine;
  private readonly hasher = new StateHasher();
  private pending: Effects = { accounts: new Set(), markets: new Set(), trades: [], liquidations: [] };
  private hashedDeposits = 0;
  private hash: string;
  /** Touched since the last checkpoint: folded into the hash by flush(). */
  private readonly dirtyAccounts = new Set<string>();
  private readonly dirtyMarkets = new Set<string>();
  private hashedSeq = 0;
  /** The account views the last flush built (fresh objects, never mutated): publishing reuses them. */
  private flushed = new Map<string, AccountView>();

  constructor(domain: DomainConfig, restored?: { machine: StateMachine; ids: readonly string[]; digests: Uint8Array }) {
    if (restored === undefined) {
      this.machine = new StateMachine(domain);
      // Reference prices are marks from the start: part of the state before any command.
      this.hasher.recordMarkets(this.machine, this.machine.marketSymbols());
      this.hash = this.hasher.hash(0);
      return;
    }
    // From a snapshot: the accounts' digests come with it (re-hashing a million accounts would cost
    // seconds); the small rest is hashed here.
    this.machine = restored.machine;
    this.hasher.seedAll(restored.ids, restored.digests);
    this.hasher.recordMarkets(this.machine, this.machine.marketSymbols());
    this.hashedDeposits = this.machine.totalDeposits;
    if (this.hashedDeposits !== 0) this.hasher.record('#deposits', this.hashedDeposits);
    this.hashedSeq = this.machine.lastSeq;
    this.hash = this.hasher.hash(this.hashedSeq);
  }

  /** The digest of account `id` in the state hash as of the last checkpoint (for a snapshot). */
  digestOf(id: string): bigint | undefined {
    this.flush();
    return this.hasher.digestOf(id);
  }

  /**
   * Checks the seeded digests of `ids` against the state (call at a checkpoint, i.e. right after
   * reading stateHash, with nothing applied since): returns the first id whose digest is not that of
   * its current view. A restored machine runs this over every account in the background.
   */
  firstWrongDigest(ids: Iterable<string>): string | null {
    this.flush();
    for (const id of ids) {
      const view = this.machine.account(id);
      if (view === undefined) return id;
      if (this.hasher.digestOf(id) !== StateHasher.digestOfText(id, canonicalAccountView(view))) return id;
    }
    return null;
  }

  get lastSeq(): Seq {
    return this.machine.lastSeq;
  }

  /** The hash of the current state (folds in whatever was touched since the last checkpoint). */
  get stateHash(): string {
    this.flush();
    return this.hash;
  }

  /**
   * Applies one entry. With `checkpoint`, the returned stateHash is the hash after it; without, ''
   * (the hash is computed at the next checkpoint or read, from the state alone).
   */
  apply(env: Envelope, checkpoint = true): { result: Result; stateHash: string } {
    const result = this.machine.apply(env);
    const effects = this.machine.drainEffects();
    for (const id of effects.accounts) {
      this.dirtyAccounts.add(id);
      this.pending.accounts.add(id);
    }
    for (const m of effects.markets) {
      this.dirtyMarkets.add(m);
      this.pending.markets.add(m);
    }
    for (const t of effects.trades) this.pending.trades.push(t);
    for (const l of effects.liquidations) this.pending.liquidations.push(l);
    return { result, stateHash: checkpoint ? this.stateHash : '' };
  }

  private flush(): void {
    if (this.hashedSeq === this.machine.lastSeq && this.dirtyAccounts.size === 0 && this.dirtyMarkets.size === 0) return;
    this.flushed = new Map();
    for (const id of this.dirtyAccounts) {
      const view = this.machine.account(id)!;
      this.flushed.set(id, view);
      this.hasher.update(view);
    }
    this.dirtyAccounts.clear();
    this.hasher.recordMarkets(this.machine, this.dirtyMarkets);
    this.dirtyMarkets.clear();
    if (this.machine.totalDeposits !== this.hashedDeposits) {
      this.hashedDeposits = this.machine.totalDeposits;
      this.hasher.record('#deposits', this.hashedDeposits === 0 ? undefined : this.hashedDeposits);
    }
    this.hashedSeq = this.machine.lastSeq;
    this.hash = this.hasher.hash(this.hashedSeq);
  }

  /**
   * The view of `id` as of the last checkpoint, if that checkpoint touched it and nothing was
   * applied since; else built now. Either way the current state's view.
   */
  accountView(id: string): AccountView | undefined {
    if (this.hashedSeq === this.machine.lastSeq) {
      const v = this.flushed.get(id);
      if (v !== undefined) return v;
    }
    return this.machine.account(id);
  }

  /** What every entry applied since the last drain touched. */
  drainEffects(): Effects {
    const out = this.pending;
    this.pending = { accounts: new Set(), markets: new Set(), trades: [], liquidations: [] };
    return out;
  }
}

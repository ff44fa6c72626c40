// Incremental state hash. The state machine's state is fully described by lastSeq and the set of
// account views (resting orders carry price and seq, so every book's price-time queue is derivable
// from them). The hash is an additive multiset hash: Σ sha256(canonical(account)) mod 2^256,
// folded with lastSeq. It depends only on the state, not on the history, so a replay, a standby
// or a restart reach the same value; and updating it costs O(accounts touched), not O(state).
import { createHash } from 'node:crypto';
import { canonicalJson } from '../domain/canonical.js';
import type { AccountView } from '../domain/types.js';

const MOD = 1n << 256n;

function digest(text: string): bigint {
  return BigInt('0x' + createHash('sha256').update(text).digest('hex'));
}

export class StateHasher {
  private readonly perAccount = new Map<string, bigint>();
  private sum = 0n;

  /** Records the current view of an account (call for every touched account). */
  update(view: AccountView): void {
    const next = digest(canonicalJson(view));
    const prev = this.perAccount.get(view.id) ?? 0n;
    this.sum = (((this.sum - prev + next) % MOD) + MOD) % MOD;
    this.perAccount.set(view.id, next);
  }

  /** Hex sha256 over lastSeq and the account multiset. */
  hash(lastSeq: number): string {
    return createHash('sha256').update(`statemirror/v1:${lastSeq}:${this.sum.toString(16)}`).digest('hex');
  }
}

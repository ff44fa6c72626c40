// The read model: what a read can ask (ReadModel, answered by a read node from its local copy and
// by the core from its published docs; http/read-routes.ts serves it) and the doc reads behind it —
// per-scope completeness from the stamps, accounts, books and trades — plus the bounded waits of
// `?minSeq=`.
// Invariants: a scope's seq is the minimum over the docs it depends on of the highest
// layout.completeSeq each has shown in this generation, so a read never claims a seq its docs don't
// fully reflect, and never reports less than it did before in the same generation; nothing here
// writes to a doc.
import type * as Y from 'yjs';
import type { AccountView, BookLevel, TradeView } from '../domain/types.js';
import { ACCOUNTS, BOOK, TRADES, accountShardDoc, bookSide, completeSeq, decodeValue, marketDoc, shardOf, type Layout } from '../publish/layout.js';

/** A market's published book and mark (its last trade, docs/risk.md; null before any). */
export interface MarketBook {
  bids: BookLevel[];
  asks: BookLevel[];
  mark: number | null;
}

/**
 * An account view with each position marked at its market's mark and the equity that gives
 * (collateral + Σ unrealized): display values computed at read time from the market docs.
 */
export function withMarks(view: AccountView, markOf: (market: string) => number | null) {
  let equity = view.collateral;
  const positions = view.positions.map((p) => {
    const mark = markOf(p.market);
    const unrealizedPnl = mark === null || p.qty === 0 ? 0 : p.qty * mark - Math.sign(p.qty) * p.costBasis;
    equity += unrealizedPnl;
    return { ...p, mark, unrealizedPnl };
  });
  return { ...view, equity, positions };
}

/** What a read depends on: one account's shard, one market, or everything. */
export type ReadScope = { kind: 'account'; id: string } | { kind: 'market'; symbol: string } | { kind: 'all' };

export interface ReadModel {
  readonly region: string;
  generation(): string | null;
  /** Seq up to which `scope` is complete locally. */
  seqFor(scope: ReadScope): number;
  /** Resolves true once seqFor(scope) >= minSeq, false after timeoutMs. */
  waitFor(scope: ReadScope, minSeq: number, timeoutMs: number): Promise<boolean>;
  account(id: string): AccountView | undefined;
  hasMarket(symbol: string): boolean;
  book(symbol: string): MarketBook | undefined;
  trades(symbol: string, limit: number): TradeView[];
  status(): Record<string, unknown>;
}

/** One generation's docs, as the reads see them. */
export interface DocSource {
  doc(name: string): Y.Doc | undefined;
  readonly meta: Y.Doc;
}

/** The docs a scope depends on. */
export function scopeDocs(layout: Layout, names: readonly string[], scope: ReadScope): readonly string[] {
  // An account read also shows each position at its market's mark: it depends on the market docs.
  if (scope.kind === 'account') return [accountShardDoc(shardOf(scope.id, layout.accountShards)), ...layout.markets.map(marketDoc)];
  if (scope.kind === 'market') return [marketDoc(scope.symbol)];
  return names;
}

/**
 * Per source (one generation's docs), the highest seq each doc was ever seen complete up to. A doc
 * complete up to X stays so (updates only add later changes), but layout.completeSeq can report
 * less after meta arrives ahead of the doc's own update (its changedAt moved past the doc's
 * stamp): the floor keeps every answer monotonic within a generation. One entry per doc.
 */
const completeFloor = new WeakMap<DocSource, Map<string, number>>();

/** Seq up to which every one of `docs` is complete (0 without a source); never decreases per source. */
export function seqOf(source: DocSource | null, docs: readonly string[]): number {
  if (!source) return 0;
  let floors = completeFloor.get(source);
  if (!floors) completeFloor.set(source, (floors = new Map()));
  let seq = Number.POSITIVE_INFINITY;
  for (const name of docs) {
    const c = Math.max(floors.get(name) ?? 0, completeSeq(name, source.doc(name)!, source.meta));
    floors.set(name, c);
    seq = Math.min(seq, c);
  }
  return Number.isFinite(seq) ? seq : 0;
}

/** Each market doc's sides as arrays, rebuilt when the doc changed (per doc, weakly held). */
const books = new WeakMap<Y.Doc, { at: number; bids: BookLevel[]; asks: BookLevel[] }>();
/** A counter bumped by every transaction on a doc: cheap "changed since" for derived values. */
const versionsOf = new WeakMap<Y.Doc, { n: number }>();
function docVersion(doc: Y.Doc): number {
  let v = versionsOf.get(doc);
  if (v === undefined) {
    const counter = { n: 0 };
    doc.on('afterTransaction', () => (counter.n += 1));
    versionsOf.set(doc, (v = counter));
  }
  return v.n;
}

/** Parsed values by key, reused while the stored text is the same (same value, same object). */
const PARSED_MAX = 20_000;
const parsed = new Map<string, { raw: unknown; value: unknown }>();
function parsedValue<T>(key: string, raw: unknown): T | undefined {
  if (raw === undefined) return undefined;
  const hit = parsed.get(key);
  if (hit !== undefined && hit.raw === raw) return hit.value as T;
  const value = decodeValue<T>(raw);
  parsed.delete(key);
  parsed.set(key, { raw, value });
  if (parsed.size > PARSED_MAX) parsed.delete(parsed.keys().next().value!);
  return value;
}

export function accountOf(source: DocSource | null, layout: Layout, id: string): AccountView | undefined {
  const doc = source?.doc(accountShardDoc(shardOf(id, layout.accountShards)));
  return parsedValue<AccountView>(`a:${id}`, doc?.getMap(ACCOUNTS).get(id));
}

export function bookOf(source: DocSource | null, symbol: string): MarketBook | undefined {
  const doc = source?.doc(marketDoc(symbol));
  if (!doc) return undefined;
  const mark = doc.getMap<unknown>(BOOK).get('mark');
  // Rebuilt only when the doc changed since (the ETag of book reads keys on these arrays).
  const cached = books.get(doc);
  if (cached === undefined || cached.at !== docVersion(doc)) books.set(doc, { at: docVersion(doc), bids: bookSide(doc, 'bids'), asks: bookSide(doc, 'asks') });
  const sides = books.get(doc)!;
  return { bids: sides.bids, asks: sides.asks, mark: typeof mark === 'number' ? mark : null };
}

export function tradesOf(source: DocSource | null, symbol: string, limit: number): TradeView[] {
  const doc = source?.doc(marketDoc(symbol));
  if (!doc || limit === 0) return [];
  const arr = doc.getArray<TradeView>(TRADES);
  return arr.slice(Math.max(0, arr.length - limit));
}

interface Waiter {
  scope: ReadScope;
  minSeq: number;
  done: (ok: boolean) => void;
}

/** Readers waiting for a scope to reach a seq (`?minSeq=`); each wait ends by its own timeout. */
export class SeqWaiters {
  private readonly waiters = new Set<Waiter>();

  constructor(private readonly seqFor: (scope: ReadScope) => number) {}

  wait(scope: ReadScope, minSeq: number, timeoutMs: number): Promise<boolean> {
    if (this.seqFor(scope) >= minSeq) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        scope,
        minSeq,
        done: (ok) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => waiter.done(false), timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Releases every waiter whose scope has reached its seq. */
  check(): void {
    for (const w of this.waiters) if (this.seqFor(w.scope) >= w.minSeq) w.done(true);
  }

  /** Ends every wait with false (the node stops). */
  cancelAll(): void {
    for (const w of [...this.waiters]) w.done(false);
  }
}

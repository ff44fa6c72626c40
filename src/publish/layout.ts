// The Yjs document layout shared by the publisher (core) and every reader (read nodes, browsers).
// Invariants: names are stable for a given (accountShards, markets) config; an account always maps
// to the same shard (FNV-1a of its id); every doc carries a 'stamp' map whose 'seq' is the seq up
// to which that doc is complete, written in the same Yjs transaction as the content it covers.
import * as Y from 'yjs';

export const META_DOC = 'meta';
export const accountShardDoc = (shard: number): string => `acct-${shard}`;
export const marketDoc = (symbol: string): string => `mkt-${symbol}`;
/** Per-account view docs: made by each read node from its own copy, never published by the core. */
export const ACCOUNT_VIEW_PREFIX = 'view-';
export const accountViewDoc = (id: string): string => `${ACCOUNT_VIEW_PREFIX}${id}`;

/** Map names inside the docs. */
export const STAMP = 'stamp'; // every doc: { seq, generation }
export const META = 'meta'; // meta doc: { seq, stateHash, tsMs, generation, accounts, insurance }
export const CHANGED_AT = 'changedAt'; // meta doc: docName -> seq of that doc's latest change
export const ACCOUNTS = 'accounts'; // account shard: accountId -> AccountView as JSON text (encodeValue)
export const BOOK = 'book'; // market doc: { mark } (and, from earlier versions, bids/asks as arrays or JSON text)
/**
 * Market doc: one map per book side, price → [qty, orders], only the top bookDepth levels. A commit
 * writes only the levels that changed, so a page watching a market receives a few small entries
 * per trade, not the whole book (and read nodes decode as little).
 */
export const BIDS = 'bids';
export const ASKS = 'asks';
export const TRADES = 'trades'; // market doc: Y.Array<TradeView>, newest last, bounded
export const LIQUIDATIONS = 'liquidations'; // market doc: Y.Array<LiquidationView>, newest last, bounded like trades

/**
 * Account views and book sides are published as JSON text, not as Yjs objects: a reader decodes
 * one string natively instead of every field through Yjs' generic value codec (most of a read
 * node's CPU per commit), and parses only what it serves. decodeValue also takes the object form
 * (docs persisted by an earlier version).
 */
export function encodeValue(v: unknown): string {
  return JSON.stringify(v);
}

export function decodeValue<T>(raw: unknown): T | undefined {
  if (raw === undefined) return undefined;
  return (typeof raw === 'string' ? JSON.parse(raw) : raw) as T;
}

/** A book side of a market doc, best first (bids: highest price first, asks: lowest first). */
export function bookSide(doc: Y.Doc, side: 'bids' | 'asks'): Array<{ price: number; qty: number; orders: number }> {
  const legacy = doc.getMap<unknown>(BOOK).get(side);
  if (legacy !== undefined) return decodeValue(legacy) ?? [];
  const levels: Array<{ price: number; qty: number; orders: number }> = [];
  for (const [price, v] of doc.getMap<[number, number]>(side === 'bids' ? BIDS : ASKS).entries()) {
    levels.push({ price: Number(price), qty: v[0], orders: v[1] });
  }
  return levels.sort((a, b) => (side === 'bids' ? b.price - a.price : a.price - b.price));
}

export interface Layout {
  accountShards: number;
  markets: readonly string[];
}

/** 32-bit FNV-1a: tiny, stable across platforms and languages (a browser can compute it too). */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function shardOf(accountId: string, accountShards: number): number {
  return fnv1a32(accountId) % accountShards;
}

export function docNames(layout: Layout): string[] {
  return [
    META_DOC,
    ...Array.from({ length: layout.accountShards }, (_, i) => accountShardDoc(i)),
    ...layout.markets.map(marketDoc),
  ];
}

export function stampSeq(doc: Y.Doc): number {
  const v = doc.getMap(STAMP).get('seq');
  return typeof v === 'number' ? v : 0;
}

/**
 * The seq up to which `name` is complete, given the meta doc. A doc that holds its latest change
 * recorded in meta (stamp >= changedAt) has nothing missing up to meta's seq; otherwise only up to
 * its own stamp. Docs sync over separate connections, so this is what makes reads exact.
 */
export function completeSeq(name: string, doc: Y.Doc, meta: Y.Doc): number {
  const metaSeq = stampSeq(meta);
  if (name === META_DOC) return metaSeq;
  const own = stampSeq(doc);
  const changedAt = meta.getMap(CHANGED_AT).get(name);
  const lastChange = typeof changedAt === 'number' ? changedAt : Number.POSITIVE_INFINITY;
  return own >= lastChange ? Math.max(own, metaSeq) : own;
}

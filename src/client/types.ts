// The client's typed view of the HTTP API: commands as a caller writes them (clientId optional),
// answers as the server sends them, and the one error type every failure becomes.
// Invariant: these are the server's JSON shapes (README "HTTP API", docs/order-entry.md); domain
// types are reused where the JSON is exactly the domain view, so the two cannot drift silently.
import type { AccountView, BookLevel, PositionView, Result, Side, TimeInForce, TradeView } from '../domain/types.js';

export type { AccountView, BookLevel, PositionView, Result, Side, TimeInForce, TradeView };

/** A command as the caller writes it; `clientId` (the idempotency key) is generated when omitted. */
export type CommandInput =
  | { type: 'deposit'; account: string; amount: number; clientId?: string }
  | { type: 'withdraw'; account: string; amount: number; clientId?: string }
  | { type: 'place_order'; account: string; market: string; side: Side; price: number; qty: number; tif?: TimeInForce; clientId?: string }
  | { type: 'cancel_order'; account: string; orderId: number; clientId?: string };

/** A command on the wire: clientId fixed before the first attempt, reused by every retry. */
export type WireCommand = CommandInput & { clientId: string };

/** One acknowledged command: durable on a majority of the core. A business rejection is a result too. */
export interface CommandAnswer {
  clientId: string;
  seq: number;
  tsMs: number;
  /** true when this clientId had already committed (a retry): the original seq and result. */
  duplicate: boolean;
  result: Result;
}

export interface AccountRead extends AccountView {
  equity?: number;
  positions: Array<PositionView & { mark?: number | null; unrealizedPnl?: number | null }>;
}

export interface PositionsRead {
  account: string;
  positions: AccountRead['positions'];
}

export interface BookRead {
  market: string;
  bids: BookLevel[];
  asks: BookLevel[];
  mark?: number | null;
}

export interface TradesRead {
  market: string;
  trades: TradeView[];
}

/** What a read also tells: the seq it reflects and where it came from. */
export interface ReadMeta {
  seq: number;
  region: string | null;
  url: string;
}

/**
 * Every failure the client surfaces. `code` is the server's reason code (README's tables), or one
 * of the client's own: `unreachable` (no node answered before the deadline), `timeout`,
 * `bad_response`, `closed`, `overloaded` (the local queue is full).
 */
export class StatemirrorError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** HTTP status when a server answered (0 for the client's own errors). */
    readonly status = 0,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'StatemirrorError';
  }
}

/** Reason codes whose outcome is unknown or transient: the same clientId is sent again. */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set(['not_primary', 'commit_timeout', 'overloaded', 'halted', 'unreachable', 'too_many_connections']);

// The one place reject and error codes become HTTP statuses. Business rejections (stored in the
// log with their command) and request errors (never reach the log) share one body shape:
// { error: { code, message, ...details } }.
import type { Context, MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { RejectCode } from '../domain/types.js';

export const REJECT_HTTP: Record<RejectCode, ContentfulStatusCode> = {
  insufficient_collateral: 422,
  unknown_account: 404,
  unknown_market: 404,
  unknown_order: 404,
  not_order_owner: 403,
  too_many_orders: 429,
  too_many_accounts: 429,
  amount_limit_exceeded: 422,
  price_out_of_range: 422,
  qty_out_of_range: 422,
  price_out_of_band: 422,
  position_limit_exceeded: 429,
  open_interest_limit_exceeded: 429,
  deposit_limit_exceeded: 422,
};

export type RequestErrorCode =
  | 'malformed_json'
  | 'invalid_command'
  | 'unknown_field'
  | 'unsupported_media_type'
  | 'body_too_large'
  | 'too_many_commands'
  | 'duplicate_client_id_in_batch'
  | 'idempotency_conflict'
  | 'overloaded'
  | 'halted'
  | 'not_primary'
  | 'commit_timeout'
  | 'invalid_query'
  | 'invalid_account_id'
  | 'unknown_account'
  | 'unknown_market'
  | 'seq_not_reached'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'range_not_satisfiable';

export const REQUEST_ERROR_HTTP: Record<RequestErrorCode, ContentfulStatusCode> = {
  malformed_json: 400,
  invalid_command: 400,
  unknown_field: 400,
  unsupported_media_type: 415,
  body_too_large: 413,
  too_many_commands: 413,
  duplicate_client_id_in_batch: 400,
  idempotency_conflict: 409,
  overloaded: 429,
  halted: 503,
  not_primary: 503,
  commit_timeout: 503,
  invalid_query: 400,
  invalid_account_id: 400,
  unknown_account: 404,
  unknown_market: 404,
  seq_not_reached: 503,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  range_not_satisfiable: 416,
};

declare module 'hono' {
  interface ContextVariableMap {
    /** The error code this request was answered with, if any (counted by errorCounter). */
    errorCode: string;
  }
}

/**
 * Middleware, mounted before every route: after the answer, reports the error code it carried (set
 * by requestError or markError) — the metrics' rejects by code. Business rejects are counted where
 * they commit, not here.
 */
export function errorCounter(count: (code: string) => void): MiddlewareHandler {
  return async (c, next) => {
    await next();
    const code = c.get('errorCode') as string | undefined;
    if (code !== undefined) count(code);
  };
}

/** Records the error code of an answer built without requestError (counted by errorCounter). */
export function markError(c: Context, code: string): void {
  c.set('errorCode', code);
}

export function errorBody(code: string, message: string, details?: Record<string, unknown>) {
  return { error: { code, message, ...details } };
}

export function requestError(c: Context, code: RequestErrorCode, message: string, details?: Record<string, unknown>) {
  if (code === 'unauthenticated') c.header('www-authenticate', 'Bearer');
  markError(c, code);
  return c.json(errorBody(code, message, details), REQUEST_ERROR_HTTP[code]);
}

// Who may read and write what. Tokens are HS256 JWTs (hono/jwt) with claims {sub, role}:
//   operator — any account, deposits and withdrawals, every doc;
//   account  — acts and reads only for account `sub` (orders, cancels; its own balances, positions,
//              orders; its own per-account view room); market data and meta are public;
//   replica  — cluster links (read nodes syncing from the core or a relay, standby↔primary):
//              signed with the CLUSTER secret, never with the user JWT secret, so a user token can
//              never pass as a cluster peer.
// Invariant: every decision goes through the functions here; callers never inspect claims.
import { decode, sign, verify } from 'hono/jwt';
import { z } from 'zod';
import type { Command } from '../domain/types.js';
import { META_DOC } from '../publish/layout.js';

export type Role = 'operator' | 'account' | 'replica';
export interface Claims {
  sub: string;
  role: Role;
}

const ClaimsSchema = z.object({ sub: z.string().min(1).max(64), role: z.enum(['operator', 'account', 'replica']) });

/** Signs a token; `ttlS` 0 means no expiry (cluster links), a negative one an already expired token. */
export async function signToken(secret: string, claims: Claims, ttlS = 24 * 3600): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return sign({ ...claims, iat: now, ...(ttlS !== 0 ? { exp: now + ttlS } : {}) }, secret, 'HS256');
}

/** The claims of a valid, unexpired token signed with `secret`, else null. */
export async function verifyToken(token: string, secret: string): Promise<Claims | null> {
  try {
    const payload = await verify(token, secret, 'HS256');
    const parsed = ClaimsSchema.safeParse(payload);
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * Verified tokens, so a client reusing its bearer token (they all do) costs a map lookup instead
 * of an HMAC through WebCrypto per request — that was the core's largest per-request cost.
 * Bounded (oldest evicted first); an entry is only used before the token's own expiry. Keyed by
 * secret and token, so a rotated secret never honours a token verified under the old one.
 */
const verified = new Map<string, { claims: Claims; expMs: number }>();
const VERIFIED_MAX = 10_000;

/**
 * Verifies a presented token: cluster tokens (role replica) against the cluster secret, user
 * tokens (operator/account) against the JWT secret — the unverified role only picks which secret
 * to check against, it is never trusted by itself.
 */
export async function authenticate(token: string | null, secrets: { jwtSecret: string; clusterSecret: string }): Promise<Claims | null> {
  if (!token || token.length > 4096) return null;
  let claimedRole: unknown;
  try {
    claimedRole = (decode(token).payload as { role?: unknown }).role;
  } catch {
    return null;
  }
  const secret = claimedRole === 'replica' ? secrets.clusterSecret : secrets.jwtSecret;
  const key = `${secret}\u0000${token}`;
  const hit = verified.get(key);
  if (hit) {
    if (Date.now() < hit.expMs) return hit.claims;
    verified.delete(key);
  }
  const claims = await verifyToken(token, secret);
  if (!claims || (claims.role === 'replica') !== (secret === secrets.clusterSecret)) return null;
  const exp = (decode(token).payload as { exp?: unknown }).exp;
  if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value!);
  verified.set(key, { claims, expMs: typeof exp === 'number' ? exp * 1000 : Number.POSITIVE_INFINITY });
  return claims;
}

/** `Authorization: Bearer <t>`, else `?token=<t>` (browsers can't set WebSocket headers). */
export function tokenFrom(headers: { authorization?: string | undefined }, url: string | undefined): string | null {
  const h = headers.authorization;
  if (h?.startsWith('Bearer ')) return h.slice(7).trim() || null;
  const q = new URL(url ?? '/', 'http://x').searchParams.get('token');
  return q || null;
}

export type Decision = { ok: true } | { ok: false; status: 401 | 403; code: 'unauthenticated' | 'forbidden'; reason: string };
const ok: Decision = { ok: true };
const unauthenticated = (reason: string): Decision => ({ ok: false, status: 401, code: 'unauthenticated', reason });
const forbidden = (reason: string): Decision => ({ ok: false, status: 403, code: 'forbidden', reason });

/** May these claims submit this command? */
export function authorizeCommand(claims: Claims | null, command: Command): Decision {
  if (!claims) return unauthenticated('send Authorization: Bearer <token>');
  if (claims.role === 'operator') return ok;
  if (claims.role !== 'account') return forbidden(`a ${claims.role} token cannot write`);
  if (command.type === 'deposit' || command.type === 'withdraw') return forbidden(`${command.type} needs an operator token`);
  if (command.type === 'epoch_start') return forbidden('internal command');
  if (command.account !== claims.sub) return forbidden(`this token acts for account ${claims.sub}, not ${command.account}`);
  return ok;
}

/** May these claims read account `id`'s balances, positions and orders? */
export function authorizeAccountRead(claims: Claims | null, id: string): Decision {
  if (!claims) return unauthenticated('account data needs a token for that account or an operator token');
  if (claims.role === 'operator' || claims.role === 'replica') return ok;
  return claims.sub === id ? ok : forbidden(`this token reads account ${claims.sub}, not ${id}`);
}

export const ACCOUNT_VIEW_PREFIX = 'view-';
export const accountViewDoc = (id: string): string => `${ACCOUNT_VIEW_PREFIX}${id}`;

/**
 * May these claims sync doc `name`? Market docs and meta are public; account shards (many
 * accounts each) only for operators and cluster peers; a per-account view for its own account.
 */
export function authorizeDoc(claims: Claims | null, name: string): Decision {
  if (name === META_DOC || name.startsWith('mkt-')) return ok;
  if (name.startsWith(ACCOUNT_VIEW_PREFIX)) return authorizeAccountRead(claims, name.slice(ACCOUNT_VIEW_PREFIX.length));
  if (!claims) return unauthenticated('this room needs a token');
  return claims.role === 'operator' || claims.role === 'replica' ? ok : forbidden('account shards hold many accounts: operator or cluster token only');
}

// Tokens: HS256 JWTs (hono/jwt) with claims {sub, role} — signing, verification (with a bounded
// cache of verified tokens) and where a request carries one. Who may do what is in rules.ts.
// Roles: operator and account tokens are signed with the user JWT secret; replica tokens (cluster
// links: read nodes syncing from the core or a relay, standby↔primary) with the CLUSTER secret,
// never with the user JWT secret, so a user token can never pass as a cluster peer.
// Invariants: a cluster token verifies only against the cluster secret and a user token only
// against the JWT secret; callers never inspect claims themselves (rules.ts decides).
import { decode, sign, verify } from 'hono/jwt';
import { z } from 'zod';

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
  // Keyed by both secrets and the token: which secret checks a token is a function of those, so a
  // hit needs no decoding at all (the common case: a client reusing its token).
  const key = `${secrets.jwtSecret}\u0000${secrets.clusterSecret}\u0000${token}`;
  const hit = verified.get(key);
  if (hit) {
    if (Date.now() < hit.expMs) return hit.claims;
    verified.delete(key);
  }
  let claimedRole: unknown;
  try {
    claimedRole = (decode(token).payload as { role?: unknown }).role;
  } catch {
    return null;
  }
  const secret = claimedRole === 'replica' ? secrets.clusterSecret : secrets.jwtSecret;
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

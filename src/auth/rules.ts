// The one set of rules for who may read and write what (routes and rooms only ask these):
//   operator — any account, deposits and withdrawals, every doc;
//   account  — acts and reads only for account `sub` (orders, cancels; its own balances, positions,
//              orders; its own per-account view room); market data and meta are public;
//   replica  — cluster links: reads every account, never writes.
// Also the two room gates (tokenGate, clusterGate) handed to rooms/ by node/: the room server takes
// an `authorize` function and never imports auth itself.
// Invariant: every decision goes through the functions here; callers never inspect claims.
import type { Command } from '../domain/types.js';
import { ACCOUNT_VIEW_PREFIX, META_DOC } from '../publish/layout.js';
import type { SyncServerOptions } from '../rooms/room-server.js';
import { authenticate, tokenFrom, type Claims } from './tokens.js';

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

/** The standard gate: a user or cluster token (header or ?token=) allowed for that doc by authorizeDoc. */
export function tokenGate(secrets: { jwtSecret: string; clusterSecret: string }): NonNullable<SyncServerOptions['authorize']> {
  return async (req, docName) => {
    const claims = await authenticate(tokenFrom(req.headers, req.url), secrets);
    const d = authorizeDoc(claims, docName);
    return d.ok ? d : { ok: false, status: d.status, reason: d.reason };
  };
}

/**
 * The core's gate: its rooms are the source for read nodes, not for browsers, so every room needs
 * a cluster (replica) or operator token — anonymous peers are refused even for public docs.
 */
export function clusterGate(secrets: { jwtSecret: string; clusterSecret: string }): NonNullable<SyncServerOptions['authorize']> {
  return async (req) => {
    const claims = await authenticate(tokenFrom(req.headers, req.url), secrets);
    if (!claims) return { ok: false, status: 401, reason: 'core rooms need a cluster or operator token' };
    if (claims.role === 'replica' || claims.role === 'operator') return { ok: true };
    return { ok: false, status: 403, reason: 'core rooms are for read nodes: connect to a regional node' };
  };
}

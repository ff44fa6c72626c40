// authenticate()'s verified-token cache must never widen access: a token verified under one
// secret is not honoured under another (rotation), expired tokens never enter it, and the
// unverified role claim only picks the secret to check.
import { describe, expect, it } from 'vitest';
import { sign } from 'hono/jwt';
import { authenticate, signToken } from '../../src/auth/tokens.js';

const A = { jwtSecret: 'a'.repeat(40), clusterSecret: 'c'.repeat(20) };
const B = { jwtSecret: 'b'.repeat(40), clusterSecret: 'd'.repeat(20) };

describe('authenticate cache', () => {
  it('answers repeat tokens from the cache but never across secrets', async () => {
    const token = await signToken(A.jwtSecret, { sub: 'alice', role: 'account' });
    expect(await authenticate(token, A)).toEqual({ sub: 'alice', role: 'account' });
    expect(await authenticate(token, A)).toEqual({ sub: 'alice', role: 'account' });
    expect(await authenticate(token, B)).toBeNull();
  });

  it('never caches an expired or forged token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await sign({ sub: 'alice', role: 'account', exp: now - 1 }, A.jwtSecret, 'HS256');
    expect(await authenticate(expired, A)).toBeNull();
    expect(await authenticate(expired, A)).toBeNull();
    // Claims "replica" but signed with the user secret: checked against the cluster secret, refused.
    const forged = await sign({ sub: 'near', role: 'replica' }, A.jwtSecret, 'HS256');
    expect(await authenticate(forged, A)).toBeNull();
    // A cluster token is good only as a replica.
    const peer = await signToken(A.clusterSecret, { sub: 'near', role: 'replica' }, 0);
    expect(await authenticate(peer, A)).toEqual({ sub: 'near', role: 'replica' });
    const operatorOnCluster = await signToken(A.clusterSecret, { sub: 'x', role: 'operator' });
    expect(await authenticate(operatorOnCluster, A)).toBeNull();
    expect(await authenticate('not.a.jwt', A)).toBeNull();
    expect(await authenticate('x'.repeat(5000), A)).toBeNull();
  });
});

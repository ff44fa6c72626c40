// statemirror/client against a real local cluster: three core processes (SIGKILL is a real crash)
// and two read nodes in this process, one of them reached by the client through a 40 ms link
// proxy (the client's own path: "far" is far from this client). Checks leader discovery from a
// follower's URL, the nearest region, read-your-writes, typed errors that are never retried, and
// writes over HTTP and over an order-entry session through a SIGKILL of the leader: every write
// acknowledged, none applied twice (the deposits add up exactly). Waits are bounded; no sleeps.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatemirrorClient, StatemirrorError } from '../../src/client/index.js';
import { LinkProxy } from '../../sim/link-proxy.js';
import { operatorToken, startProcessCluster, type ProcessCluster } from '../e2e/helpers.js';

let pc: ProcessCluster;
let cores: ProcessCluster['cores'];
let farProxy: LinkProxy;
let token: string;
let coreUrls: string[];
let regionUrls: { near: string; far: string };
const clients: StatemirrorClient[] = [];

function client(opts: Partial<ConstructorParameters<typeof StatemirrorClient>[0]> = {}): StatemirrorClient {
  const c = new StatemirrorClient({ coreUrls, regionUrls: [regionUrls.far, regionUrls.near], token, timeoutMs: 20_000, ...opts });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  pc = await startProcessCluster('sm-client-');
  cores = pc.cores;
  coreUrls = cores.names.map((n) => cores.url(n));
  const [near, far] = pc.regions;
  farProxy = new LinkProxy({ name: 'client->far', targetHost: '127.0.0.1', targetPort: far!.node.port, link: { latencyMs: 40, jitterMs: 2, lossPct: 0 }, seed: 7 });
  await farProxy.start();
  regionUrls = { near: near!.url, far: `http://127.0.0.1:${farProxy.port}` };
  token = await operatorToken(pc.config);
}, 90_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await farProxy?.stop();
  await pc?.stop();
}, 60_000);

describe('statemirror/client', () => {
  it('finds the leader from a follower, reads its own write at the nearest region', async () => {
    const leader = (await cores.waitFor((s) => s.role === 'primary', 10_000, 'a leader')).node;
    const follower = cores.names.find((n) => n !== leader)!;
    const c = client({ coreUrls: [cores.url(follower)] , session: 'never' });
    const answer = await c.deposit('alice', 1000);
    expect(answer.result).toMatchObject({ status: 'accepted', collateral: 1000 });
    expect(c.leader).toBe(cores.url(leader));
    expect(c.lastSeq).toBe(answer.seq);
    // The nearest region by measured round trip: near (direct), not far (40 ms each way).
    const ranked = await c.regions();
    expect(ranked[0]!.url).toBe(regionUrls.near);
    expect(ranked[1]!.rttMs).toBeGreaterThan(ranked[0]!.rttMs);
    // Read-your-writes: the read carries minSeq = the write's seq.
    const account = await c.account('alice');
    expect(account.collateral).toBe(1000);
    expect(c.lastRead).toMatchObject({ region: 'near', url: regionUrls.near });
    expect(c.lastRead!.seq).toBeGreaterThanOrEqual(answer.seq);
    // An explicit clientId retried is answered from the log, not applied again.
    const first = await c.deposit('alice', 5, 'client-dup-1');
    const again = await c.deposit('alice', 5, 'client-dup-1');
    expect(again).toMatchObject({ duplicate: true, seq: first.seq });
    expect((await c.account('alice')).collateral).toBe(1005);
    const book = await c.book('BTC-USD');
    expect(book.market).toBe('BTC-USD');
  }, 60_000);

  it('surfaces business rejections and request errors as typed errors, without retrying', async () => {
    const c = client({ session: 'never' });
    const rejected = await c.withdraw('nobody-has-this', 10).catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(StatemirrorError);
    expect((rejected as StatemirrorError).code).toBe('unknown_account');
    expect((rejected as StatemirrorError).details.seq).toBeGreaterThan(0); // committed, with its seq
    const bad = client({ token: 'not-a-token', session: 'never' });
    const denied = await bad.deposit('alice', 1).catch((e: unknown) => e);
    expect(denied).toMatchObject({ code: 'unauthenticated', status: 401 });
    const invalid = await c.deposit('alice', -5).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ code: 'invalid_command', status: 400 });
    // The session path reports the same codes.
    const s = client({ session: 'auto' });
    const viaSession = await s.withdraw('nobody-either', 10).catch((e: unknown) => e);
    expect(viaSession).toMatchObject({ code: 'unknown_account' });
    expect(s.usingSession).toBe(true);
  }, 60_000);

  it('keeps writing through a SIGKILL of the leader over HTTP and over a session: all acknowledged, none twice', async () => {
    const http = client({ session: 'never' });
    const session = client({ session: 'auto' });
    const total = 150;
    let acked = 0;
    let killed: Promise<void> | null = null;
    const killAfter = 40;
    const stream = async (c: StatemirrorClient, account: string) => {
      const answers = [];
      for (let i = 0; i < total; i++) {
        // Four writes in flight at a time, so some are in flight when the leader dies.
        const batch = [0, 1, 2, 3].map((k) => (i + k < total ? c.deposit(account, 1, `${account}-${i + k}`) : null)).filter((p) => p !== null);
        i += batch.length - 1;
        for (const a of await Promise.all(batch)) {
          answers.push(a);
          acked++;
          if (acked >= killAfter && !killed) {
            killed = (async () => {
              const leader = (await cores.waitFor((s) => s.role === 'primary', 10_000, 'a leader')).node;
              await cores.kill(leader, 'SIGKILL');
            })();
          }
        }
      }
      return answers;
    };
    const [viaHttp, viaSession] = await Promise.all([stream(http, 'fo-http'), stream(session, 'fo-session')]);
    await killed;
    expect(viaHttp).toHaveLength(total);
    expect(viaSession).toHaveLength(total);
    expect(session.usingSession).toBe(true);
    // Every clientId answered once, each with its own seq; the sums are exact (nothing twice, nothing lost).
    expect(new Set(viaHttp.map((a) => a.seq)).size).toBe(total);
    expect(new Set(viaSession.map((a) => a.seq)).size).toBe(total);
    expect((await http.account('fo-http')).collateral).toBe(total);
    expect((await session.account('fo-session')).collateral).toBe(total);
    // The clients follow the new leader.
    const now = (await cores.waitFor((s) => s.role === 'primary', 10_000, 'a new leader')).node;
    expect(http.leader).toBe(cores.url(now));
  }, 90_000);
});

// A seeded generator of hostile raw HTTP requests, sent over real sockets to a real core node and a
// real read node: oversized headers and URLs, bad chunk framing, conflicting lengths, odd Expect
// headers, bad methods and versions, bare LF, control bytes, bad header names, bodies over the
// limit, pipelined requests ending in a malformed one, and WebSocket upgrades with bad handshakes
// or credentials on every WS path. Every 4xx/5xx must carry {"error":{code,message}} as
// application/json, whoever answered it (hono, Node's parser, the ws library, an upgrade handler);
// a socket closed with no answer at all is a failure; answers to pipelined requests come whole and
// in order. Afterwards both nodes still serve status, the log holds no write, and no request was
// counted as an internal error. The seed is printed; SIM_SEED=<n> reproduces a run
// (HOSTILE_LABEL=<n> prints n bytes of each failing request).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { rmSync } from 'node:fs';
import { startCluster, type Cluster } from '../../src/cli/cluster.js';
import { get, operatorToken, tempDir, testConfig } from '../e2e/helpers.js';

const SEED = process.env.SIM_SEED ? Number(process.env.SIM_SEED) : Math.floor(Math.random() * 2 ** 31);
const REQUESTS = 2000;
const CONCURRENCY = 24;
const SOCKET_TIMEOUT_MS = 5000;

/** mulberry32: small, seedable, good enough to pick cases. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof rng>;

interface Target {
  kind: 'core' | 'read';
  port: number;
  generation: string;
  token: string;
}

interface Case {
  family: string;
  /** Bytes written, each element one write (pipelining and split writes). */
  bytes: Buffer[];
  /** Pipelined: how many well-formed requests precede the malformed one (each must get its own answer first). */
  goodFirst?: number;
  /**
   * Half-close after writing (default), so a request cut short fails to parse instead of waiting
   * for more. Not for upgrades: ws drops a handshake from a client that has stopped sending.
   */
  keepOpen?: boolean;
}

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const GOOD_PATHS = ['/v1/status', '/v1/sync/info', '/v1/markets/BTC-USD/book', '/v1/accounts/alice', '/metrics', '/nope', '/'];
const b = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s);

function goodRequest(r: Rng, t: Target): string {
  const path = r.pick(GOOD_PATHS);
  const auth = r.next() < 0.5 ? `Authorization: Bearer ${t.token}\r\n` : '';
  return `GET ${path} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`;
}

/** A command body that would write if it reached the core with a valid token (it never gets one here). */
const commandBody = () => JSON.stringify({ commands: [{ type: 'deposit', clientId: `hostile-${Math.random()}`, account: 'mallory', amount: 1 }] });

function malformed(r: Rng, t: Target): string | Buffer {
  return b(r.pick(FAMILIES.filter((f) => f[0] !== 'pipelined'))[1](r, t).bytes.map((x) => x.toString('latin1')).join(''));
}

const FAMILIES: Array<[string, (r: Rng, t: Target) => Case]> = [
  ['oversized-headers', (r) => {
    const many = r.next() < 0.3;
    const headers = many
      ? Array.from({ length: r.int(400, 1200) }, (_, i) => `X-H${i}: ${'v'.repeat(40)}\r\n`).join('')
      : `X-Big: ${'a'.repeat(r.int(16_500, 70_000))}\r\n`;
    return { family: 'oversized-headers', bytes: [b(`GET /v1/status HTTP/1.1\r\nHost: x\r\n${headers}\r\n`)] };
  }],
  ['oversized-url', (r) => ({ family: 'oversized-url', bytes: [b(`GET /v1/status?x=${'q'.repeat(r.int(16_500, 40_000))} HTTP/1.1\r\nHost: x\r\n\r\n`)] })],
  ['bad-chunk', (r) => {
    const chunk = r.pick(['zz\r\nhello\r\n0\r\n\r\n', '-1\r\nx\r\n0\r\n\r\n', 'ffffffffffffffffffff\r\nx\r\n0\r\n\r\n', '5\r\nhelloXX0\r\n\r\n', '3\r\nhello\r\n0\r\n\r\n', '5 5\r\nhello\r\n0\r\n\r\n', '\r\n\r\n', '0x5\r\nhello\r\n0\r\n\r\n']);
    const path = r.pick(['/v1/commands', '/v1/status', '/nope']);
    return { family: 'bad-chunk', bytes: [b(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}`)] };
  }],
  ['chunked+length', (r) => {
    const order = r.next() < 0.5;
    const te = 'Transfer-Encoding: chunked\r\n';
    const cl = `Content-Length: ${r.int(0, 20)}\r\n`;
    return { family: 'chunked+length', bytes: [b(`POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${order ? te + cl : cl + te}\r\n2\r\n{}\r\n0\r\n\r\n`)] };
  }],
  ['conflicting-length', (r) => {
    const h = r.pick(['Content-Length: 2\r\nContent-Length: 3\r\n', 'Content-Length: 2, 3\r\n', 'Content-Length: abc\r\n', 'Content-Length: -1\r\n', 'Content-Length: 1e3\r\n', 'Content-Length: 99999999999999999999999\r\n', 'Transfer-Encoding: gzip, chunked, identity\r\n', 'Transfer-Encoding: banana\r\n', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n']);
    return { family: 'conflicting-length', bytes: [b(`POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${h}\r\n{}`)] };
  }],
  ['expect', (r, t) => {
    const expect = r.pick(['100-banana', '100-continue, banana', 'banana', '200-ok', '']);
    if (r.next() < 0.5) {
      const body = commandBody();
      const auth = r.next() < 0.5 ? `Authorization: Bearer ${t.token}x\r\n` : '';
      return { family: 'expect-post', bytes: [b(`POST /v1/commands HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: ${expect}\r\n\r\n${body}`)] };
    }
    return { family: 'expect-get', bytes: [b(`GET ${r.pick(GOOD_PATHS)} HTTP/1.1\r\nHost: x\r\nExpect: ${expect}\r\n\r\n`)] };
  }],
  ['bad-method', (r) => {
    const m = r.pick(['BREW', 'get', 'G ET', 'GET\x00', 'PROPFIND', 'PATCH', 'DELETE', 'PUT', 'TRACE', 'OPTIONS', 'CONNECT', 'PRI', 'X'.repeat(r.int(1, 40)), '', '\x16\x03\x01']);
    const target = m === 'CONNECT' ? r.pick(['x:443', '/v1/status']) : '/v1/status';
    return { family: `bad-method`, bytes: [b(`${m} ${target} HTTP/1.1\r\nHost: x\r\n\r\n`)] };
  }],
  ['bad-version', (r) => {
    const v = r.pick(['HTTP/2.0', 'HTTP/1.2', 'HTTP/9.9', 'HTTX/1.1', 'HTTP/1', 'HTTP/1.1.1', 'http/1.1', 'HTTP/0.9', '']);
    return { family: 'bad-version', bytes: [b(`GET /v1/status ${v}\r\nHost: x\r\n\r\n`)] };
  }],
  ['bare-lf', (r, t) => {
    const req = goodRequest(r, t).replace(/\r\n/g, r.next() < 0.5 ? '\n' : '\r');
    return { family: 'bare-lf', bytes: [b(req)] };
  }],
  ['control-bytes', (r) => {
    const c = String.fromCharCode(r.pick([0, 1, 7, 8, 0x0b, 0x0c, 0x1b, 0x7f]));
    const where = r.int(0, 2);
    const h = where === 0 ? `X-Val: a${c}b\r\n` : where === 1 ? `X-N${c}me: v\r\n` : `Host: x${c}\r\n`;
    return { family: 'control-bytes', bytes: [b(`GET /v1/status HTTP/1.1\r\nHost: x\r\n${h}\r\n`)] };
  }],
  ['bad-header-name', (r) => {
    const h = r.pick(['Bad Header: x\r\n', 'X(y): z\r\n', ': empty\r\n', 'NoColon\r\n', ' folded: x\r\n', 'X-A: 1\r\n continued\r\n', 'X-Ü: 1\r\n', 'X-A : 1\r\n', '"q": 1\r\n']);
    return { family: 'bad-header-name', bytes: [b(`GET /v1/status HTTP/1.1\r\nHost: x\r\n${h}\r\n`)] };
  }],
  ['no-host', (r) => ({ family: 'no-host', bytes: [b(`${r.pick(['GET', 'POST'])} ${r.pick(GOOD_PATHS)} HTTP/1.1\r\n${r.next() < 0.5 ? 'Content-Length: 0\r\n' : ''}\r\n`)] })],
  ['http10', (r) => {
    const path = r.pick(GOOD_PATHS);
    return { family: 'http10', bytes: [b(`GET ${path} HTTP/1.0\r\n${r.next() < 0.5 ? 'Connection: keep-alive\r\n' : ''}\r\n`)] };
  }],
  ['absolute-form', (r) => {
    const u = r.pick(['http://x/v1/status', 'http://x:1/nope', 'https://evil.example/v1/status', 'http://[bad/v1/status', '*', 'ftp://x/', 'http://x', '//v1/status', 'v1/status', '%zz', '/v1/%00', '/v1/accounts/%E0%A4%A', '/../../etc/passwd']);
    return { family: 'absolute-form', bytes: [b(`${r.pick(['GET', 'OPTIONS'])} ${u} HTTP/1.1\r\nHost: x\r\n\r\n`)] };
  }],
  ['body-over-limit', (r, t) => {
    const size = r.int(66_000, 200_000);
    const auth = r.next() < 0.3 ? `Authorization: Bearer ${t.token}\r\n` : '';
    if (r.next() < 0.5) return { family: 'body-over-limit', bytes: [b(`POST /v1/commands HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`), b('['.repeat(size))] };
    const chunk = '['.repeat(8192);
    const chunks = Array.from({ length: Math.ceil(size / 8192) }, () => `2000\r\n${chunk}\r\n`).join('');
    return { family: 'body-over-limit-chunked', bytes: [b(`POST /v1/commands HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`), b(`${chunks}0\r\n\r\n`)] };
  }],
  ['pipelined', (r, t) => {
    const goodFirst = r.int(1, 4);
    const good = Array.from({ length: goodFirst }, () => goodRequest(r, t)).join('');
    const bad = malformed(r, t);
    // One write (the parser sees the bad one while the first answers are still being written), or two.
    const bytes = r.next() < 0.7 ? [Buffer.concat([b(good), b(bad)])] : [b(good), b(bad)];
    return { family: 'pipelined', bytes, goodFirst };
  }],
  ['ws', (r, t) => {
    const path = r.pick([`/sync/${t.generation}/book-BTC-USD`, '/sync/nogen/doc', '/sync/%%%/x', '/v1/cluster', '/v1/session', '/v1/session?token=bad', '/nope', '/v1/status', '/sync']);
    const key = r.pick([KEY, '', 'short', 'dGhlIHNhbXBsZSBub25jZQ', '!!!!!!!!!!!!!!!!!!!!!!==', KEY, null]);
    const version = r.pick(['13', '8', '12', 'abc', '', null, '13', '13']);
    const upgrade = r.pick(['websocket', 'WebSocket', 'h2c', 'banana', 'websocket']);
    const method = r.pick(['GET', 'GET', 'GET', 'POST', 'PUT']);
    const auth = r.pick(['', `Authorization: Bearer ${t.token}x\r\n`, 'Authorization: Bearer nope\r\n', 'Authorization: Basic Zm9vOmJhcg==\r\n', 'X-Statemirror-Node: core-a\r\nAuthorization: Bearer wrong-secret\r\n']);
    const protocol = r.next() < 0.15 ? `Sec-WebSocket-Protocol: ${r.pick(['a,,b', 'a, a', ' ', 'x y'])}\r\n` : '';
    const head =
      `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n` +
      (key === null ? '' : `Sec-WebSocket-Key: ${key}\r\n`) +
      (version === null ? '' : `Sec-WebSocket-Version: ${version}\r\n`) +
      protocol +
      auth +
      '\r\n';
    return { family: 'ws', bytes: [b(head)], keepOpen: true };
  }],
  ['garbage', (r) => {
    const n = r.int(1, 300);
    return { family: 'garbage', bytes: [Buffer.from(Array.from({ length: n }, () => r.int(0, 255)))] };
  }],
];

interface Response {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** Splits what a server answered into responses (Content-Length, chunked, or until close). */
function parseResponses(data: Buffer): { responses: Response[]; rest: string | null } {
  const responses: Response[] = [];
  let at = 0;
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) return { responses, rest: `unterminated head: ${JSON.stringify(data.subarray(at, at + 80).toString('latin1'))}` };
    const lines = data.subarray(at, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) /.exec(lines[0] + ' ');
    if (!m) return { responses, rest: `bad status line: ${JSON.stringify(lines[0])}` };
    const status = Number(m[1]);
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
    }
    at = end + 4;
    if (status === 101) {
      responses.push({ status, headers, body: Buffer.alloc(0) });
      return { responses, rest: null }; // WebSocket frames follow
    }
    if (status < 200 || status === 204 || status === 304) {
      responses.push({ status, headers, body: Buffer.alloc(0) });
      continue;
    }
    if (headers.get('transfer-encoding')?.toLowerCase() === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const le = data.indexOf('\r\n', at);
        if (le < 0) return { responses, rest: 'truncated chunked body' };
        const size = parseInt(data.subarray(at, le).toString('latin1'), 16);
        at = le + 2;
        if (size === 0) {
          const trailerEnd = data.indexOf('\r\n', at);
          at = trailerEnd < 0 ? data.length : trailerEnd + 2;
          break;
        }
        parts.push(data.subarray(at, at + size));
        at += size + 2;
      }
      responses.push({ status, headers, body: Buffer.concat(parts) });
    } else if (headers.has('content-length')) {
      const len = Number(headers.get('content-length'));
      if (at + len > data.length) return { responses, rest: 'truncated body' };
      responses.push({ status, headers, body: data.subarray(at, at + len) });
      at += len;
    } else {
      responses.push({ status, headers, body: data.subarray(at) });
      at = data.length;
    }
  }
  return { responses, rest: null };
}

/** Writes the case's bytes on a fresh connection, half-closes, collects everything until close. */
function send(port: number, c: Case): Promise<{ data: Buffer; timedOut: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let timedOut = false;
    const socket = connect(port, '127.0.0.1', async () => {
      for (const bytes of c.bytes) {
        if (socket.destroyed) break;
        if (!socket.write(bytes)) await new Promise((r) => socket.once('drain', r).once('close', r));
      }
      if (!socket.destroyed && !c.keepOpen) socket.end();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, SOCKET_TIMEOUT_MS);
    socket.on('data', (d) => {
      chunks.push(d);
      // A successful upgrade: the handshake is all we check; don't hold the room open.
      if (chunks.length === 1 && d.subarray(0, 12).toString() === 'HTTP/1.1 101') socket.destroy();
    });
    socket.on('error', () => {}); // ECONNRESET after the server closed: what it sent is in chunks
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), timedOut });
    });
  });
}

/** What is wrong with an error response, or null when it has the JSON shape. */
function shapeProblem(res: Response): string | null {
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('application/json')) return `content-type ${JSON.stringify(type)}, body ${JSON.stringify(res.body.toString('latin1').slice(0, 60))}`;
  try {
    const parsed = JSON.parse(res.body.toString('utf8'));
    if (typeof parsed?.error?.code !== 'string' || typeof parsed?.error?.message !== 'string') return `body ${res.body.toString('utf8').slice(0, 80)}`;
  } catch {
    return `body not JSON: ${JSON.stringify(res.body.toString('latin1').slice(0, 60))}`;
  }
  return null;
}

let cluster: Cluster;
let dir: string;
beforeAll(async () => {
  dir = tempDir('sm-hostile-');
  cluster = await startCluster(testConfig({ coreNodes: 1 }), { ephemeralPorts: true, dataRoot: dir });
}, 30_000);
afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('hostile raw HTTP requests', () => {
  it('every error answer has the JSON shape, on a core node and a read node', async () => {
    console.log(`hostile-http seed ${SEED} (SIM_SEED=${SEED} reproduces)`);
    const r = rng(SEED);
    const core = cluster.primary()!;
    const near = cluster.regions.get('near')!;
    const token = await operatorToken();
    const before = await get(`${core.url}/v1/status`);
    const generation = (await get(`${core.url}/v1/sync/info`)).body.generation ?? 'g';
    const targets: Target[] = [
      { kind: 'core', port: Number(new URL(core.url).port), generation, token },
      { kind: 'read', port: Number(new URL(near.url).port), generation, token },
    ];
    const cases = Array.from({ length: REQUESTS }, () => {
      const t = r.pick(targets);
      return { target: t, c: r.pick(FAMILIES)[1](r, t) };
    });

    const failures: string[] = [];
    const silent: string[] = [];
    const tally = new Map<string, number>();
    let errors = 0;
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const { target, c } = cases[next++]!;
        const label = `${target.kind} ${c.family} ${JSON.stringify(Buffer.concat(c.bytes).subarray(0, Number(process.env.HOSTILE_LABEL ?? 90)).toString('latin1'))}`;
        const { data, timedOut } = await send(target.port, c);
        if (data.length === 0) {
          silent.push(`${label}${timedOut ? ' (timed out)' : ''}`);
          continue;
        }
        const { responses, rest } = parseResponses(data);
        if (rest) failures.push(`${label}: ${rest}`);
        // Each well-formed request ahead of the malformed one gets its own route's answer, in order,
        // before any parser error (an error spliced into them would break the parse above, or show here).
        const early = responses.filter((x) => x.status !== 100).slice(0, c.goodFirst ?? 0);
        if (early.length < (c.goodFirst ?? 0) || early.some((x) => ![200, 302, 401, 404].includes(x.status)))
          failures.push(`${label}: the pipelined requests got ${responses.map((x) => x.status).join(',')}`);
        for (const res of responses) {
          tally.set(`${res.status}`, (tally.get(`${res.status}`) ?? 0) + 1);
          if (res.status < 400) continue;
          errors += 1;
          const problem = shapeProblem(res);
          if (problem) failures.push(`${label}: ${res.status} ${problem}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    console.log(`statuses ${JSON.stringify(Object.fromEntries([...tally].sort()))}; ${errors} error answers, ${failures.length} without the JSON shape, ${silent.length} with no answer`);
    for (const f of [...silent.map((s) => `no answer: ${s}`), ...failures].slice(0, 40)) console.log(f);
    expect(failures).toEqual([]);
    expect(silent).toEqual([]);

    // Both nodes still answer, and nothing the generator sent reached the log.
    const after = await get(`${core.url}/v1/status`);
    expect(after.status).toBe(200);
    expect(after.body.seq).toBe(before.body.seq);
    expect((await get(`${near.url}/v1/status`)).status).toBe(200);
    // Nothing the generator sent was taken for a fault of the node; what the parser refused is counted.
    for (const url of [core.url, near.url]) {
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).not.toMatch(/rejects_total\{code="internal"/);
      expect(metrics).toMatch(/rejects_total\{code="headers_too_large"[^}]*\} [1-9]/);
    }
  }, 60_000);
});

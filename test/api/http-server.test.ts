// listen(): the connection limit answers 429 too_many_connections with a reason instead of
// silently dropping sockets, and frees the slot when a connection closes.
import { afterEach, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { connect, type Socket } from 'node:net';
import { listen, type RunningServer } from '../../src/http/server.js';

let server: RunningServer | null = null;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.close();
});

/** Opens a raw connection, sends one GET, resolves with the status line and body. */
function request(port: number): Promise<{ socket: Socket; response: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n');
      const response = new Promise<string>((res) => {
        let data = '';
        socket.on('data', (d) => {
          data += d;
          if (data.includes('\r\n\r\n') && /pong|too_many/.test(data)) res(data);
        });
        socket.on('end', () => res(data));
      });
      resolve({ socket, response });
    });
    socket.on('error', reject);
    sockets.push(socket);
  });
}

describe('listen connection limit', () => {
  it('answers 429 with a reason over the limit and frees the slot on close', async () => {
    const app = new Hono();
    app.get('/ping', (c) => c.text('pong'));
    server = await listen(app, '127.0.0.1', 0, { maxConnections: 2 });
    const a = await request(server.port);
    const b = await request(server.port);
    expect(await a.response).toContain('pong');
    expect(await b.response).toContain('pong');
    const c = await request(server.port);
    const refused = await c.response;
    expect(refused).toMatch(/^HTTP\/1.1 429/);
    expect(refused).toContain('too_many_connections');
    const closed = new Promise((r) => a.socket.once('close', r));
    a.socket.destroy();
    await closed;
    // The server sees the close on its side too; a fresh connection gets through once it has.
    let d = await request(server.port);
    for (let i = 0; i < 50 && !(await d.response).includes('pong'); i++) d = await request(server.port);
    expect(await d.response).toContain('pong');
  });
});

/** Sends raw bytes on a fresh connection and resolves with everything the server answered. */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    sockets.push(socket);
    let data = '';
    socket.on('data', (d) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
  });
}

describe("requests Node's own parser refuses", () => {
  it('still answer the JSON error shape with a reason code', async () => {
    const app = new Hono();
    app.post('/echo', async (c) => c.text(await c.req.text()));
    app.get('/ping', (c) => c.text('pong'));
    server = await listen(app, '127.0.0.1', 0);
    const cases: Array<[string, number, string]> = [
      [`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`, 431, 'headers_too_large'],
      ['POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', 400, 'bad_chunk_encoding'],
      ['POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 400, ''],
      ['GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-banana\r\n\r\n', 417, 'expectation_failed'],
      ['BREW / HTTP/1.1\r\nHost: x\r\n\r\n', 400, ''],
      ['GET /sync/x/y HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 404, 'not_found'],
      // Handshakes ws would refuse with text/html are refused here first, as JSON.
      ['GET /sync/x/y HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n', 400, 'bad_websocket_key'],
      ['GET /sync/x/y HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 12\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 400, 'bad_websocket_version'],
      ['POST /sync/x/y HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 405, 'method_not_allowed'],
      ['CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n', 405, 'method_not_allowed'],
      ['GET /ping HTTP/1.1\r\n\r\n', 400, 'missing_host'],
      ['GET http://[bad/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400, 'bad_url'],
    ];
    for (const [bytes, status, code] of cases) {
      const answer = await raw(server.port, bytes);
      expect(answer, bytes.slice(0, 40)).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
      expect(typeof body.error.code).toBe('string');
      expect(typeof body.error.message).toBe('string');
      if (code) expect(body.error.code).toBe(code);
    }
  });
});

describe('a malformed request pipelined behind good ones', () => {
  it('is answered after them, in order, and HTTP/1.0 without Host is served', async () => {
    const app = new Hono();
    // Slow answers: the parser meets the bad request while these are still being written.
    app.get('/slow/:n', async (c) => {
      await new Promise((r) => setImmediate(r));
      return c.text(`slow ${c.req.param('n')}`);
    });
    server = await listen(app, '127.0.0.1', 0);
    for (const bad of ['BREW / HTTP/1.1\r\nHost: x\r\n\r\n', 'CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n']) {
      const answer = await raw(server.port, `GET /slow/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow/2 HTTP/1.1\r\nHost: x\r\n\r\n${bad}`);
      const statuses = [...answer.matchAll(/HTTP\/1.1 (\d{3})/g)].map((m) => m[1]);
      expect(statuses.slice(0, 2), bad).toEqual(['200', '200']);
      expect(answer.indexOf('slow 1')).toBeLessThan(answer.indexOf('slow 2'));
      expect(statuses).toHaveLength(3);
      expect(JSON.parse(answer.slice(answer.lastIndexOf('\r\n\r\n') + 4)).error.code).toMatch(/^bad_|method_not_allowed/);
    }
    expect(await raw(server.port, 'GET /slow/3 HTTP/1.0\r\n\r\n')).toContain('slow 3');
  });
});

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

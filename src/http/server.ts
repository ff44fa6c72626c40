// Binds a hono app (and optionally read-only y-websocket rooms) to a real TCP port. Port 0 picks a
// free port; the bound port is returned so tests and `up` can wire proxies to it.
// Invariants: connections beyond maxConnections get 429 too_many_connections; WebSocket upgrades
// go to the upgrade handlers passed in (the replication link) or the rooms (passed in, /sync/...),
// anything else gets 404; close() closes the rooms and every connection.
import { createAdaptorServer } from '@hono/node-server';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import type { SyncServer } from '../rooms/room-server.js';

export interface RunningServer {
  host: string;
  port: number;
  url: string;
  server: Server;
  close(): Promise<void>;
}

export interface UpgradeHandler {
  /** Returns false when the path isn't this handler's. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
}

export async function listen(
  app: Hono,
  host: string,
  port: number,
  opts: { sync?: SyncServer; upgrades?: () => UpgradeHandler[]; maxConnections?: number } = {},
): Promise<RunningServer> {
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  if (opts.maxConnections !== undefined) {
    // Over the limit a connection gets a 429 with a reason and is closed (node's own
    // server.maxConnections would just drop it, leaving the client to guess).
    const max = opts.maxConnections;
    const body = JSON.stringify({ error: { code: 'too_many_connections', message: `this node accepts at most ${max} connections` } });
    const refusal = `HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    let open = 0;
    server.on('connection', (socket) => {
      if (open >= max) {
        socket.on('error', () => {});
        socket.end(refusal);
        return;
      }
      open += 1;
      socket.once('close', () => (open -= 1));
    });
  }
  // Keep-alive sockets would hold close() open; reads are short requests.
  server.keepAliveTimeout = 5000;
  server.on('upgrade', (req, socket, head) => {
    const handlers: UpgradeHandler[] = [...(opts.upgrades?.() ?? []), ...(opts.sync ? [opts.sync] : [])];
    if (!handlers.some((h) => h.handleUpgrade(req, socket, head))) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    host,
    port: bound,
    url: `http://${host}:${bound}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        opts.sync?.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

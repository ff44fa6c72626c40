// Binds a hono app (and optionally read-only y-websocket rooms) to a real TCP port. Port 0 picks a
// free port; the bound port is returned so tests and `up` can wire proxies to it.
// Invariants: connections beyond maxConnections get 429 too_many_connections; WebSocket upgrades
// go to the upgrade handlers passed in (the cluster link) or the rooms (passed in, /sync/...),
// anything else gets 404; requests Node's own parser refuses (oversized headers, bad chunking,
// conflicting lengths, an unknown Expect) get the same {"error":{code,message}} JSON as every other
// error; close() closes the rooms and every connection.
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

/** Node's parser errors (they never reach hono) → status and reason code. */
const PARSER_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout'],
  HPE_INVALID_CHUNK_SIZE: [400, 'bad_chunk_encoding'],
  HPE_UNEXPECTED_CONTENT_LENGTH: [400, 'conflicting_length'],
  HPE_INVALID_TRANSFER_ENCODING: [400, 'bad_transfer_encoding'],
  HPE_INVALID_METHOD: [400, 'bad_method'],
  HPE_INVALID_URL: [400, 'bad_url'],
  HPE_INVALID_HEADER_TOKEN: [400, 'bad_header'],
  HPE_INVALID_VERSION: [400, 'bad_http_version'],
};

const REASONS: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/** A complete HTTP/1.1 error response with the JSON error shape, for sockets hono never saw. */
function rawError(status: number, code: string, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
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
  // Requests Node's parser refuses before hono sees them still get the JSON error shape.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const [status, code] = PARSER_ERRORS[err.code ?? ''] ?? [400, 'bad_request'];
    socket.end(rawError(status, code, `the request could not be parsed (${err.code ?? 'parse error'})`));
  });
  server.on('checkExpectation', (_req, res) => {
    const body = JSON.stringify({ error: { code: 'expectation_failed', message: 'only Expect: 100-continue is supported' } });
    res.writeHead(417, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
  });
  server.on('upgrade', (req, socket, head) => {
    const handlers: UpgradeHandler[] = [...(opts.upgrades?.() ?? []), ...(opts.sync ? [opts.sync] : [])];
    if (!handlers.some((h) => h.handleUpgrade(req, socket, head))) socket.end(rawError(404, 'not_found', `no WebSocket endpoint at ${new URL(req.url ?? '/', 'http://x').pathname}`));
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

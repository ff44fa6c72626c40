// Binds a hono app (and optionally read-only y-websocket rooms) to a real TCP port. Port 0 picks a
// free port; the bound port is returned so tests and `up` can wire proxies to it.
// Invariants: connections beyond maxConnections get 429 too_many_connections; WebSocket upgrades
// go to the upgrade handlers passed in (the cluster link) or the rooms (passed in, /sync/...),
// anything else gets 404; requests Node's own parser refuses (oversized headers, bad chunking,
// conflicting lengths, an unknown Expect), a missing Host, CONNECT, a URL the adapter can't read and
// a handshake ws would refuse (checked here first: ws answers text/html) get the same
// {"error":{code,message}} JSON as every other error; a raw answer on a socket never splices into
// the answers to requests pipelined before it; close() closes the rooms and every connection.
import { getRequestListener } from '@hono/node-server';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import * as ws from 'ws';
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

const REASONS: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/** A complete HTTP/1.1 error response with the JSON error shape, for sockets hono never saw. */
function rawError(status: number, code: string, message: string, extraHeaders = ''): string {
  const body = JSON.stringify({ error: { code, message } });
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nConnection: close\r\n${extraHeaders}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

const jsonError = (status: number, code: string, message: string) =>
  new Response(JSON.stringify({ error: { code, message } }), { status, headers: { 'content-type': 'application/json' } });

// ws's own Sec-WebSocket-Protocol parser (exported at run time, absent from @types/ws).
const subprotocol = (ws as unknown as { subprotocol: { parse(header: string): Set<string> } }).subprotocol;

/**
 * The checks ws's WebSocketServer.handleUpgrade makes before it accepts a handshake, made first so
 * a bad handshake gets the JSON error shape: ws itself would answer text/html. None of our servers
 * enables permessage-deflate, so ws never looks at Sec-WebSocket-Extensions.
 */
function handshakeProblem(req: IncomingMessage): [number, string, string, string?] | null {
  if (req.method !== 'GET') return [405, 'method_not_allowed', `a WebSocket handshake is a GET, not ${req.method}`, 'Allow: GET\r\n'];
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return [400, 'bad_upgrade', 'only Upgrade: websocket is supported'];
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return [400, 'bad_websocket_key', 'missing or invalid Sec-WebSocket-Key header'];
  const version = Number(req.headers['sec-websocket-version']);
  if (version !== 13 && version !== 8) return [400, 'bad_websocket_version', 'missing or invalid Sec-WebSocket-Version header (13 or 8)', 'Sec-WebSocket-Version: 13, 8\r\n'];
  const protocol = req.headers['sec-websocket-protocol'];
  if (protocol !== undefined) {
    try {
      subprotocol.parse(protocol);
    } catch {
      return [400, 'bad_websocket_protocol', 'invalid Sec-WebSocket-Protocol header'];
    }
  }
  return null;
}

/**
 * Runs `fn` (which writes to the raw socket) once no earlier answer on this socket is still being
 * written. With pipelining, Node attaches the answer it is writing to the socket and queues the
 * later ones; a raw write (a parser error, a CONNECT or upgrade answer, a 101) now would splice
 * into them. Except when the attached answer is for the broken request itself (its body failed to
 * parse, so it is incomplete) and has not started: then `fn` writes its answer, and the app's, if
 * it ever comes, goes to a closed socket.
 */
function afterEarlierAnswers(socket: Duplex, fn: () => void): void {
  const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  const itsOwn = inFlight && !inFlight.req.complete && !inFlight.headersSent;
  if (inFlight && !itsOwn && !socket.destroyed) inFlight.once('close', () => afterEarlierAnswers(socket, fn));
  else fn();
}

export async function listen(
  app: Hono,
  host: string,
  port: number,
  opts: {
    sync?: SyncServer;
    upgrades?: () => UpgradeHandler[];
    maxConnections?: number;
    /** Counts each error code answered here, outside the app (the metrics' rejects by code). */
    countError?: (code: string) => void;
  } = {},
): Promise<RunningServer> {
  const count = opts.countError ?? (() => {});
  const handle = getRequestListener(app.fetch, {
    // HTTP/1.0 may omit Host; routes only read the path, so any name will do to build the URL.
    hostname: 'localhost',
    // A request target hono's adapter cannot turn into a URL (a bad absolute URL) or a throw that
    // escaped the app: still the error shape, never the adapter's empty 400/500.
    errorHandler: (err) => {
      const bad = err instanceof Error && err.name === 'RequestError';
      count(bad ? 'bad_url' : 'internal');
      return bad ? jsonError(400, 'bad_url', `the request target could not be read (${err.message})`) : jsonError(500, 'internal', 'the request failed inside this node');
    },
  });
  // requireHostHeader off: Node would answer a missing Host with an empty 400; this answers JSON.
  const server = createServer({ requireHostHeader: false }, (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.host === undefined && req.httpVersion === '1.1') {
      count('missing_host');
      const body = JSON.stringify({ error: { code: 'missing_host', message: 'an HTTP/1.1 request needs a Host header' } });
      res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
      return;
    }
    void handle(req, res);
  });
  if (opts.maxConnections !== undefined) {
    // Over the limit a connection gets a 429 with a reason and is closed (node's own
    // server.maxConnections would just drop it, leaving the client to guess).
    const max = opts.maxConnections;
    const body = JSON.stringify({ error: { code: 'too_many_connections', message: `this node accepts at most ${max} connections` } });
    const refusal = `HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    let open = 0;
    server.on('connection', (socket) => {
      if (open >= max) {
        count('too_many_connections');
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
  // A client that pipelines requests and then half-closes (shuts down its sending side) still gets
  // every answer before the socket closes: by default Node ends the socket at once, dropping the
  // answers not written yet. (http.Server reads this field; it is not a constructor option.)
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  // Requests Node's parser refuses before hono sees them still get the JSON error shape.
  const refused = new WeakSet<Duplex>();
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    // The parser stays in its error state: more bytes on this socket raise the error again.
    if (refused.has(socket)) return;
    refused.add(socket);
    const [status, code] = PARSER_ERRORS[err.code ?? ''] ?? [400, 'bad_request'];
    count(code);
    afterEarlierAnswers(socket, () => {
      if (socket.writable) socket.end(rawError(status, code, `the request could not be parsed (${err.code ?? 'parse error'})`));
      else socket.destroy();
    });
  });
  server.on('checkExpectation', (_req, res) => {
    count('expectation_failed');
    const body = JSON.stringify({ error: { code: 'expectation_failed', message: 'only Expect: 100-continue is supported' } });
    res.writeHead(417, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
  });
  // CONNECT (a proxy request): without a listener Node would drop the socket without a word.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => {});
    count('method_not_allowed');
    afterEarlierAnswers(socket, () => socket.end(rawError(405, 'method_not_allowed', 'this node is not a proxy: CONNECT is not supported', 'Allow: GET, POST\r\n')));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    afterEarlierAnswers(socket, () => {
      if (socket.destroyed) return;
      const problem = handshakeProblem(req);
      if (problem) {
        count(problem[1]);
        socket.end(rawError(problem[0], problem[1], problem[2], problem[3]));
        return;
      }
      const handlers: UpgradeHandler[] = [...(opts.upgrades?.() ?? []), ...(opts.sync ? [opts.sync] : [])];
      if (!handlers.some((h) => h.handleUpgrade(req, socket, head))) {
        count('not_found');
        socket.end(rawError(404, 'not_found', `no WebSocket endpoint at ${new URL(req.url ?? '/', 'http://x').pathname}`));
      }
    });
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

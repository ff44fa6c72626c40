// Real-socket test helpers for the net tests: bounded waits on events (never sleeps), an echo
// server, and a byte collector. Invariant: every wait has a timeout so a broken proxy fails a test
// instead of hanging the suite, and every helper-created server/socket can be torn down.

import { EventEmitter } from 'node:events';
import net from 'node:net';

export class TimeoutError extends Error {}

/** Reject with TimeoutError if `p` has not settled within `ms`; the timer is always cleared. */
export function withTimeout<T>(p: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms waiting for ${label}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Next `event` from `emitter`, bounded by `ms`. */
export function onceWithin<T = unknown>(emitter: EventEmitter, event: string, ms: number): Promise<T> {
  let listener: ((arg: T) => void) | undefined;
  const p = new Promise<T>((resolve) => {
    listener = (arg: T) => resolve(arg);
    emitter.once(event, listener);
  });
  return withTimeout(p, ms, `'${event}'`).finally(() => {
    if (listener) emitter.off(event, listener);
  });
}

export function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const addr = server.address();
      if (addr === null || typeof addr === 'string') reject(new Error('no port'));
      else resolve(addr.port);
    });
  });
}

export interface TestServer {
  server: net.Server;
  port: number;
  accepted: number;
  sockets: Set<net.Socket>;
  close(): Promise<void>;
}

/** A server tracking its sockets so close() can tear everything down. */
export async function startServer(
  onSocket: (sock: net.Socket) => void,
  options: net.ServerOpts = {},
): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const ts: TestServer = {
    server: net.createServer(options, (sock) => {
      ts.accepted += 1;
      sockets.add(sock);
      sock.on('error', () => {});
      sock.on('close', () => sockets.delete(sock));
      onSocket(sock);
    }),
    port: 0,
    accepted: 0,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        ts.server.close(() => resolve());
      }),
  };
  ts.port = await listen(ts.server);
  return ts;
}

/** Echo server: pipe() gives it backpressure and ends the reply when the request ends. */
export function startEchoServer(): Promise<TestServer> {
  return startServer((sock) => sock.pipe(sock));
}

/** Accumulates everything a socket receives from the moment it is created. */
export class Collector {
  private chunks: Buffer[] = [];
  private length = 0;
  private readonly changed = new EventEmitter();
  ended = false;
  closed = false;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.changed.emit('change');
    });
    sock.on('end', () => {
      this.ended = true;
      this.changed.emit('change');
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      this.closed = true;
      this.changed.emit('change');
    });
  }

  get size(): number {
    return this.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }

  /** Resolve when `pred` holds, re-checked on every socket event; bounded by `ms`. */
  until(pred: () => boolean, ms: number, label: string): Promise<void> {
    if (pred()) return Promise.resolve();
    let listener: (() => void) | undefined;
    const p = new Promise<void>((resolve, reject) => {
      listener = () => {
        if (pred()) resolve();
        else if (this.closed) reject(new Error(`socket closed before ${label}`));
      };
      this.changed.on('change', listener);
    });
    return withTimeout(p, ms, label).finally(() => {
      if (listener) this.changed.off('change', listener);
    });
  }

  waitBytes(n: number, ms: number): Promise<Buffer> {
    return this.until(() => this.length >= n, ms, `${n} bytes (have ${this.length})`).then(() => this.bytes());
  }

  waitClosed(ms: number): Promise<void> {
    return this.until(() => this.closed, ms, 'close');
  }

  waitEnded(ms: number): Promise<void> {
    return this.until(() => this.ended, ms, 'end');
  }
}

/** Connect to 127.0.0.1:port with a collector attached before any byte can arrive. */
export async function connectCollect(port: number, ms = 5000, opts: { allowHalfOpen?: boolean } = {}): Promise<Collector> {
  const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: opts.allowHalfOpen ?? false });
  const collector = new Collector(sock);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      sock.once('connect', () => resolve());
      sock.once('error', reject);
    }),
    ms,
    'connect',
  );
  return collector;
}

/** Start connecting without waiting: for sockets the proxy may reset before 'connect' is seen. */
export function dialCollect(port: number): Collector {
  return new Collector(net.connect({ host: '127.0.0.1', port }));
}

/** A port nothing listens on (bound then released), for refused-connection tests. */
export async function unusedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

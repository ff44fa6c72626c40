// LinkProxy: a TCP proxy that makes one real socket hop behave like a simulated WAN link, so the
// core and regional read nodes can run on one machine while HTTP and y-websocket bytes still pay
// regional latency. Lives in sim/ (tests and bench); the one product use is src/cli's `up`, which
// runs the local simulated cluster through it. One file (~580 lines) on purpose: the model below
// is one per-direction state machine whose ordering, loss and partition rules interlock.
//
// Model (per direction of each connection, the two directions are independent):
// - Every chunk read from the source is due at max(now + delay, lastDueThisDirection), where
//   delay = latencyMs + jitter, jitter uniform in [0, jitterMs) from a seeded PRNG (one stream
//   per direction, see prng.ts). The max() is what keeps TCP's guarantee: bytes are never
//   reordered, even when jitter or a live setLink() would make a later chunk "faster".
// - Loss: TCP cannot lose bytes, it retransmits. A chunk "lost" with probability lossPct/100 is
//   therefore delivered late by a retransmission penalty of max(200, 3 * latencyMs) ms, roughly
//   a TCP RTO (Linux's minimum RTO is 200 ms). Later chunks queue behind it (head-of-line
//   blocking), exactly as on a real lossy TCP link.
// - FIN (source ended) travels like a zero-length chunk: after all queued bytes, at least
//   latencyMs later. An abrupt close of one side ends-then-destroys the other side once the
//   bytes already queued towards it have been delivered; bytes flowing *into* the closed side
//   are dropped (nobody can read them).
// - Partitions: 'reset' destroys every connection and accept-then-destroys new ones.
//   'blackhole' delivers nothing: queued bytes are held, sources are paused so held bytes stay
//   bounded, new connections are accepted but never reach the target. heal() drops held bytes
//   and destroys every blackholed connection (a real partition would have lost them and TCP
//   would have timed out); connections made after heal() work normally.
//
// Invariants: bytes of one direction are delivered in read order; each direction has at most
// one pending timer (never a timer per chunk); bytes held per direction (our queue plus the
// destination's userland write buffer) exceed maxBufferedBytesPerDirection by at most one read
// chunk, because the source is paused as soon as the limit is crossed and resumed below half;
// open connections never exceed maxConnections. Timers stay ref'd while bytes are queued so
// nothing is lost at exit; stop() clears every timer and socket so a process can exit.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { mixSeed, mulberry32, type Rng } from './prng.js';

export interface LinkSpec {
  latencyMs: number;
  jitterMs: number;
  lossPct: number;
}

/**
 * The last stretch before a delivery is due is polled with setImmediate rather than waited with a
 * timer (whole-ms, late by up to ~1 ms): precision ~0.1 ms, for ≤ this long of busy turns per
 * pending delivery.
 */
const PRECISE_WINDOW_MS = 1.5;

export type PartitionMode = 'reset' | 'blackhole';

/** Structural subset of a pino logger, so callers can pass pino (or nothing). */
export interface LinkLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface LinkProxyOptions {
  /** For logs, e.g. "core->eu-west". */
  name: string;
  targetHost: string;
  targetPort: number;
  /** Default 127.0.0.1. */
  listenHost?: string;
  /** Default 0 (ephemeral). */
  listenPort?: number;
  link: LinkSpec;
  /** PRNG seed for jitter/loss; the default is fixed so runs are reproducible. */
  seed?: number;
  /** Default 1024; beyond it new sockets are closed at once. */
  maxConnections?: number;
  /** Default 16 MiB; above it the source socket is paused, resumed when drained below half. */
  maxBufferedBytesPerDirection?: number;
  logger?: LinkLogger;
}

export interface LinkProxyStats {
  connections: number;
  bytesForwarded: number;
  partitioned: PartitionMode | null;
  /** Bytes currently held across all directions (queues plus destination write buffers). */
  bufferedBytes: number;
  /** Largest per-direction held byte count ever observed; the backpressure bound is checked on it. */
  bufferedBytesMax: number;
  /** Directions whose source is currently paused for backpressure. */
  pausedDirections: number;
}

export type Direction = 'up' | 'down';

/** Events, mostly so tests can wait on them instead of sleeping. */
export interface LinkProxyEvents {
  connection: [{ id: number }];
  closed: [{ id: number }];
  /** A source was paused because its direction crossed maxBufferedBytesPerDirection. */
  pause: [{ id: number; direction: Direction; bufferedBytes: number }];
  resume: [{ id: number; direction: Direction; bufferedBytes: number }];
}

export const DEFAULT_SEED = 0x5eed1e55;
export const DEFAULT_MAX_CONNECTIONS = 1024;
export const DEFAULT_MAX_BUFFERED_BYTES_PER_DIRECTION = 16 * 1024 * 1024;
/** Linux's minimum TCP retransmission timeout; a lost chunk never costs less than this. */
export const LOSS_PENALTY_MS_MIN = 200;

export function validateLinkSpec(spec: LinkSpec): void {
  const ok = (v: number): boolean => Number.isFinite(v) && v >= 0;
  if (!ok(spec.latencyMs)) throw new RangeError(`latencyMs must be a finite number >= 0, got ${spec.latencyMs}`);
  if (!ok(spec.jitterMs)) throw new RangeError(`jitterMs must be a finite number >= 0, got ${spec.jitterMs}`);
  if (!ok(spec.lossPct) || spec.lossPct > 100) throw new RangeError(`lossPct must be in [0, 100], got ${spec.lossPct}`);
}

export function lossPenaltyMs(spec: LinkSpec): number {
  return Math.max(LOSS_PENALTY_MS_MIN, 3 * spec.latencyMs);
}

/**
 * Delay for one chunk. Always draws exactly two numbers (jitter, loss) so the PRNG sequence
 * stays aligned chunk-for-chunk whatever the link settings are, including after setLink().
 */
export function sampleDelayMs(spec: LinkSpec, rng: Rng): number {
  const jitterMs = rng() * spec.jitterMs;
  const lost = rng() * 100 < spec.lossPct;
  return spec.latencyMs + jitterMs + (lost ? lossPenaltyMs(spec) : 0);
}

const noopLogger: LinkLogger = { debug() {}, info() {}, warn() {} };

/** A chunk, or null for FIN (end of this direction). */
interface Entry {
  dueMs: number;
  chunk: Buffer | null;
}

type Timer = { kind: 'timeout'; handle: NodeJS.Timeout } | { kind: 'immediate'; handle: NodeJS.Immediate };

/** Destroy a socket the way a network reset looks: RST when possible. */
function resetSocket(sock: net.Socket): void {
  if (sock.destroyed) return;
  // resetAndDestroy() on a still-connecting socket waits for the connection first; a partition
  // must not wait on anything, so just drop it.
  if (sock.connecting) {
    sock.destroy();
    return;
  }
  try {
    sock.resetAndDestroy();
  } catch {
    sock.destroy();
  }
}

/** Flush what was written, send FIN, then destroy (destroy() alone would drop unflushed bytes). */
function endThenDestroy(sock: net.Socket): void {
  if (sock.destroyed) return;
  if (sock.writableFinished) {
    sock.destroy();
    return;
  }
  sock.once('finish', () => sock.destroy());
  if (!sock.writableEnded) sock.end();
}

/** One direction of one connection: a due-time ordered queue drained by a single timer. */
class Pipe {
  private readonly queue: Entry[] = [];
  private head = 0;
  private queuedBytes = 0;
  private lastDueMs = 0;
  private timer: Timer | null = null;
  private finScheduled = false;
  private finDelivered = false;
  private destroyDestAfterFin = false;
  private dead = false;
  paused = false;

  constructor(
    private readonly proxy: LinkProxy,
    private readonly conn: Conn,
    readonly direction: Direction,
    private readonly source: net.Socket,
    private readonly dest: net.Socket,
    private readonly rng: Rng,
  ) {}

  bufferedBytes(): number {
    if (this.dead) return 0;
    return this.queuedBytes + (this.dest.destroyed ? 0 : this.dest.writableLength);
  }

  onData(chunk: Buffer): void {
    if (this.dead || this.finScheduled) return;
    const nowMs = performance.now();
    const dueMs = Math.max(nowMs + sampleDelayMs(this.proxy.link, this.rng), this.lastDueMs);
    this.push({ dueMs, chunk });
    this.queuedBytes += chunk.length;
    this.checkPressure();
    this.arm();
  }

  /** Source sent FIN: forward it after everything already queued. */
  onSourceEnd(): void {
    if (this.dead || this.finScheduled) return;
    this.finScheduled = true;
    const dueMs = Math.max(performance.now() + this.proxy.link.latencyMs, this.lastDueMs);
    this.push({ dueMs, chunk: null });
    this.arm();
  }

  /** Source is gone (clean or not): deliver what is queued, then take the destination down too. */
  onSourceClose(): void {
    if (this.dead) return;
    this.destroyDestAfterFin = true;
    if (this.finDelivered) endThenDestroy(this.dest);
    else this.onSourceEnd();
  }

  /** Stop delivering and forget queued bytes (destination gone, reset, heal, stop). */
  kill(): void {
    this.dead = true;
    this.clearTimer();
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
  }

  /** Blackhole: hold queued bytes, deliver nothing, read nothing more. */
  freeze(): void {
    this.clearTimer();
    this.source.pause();
  }

  /** Re-check whether a paused source may read again (called after deliveries and flushes). */
  maybeResume(): void {
    if (!this.paused || this.dead || this.conn.blackholed) return;
    const buffered = this.bufferedBytes();
    if (buffered >= this.proxy.maxBufferedBytesPerDirection / 2) return;
    this.paused = false;
    if (!this.source.destroyed) this.source.resume();
    this.proxy.emit('resume', { id: this.conn.id, direction: this.direction, bufferedBytes: buffered });
  }

  private push(entry: Entry): void {
    this.queue.push(entry);
    this.lastDueMs = entry.dueMs;
  }

  private checkPressure(): void {
    const buffered = this.bufferedBytes();
    this.proxy.noteBuffered(buffered);
    if (this.paused || buffered <= this.proxy.maxBufferedBytesPerDirection) return;
    this.paused = true;
    this.source.pause();
    this.proxy.emit('pause', { id: this.conn.id, direction: this.direction, bufferedBytes: buffered });
  }

  private arm(): void {
    if (this.timer !== null || this.dead || this.conn.blackholed) return;
    const next = this.queue[this.head];
    if (next === undefined) return;
    const waitMs = next.dueMs - performance.now();
    if (waitMs <= PRECISE_WINDOW_MS) {
      // Due, or due within the last stretch: poll on each turn of the event loop, so delivery is
      // within ~0.1 ms of its due time (a timer alone rounds up to whole ms and adds ~1 ms).
      this.timer = { kind: 'immediate', handle: setImmediate(() => this.fire()) };
    } else {
      this.timer = { kind: 'timeout', handle: setTimeout(() => this.fire(), Math.floor(waitMs - PRECISE_WINDOW_MS)) };
    }
  }

  private clearTimer(): void {
    if (this.timer === null) return;
    if (this.timer.kind === 'timeout') clearTimeout(this.timer.handle);
    else clearImmediate(this.timer.handle);
    this.timer = null;
  }

  private fire(): void {
    this.timer = null;
    if (this.dead || this.conn.blackholed) return;
    // Re-read the clock: a timer may fire slightly before its due time (libuv's cached loop
    // time), and delivering early would break the latency lower bound.
    const nowMs = performance.now();
    for (;;) {
      const next = this.queue[this.head];
      if (next === undefined || next.dueMs > nowMs) break;
      this.head += 1;
      this.deliver(next);
      if (this.dead) return;
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head); // compact occasionally so the array doesn't grow forever
      this.head = 0;
    }
    this.maybeResume();
    this.arm();
  }

  private deliver(entry: Entry): void {
    if (this.dest.destroyed) {
      this.kill();
      return;
    }
    if (entry.chunk === null) {
      this.finDelivered = true;
      if (this.destroyDestAfterFin) endThenDestroy(this.dest);
      else this.dest.end();
      return;
    }
    const chunk = entry.chunk;
    this.queuedBytes -= chunk.length;
    this.proxy.noteForwarded(chunk.length);
    this.dest.write(chunk, () => this.maybeResume());
  }
}

/** One accepted client connection and (unless accepted during a blackhole) its target socket. */
class Conn {
  blackholed = false;
  readonly target: net.Socket | null;
  private readonly up: Pipe | null;
  private readonly down: Pipe | null;
  private targetConnected = false;
  private clientClosed = false;
  private targetClosed = false;

  constructor(
    private readonly proxy: LinkProxy,
    readonly id: number,
    readonly client: net.Socket,
    blackholedAtAccept: boolean,
  ) {
    client.setNoDelay(true); // Nagle would add its own latency on top of the simulated one
    client.on('error', (err) => proxy.logger.debug({ proxy: proxy.name, id, err: err.message }, 'client socket error'));
    client.on('close', () => this.onClientClose());

    if (blackholedAtAccept) {
      // The SYN got "through" (the kernel accepted it) but nothing else will: never dial the
      // target, read nothing; heal() destroys it.
      this.blackholed = true;
      this.target = null;
      this.up = null;
      this.down = null;
      client.pause();
      return;
    }

    const target = net.connect({ host: proxy.targetHost, port: proxy.targetPort, allowHalfOpen: true });
    this.target = target;
    target.setNoDelay(true);
    this.up = new Pipe(proxy, this, 'up', client, target, mulberry32(mixSeed(proxy.seed, id * 2)));
    this.down = new Pipe(proxy, this, 'down', target, client, mulberry32(mixSeed(proxy.seed, id * 2 + 1)));
    const up = this.up;
    const down = this.down;

    client.on('data', (chunk: Buffer) => up.onData(chunk));
    client.on('end', () => up.onSourceEnd());
    target.on('data', (chunk: Buffer) => down.onData(chunk));
    target.on('end', () => down.onSourceEnd());
    target.on('connect', () => {
      this.targetConnected = true;
    });
    target.on('error', (err) => proxy.logger.debug({ proxy: proxy.name, id, err: err.message }, 'target socket error'));
    target.on('close', () => this.onTargetClose());
  }

  pipes(): Pipe[] {
    const out: Pipe[] = [];
    if (this.up !== null) out.push(this.up);
    if (this.down !== null) out.push(this.down);
    return out;
  }

  freeze(): void {
    this.blackholed = true;
    if (this.up === null) this.client.pause();
    for (const pipe of this.pipes()) pipe.freeze();
  }

  /** Drop everything queued and destroy both sockets now. */
  destroy(reset: boolean): void {
    for (const pipe of this.pipes()) pipe.kill();
    const kill = reset ? resetSocket : (s: net.Socket) => s.destroy();
    kill(this.client);
    if (this.target !== null) kill(this.target);
  }

  private onClientClose(): void {
    this.clientClosed = true;
    this.down?.kill();
    this.up?.onSourceClose();
    this.maybeFinished();
  }

  private onTargetClose(): void {
    this.targetClosed = true;
    this.up?.kill();
    if (!this.targetConnected) {
      // Target refused (or never answered): nothing to deliver, the client is dropped at once.
      this.down?.kill();
      this.client.destroy();
    } else {
      this.down?.onSourceClose();
    }
    this.maybeFinished();
  }

  private maybeFinished(): void {
    if (!this.clientClosed) return;
    if (this.target !== null && !this.targetClosed) return;
    for (const pipe of this.pipes()) pipe.kill();
    this.proxy.forget(this);
  }
}

export class LinkProxy extends EventEmitter<LinkProxyEvents> {
  readonly name: string;
  readonly targetHost: string;
  /** Where new connections go; retarget() moves it (a restarted server on a new port). */
  targetPort: number;
  readonly seed: number;
  readonly maxConnections: number;
  readonly maxBufferedBytesPerDirection: number;
  readonly logger: LinkLogger;
  private readonly listenHost: string;
  private readonly listenPort: number;
  private linkSpec: LinkSpec;
  private readonly server: net.Server;
  private readonly conns = new Set<Conn>();
  private nextId = 0;
  private mode: PartitionMode | null = null;
  private boundPort: number | null = null;
  private stopping = false;
  private stopped: Promise<void> | null = null;
  private bytesForwarded = 0;
  private bufferedBytesMax = 0;

  constructor(opts: LinkProxyOptions) {
    super();
    validateLinkSpec(opts.link);
    const maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const maxBuffered = opts.maxBufferedBytesPerDirection ?? DEFAULT_MAX_BUFFERED_BYTES_PER_DIRECTION;
    if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new RangeError(`maxConnections must be an integer >= 1`);
    if (!Number.isInteger(maxBuffered) || maxBuffered < 1) throw new RangeError(`maxBufferedBytesPerDirection must be an integer >= 1`);
    this.name = opts.name;
    this.targetHost = opts.targetHost;
    this.targetPort = opts.targetPort;
    this.listenHost = opts.listenHost ?? '127.0.0.1';
    this.listenPort = opts.listenPort ?? 0;
    this.linkSpec = { ...opts.link };
    this.seed = (opts.seed ?? DEFAULT_SEED) >>> 0;
    this.maxConnections = maxConnections;
    this.maxBufferedBytesPerDirection = maxBuffered;
    this.logger = opts.logger ?? noopLogger;
    // allowHalfOpen: a client's FIN must not auto-end our reply direction; we forward FIN ourselves.
    this.server = net.createServer({ allowHalfOpen: true }, (sock) => this.accept(sock));
    this.server.on('error', (err) => this.logger.warn({ proxy: this.name, err: err.message }, 'listener error'));
  }

  get link(): LinkSpec {
    return this.linkSpec;
  }

  start(): Promise<{ host: string; port: number }> {
    if (this.stopping) return Promise.reject(new Error(`${this.name}: start() after stop()`));
    if (this.boundPort !== null) return Promise.resolve({ host: this.listenHost, port: this.boundPort });
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.listenPort, this.listenHost, () => {
        this.server.off('error', onError);
        const addr = this.server.address();
        if (addr === null || typeof addr === 'string') {
          reject(new Error(`${this.name}: unexpected listen address ${String(addr)}`));
          return;
        }
        this.boundPort = addr.port;
        this.logger.info({ proxy: this.name, port: addr.port, link: this.linkSpec }, 'link proxy listening');
        resolve({ host: this.listenHost, port: addr.port });
      });
    });
  }

  get port(): number {
    if (this.boundPort === null) throw new Error(`${this.name}: port read before start()`);
    return this.boundPort;
  }

  /** Live change; applies to bytes read from now on (already-queued bytes keep their due time). */
  setLink(spec: LinkSpec): void {
    validateLinkSpec(spec);
    this.linkSpec = { ...spec };
    this.logger.info({ proxy: this.name, link: this.linkSpec }, 'link changed');
  }

  /** New connections go to `port` from now on (existing ones keep their target). */
  retarget(port: number): void {
    this.targetPort = port;
  }

  partition(mode: PartitionMode): void {
    if (this.mode === mode) return;
    this.mode = mode;
    this.logger.info({ proxy: this.name, mode }, 'partition');
    for (const conn of [...this.conns]) {
      if (mode === 'reset') conn.destroy(true);
      else conn.freeze();
    }
  }

  heal(): void {
    if (this.mode === null) return;
    this.logger.info({ proxy: this.name, was: this.mode }, 'heal');
    this.mode = null;
    for (const conn of [...this.conns]) {
      if (conn.blackholed) conn.destroy(false);
    }
  }

  get stats(): LinkProxyStats {
    let bufferedBytes = 0;
    let pausedDirections = 0;
    for (const conn of this.conns) {
      for (const pipe of conn.pipes()) {
        bufferedBytes += pipe.bufferedBytes();
        if (pipe.paused) pausedDirections += 1;
      }
    }
    return {
      connections: this.conns.size,
      bytesForwarded: this.bytesForwarded,
      partitioned: this.mode,
      bufferedBytes,
      bufferedBytesMax: this.bufferedBytesMax,
      pausedDirections,
    };
  }

  /** Close the listener and every connection; resolves when the listener has closed. */
  stop(): Promise<void> {
    if (this.stopped !== null) return this.stopped;
    this.stopping = true;
    for (const conn of [...this.conns]) conn.destroy(false);
    const wasListening = this.boundPort !== null;
    this.boundPort = null;
    this.stopped = wasListening
      ? new Promise((resolve) => {
          this.server.close(() => resolve());
        })
      : Promise.resolve();
    this.logger.info({ proxy: this.name }, 'link proxy stopped');
    return this.stopped;
  }

  /** @internal */
  noteForwarded(bytes: number): void {
    this.bytesForwarded += bytes;
  }

  /** @internal */
  noteBuffered(bytes: number): void {
    if (bytes > this.bufferedBytesMax) this.bufferedBytesMax = bytes;
  }

  /** @internal */
  forget(conn: Conn): void {
    if (this.conns.delete(conn)) this.emit('closed', { id: conn.id });
  }

  private accept(sock: net.Socket): void {
    sock.on('error', () => {}); // a reset client must not crash the process
    if (this.stopping) {
      sock.destroy();
      return;
    }
    if (this.mode === 'reset') {
      resetSocket(sock);
      return;
    }
    if (this.conns.size >= this.maxConnections) {
      this.logger.warn({ proxy: this.name, max: this.maxConnections }, 'connection limit reached, closing new socket');
      sock.destroy();
      return;
    }
    const id = this.nextId++;
    const conn = new Conn(this, id, sock, this.mode === 'blackhole');
    this.conns.add(conn);
    this.emit('connection', { id });
  }
}

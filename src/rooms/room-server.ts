// Read-only y-websocket rooms. Serves the docs of one generation at /sync/<generation>/<doc> using
// the y-websocket wire protocol (y-protocols sync + awareness), so stock WebsocketProvider clients
// (read nodes, browsers) can sync. Wire messages, varuint-prefixed:
//   0 sync:      0 step1(stateVector) -> we answer step2(diff); 1 step2 / 2 update -> DROPPED
//   1 awareness: client awareness is DROPPED; we send an empty awareness update as a heartbeat
//                (the client reconnects after 30 s without a message)
//   3 queryAwareness: ignored (no server-side presence)
// Invariants: nothing a client sends is ever applied to a doc or forwarded; every connection is
// authorized for its doc (by the `authorize` function passed in; rooms/ never imports auth/)
// before it sees a byte of it (refusals close with 4401/4403 and are logged); a connection for
// another generation is closed with 4410 (terminal for y-websocket, the reader rediscovers);
// connections are bounded in pages (maxPages: sockets sharing a `page` query parameter from one
// address are one page; a socket without one is a page of its own), sockets per page and sockets in
// all (429 with a JSON reason before the upgrade), and a consumer that can't keep up is closed
// rather than buffered without bound (it resyncs by state vector when it reconnects, losing
// nothing); updates are merged per room and broadcast as one WebSocket frame, encoded and framed
// once and written as the same bytes to every socket, per event-loop turn — per 10 ms tick in a
// room of more than 32 sockets.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import * as syncProtocol from 'y-protocols/sync';

export const MSG_SYNC = 0;
export const MSG_AWARENESS = 1;
export const MSG_QUERY_AWARENESS = 3;

export const CLOSE_GENERATION_GONE = 4410;
export const CLOSE_UNKNOWN_DOC = 4404;
export const CLOSE_BAD_MESSAGE = 4400;
export const CLOSE_FORBIDDEN = 4403;
export const CLOSE_UNAUTHENTICATED = 4401;
export const CLOSE_SLOW_CONSUMER = 4508; // 45xx: transient, the client retries

/** Updates a room holds before a broadcast at most (they are merged into one frame per turn). */
const MAX_PENDING_UPDATES = 256;
/** Above this many sockets a room broadcasts once per FLUSH_TICK_MS instead of once per turn. */
const CROWDED_ROOM = 32;
const FLUSH_TICK_MS = 10;
const PAGE_ID = /^[A-Za-z0-9_-]{1,64}$/;

export interface RoomSet {
  generation: string;
  docs: ReadonlyMap<string, Y.Doc>;
  /**
   * Docs made on demand (a read node's per-account views); called only after authorization, once
   * per room (not per connection), paired with one release() when the room empties or retires.
   */
  resolve?: (name: string) => Y.Doc | undefined;
  /** Called when the last connection to a doc from `resolve` closes. */
  release?: (name: string, doc: Y.Doc) => void;
}

export interface SyncServerOptions {
  /** Sockets in all (a hard cap under the page limits). */
  maxConnections: number;
  /** Pages: the sockets of one `page` id from one address count once (default maxConnections). */
  maxPages?: number;
  /** Sockets one page may hold (default 64: a downstream read node opens one per doc). */
  maxSocketsPerPage?: number;
  heartbeatMs?: number;
  /** Above this many unsent bytes a connection is closed (slow consumer). */
  maxBufferedBytes?: number;
  /** Decides whether `req` may sync `docName`; without it every room is open. */
  authorize?: (req: IncomingMessage, docName: string) => Promise<{ ok: true } | { ok: false; status: 401 | 403; reason: string }>;
  /** Refused peers are reported here (for logging). */
  onRefused?: (info: { remote: string | undefined; docName: string; status: number; reason: string }) => void;
  onDroppedClientUpdate?: (docName: string) => void;
}

interface Room {
  doc: Y.Doc;
  conns: Set<WebSocket>;
  onUpdate: (update: Uint8Array, origin: unknown) => void;
  /** Updates since the last broadcast: merged into one frame per socket per event-loop turn. */
  pending: Uint8Array[];
  scheduled: boolean;
}

const PATH = /^\/sync\/([A-Za-z0-9-]{1,64})\/([A-Za-z0-9_.-]{1,80})$/;

interface Served {
  set: RoomSet;
  rooms: Map<string, Room>;
}

export class SyncServer {
  // No compression, ever: sendFrame() writes pre-framed bytes straight to the socket, which is only
  // safe while ws's sender writes synchronously and queues nothing (as it does without deflate).
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024, perMessageDeflate: false });
  /** The current generation and any retiring ones still served during a handover. */
  private readonly served = new Map<string, Served>();
  private currentGeneration: string | null = null;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly alive = new WeakMap<WebSocket, boolean>();
  /** Sockets (open or upgrading) per page key. */
  private readonly pages = new Map<string, number>();
  private sockets = 0;
  private anonymous = 0;
  droppedClientMessages = 0;
  /** Upgrades refused by a limit, by reason code. */
  readonly refusedByLimit: Record<string, number> = {};

  constructor(private readonly opts: SyncServerOptions) {
    const every = opts.heartbeatMs ?? 5000;
    this.heartbeat = setInterval(() => this.beat(), every);
    this.heartbeat.unref();
  }

  get connections(): number {
    return this.wss.clients.size;
  }

  /** Pages holding at least one socket (open or upgrading). */
  get pageCount(): number {
    return this.pages.size;
  }

  get generation(): string | null {
    return this.currentGeneration;
  }

  /** Generations served right now (the current one first). */
  get generations(): string[] {
    const rest = [...this.served.keys()].filter((g) => g !== this.currentGeneration);
    return this.currentGeneration ? [this.currentGeneration, ...rest] : rest;
  }

  /**
   * Serves a (new) generation. By default every other generation is retired at once (its
   * connections closed with 4410). With keepPrevious, the others stay served and keep streaming
   * until retire(): a handover, so readers keep advancing while they sync the new generation.
   */
  serve(set: RoomSet, opts: { keepPrevious?: boolean } = {}): void {
    this.served.set(set.generation, { set, rooms: new Map() });
    this.currentGeneration = set.generation;
    if (!opts.keepPrevious) for (const g of [...this.served.keys()]) if (g !== set.generation) this.retire(g);
  }

  /** Stops serving `generation`: its connections close with 4410, on-demand docs are released. */
  retire(generation: string): void {
    const served = this.served.get(generation);
    if (!served) return;
    this.served.delete(generation);
    if (this.currentGeneration === generation) this.currentGeneration = null;
    for (const [name, room] of served.rooms) {
      room.doc.off('update', room.onUpdate);
      if (!served.set.docs.has(name)) served.set.release?.(name, room.doc);
      for (const ws of room.conns) ws.close(CLOSE_GENERATION_GONE, 'generation gone');
    }
  }

  /** Upgrade handler for node's http server 'upgrade' event. Returns false if the path isn't ours. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://x');
    const match = PATH.exec(url.pathname);
    if (!match) return false;
    const [, generation, docName] = match as unknown as [string, string, string];
    if (!this.reserve(req, url, socket)) return true;
    // Authorize first (async), then upgrade: a refused client gets a terminal 44xx close code
    // instead of an HTTP error that y-websocket would retry forever.
    const decide = this.opts.authorize ? this.opts.authorize(req, docName) : Promise.resolve({ ok: true } as const);
    decide.then(
      (decision) => {
        if (socket.destroyed) return;
        this.wss.handleUpgrade(req, socket, head, (ws) => {
          // First, before any early close: a socket error (e.g. an oversized frame) with no
          // listener would be an uncaught exception that takes the whole node down.
          ws.on('error', () => ws.terminate());
          if (!decision.ok) {
            this.opts.onRefused?.({ remote: req.socket.remoteAddress, docName, status: decision.status, reason: decision.reason });
            ws.close(decision.status === 401 ? CLOSE_UNAUTHENTICATED : CLOSE_FORBIDDEN, decision.reason.slice(0, 120));
            return;
          }
          this.accept(ws, generation, docName);
        });
      },
      () => socket.destroy(),
    );
    return true;
  }

  /**
   * Counts the socket against the page, per-page and total limits (429 with a JSON reason when one
   * is reached), and releases it when the socket closes, however it ends.
   */
  private reserve(req: IncomingMessage, url: URL, socket: Duplex): boolean {
    const page = url.searchParams.get('page');
    const key = page !== null && PAGE_ID.test(page) ? `${req.socket.remoteAddress ?? ''}|${page}` : `#${++this.anonymous}`;
    const held = this.pages.get(key) ?? 0;
    const maxPages = this.opts.maxPages ?? this.opts.maxConnections;
    const perPage = this.opts.maxSocketsPerPage ?? 64;
    const refusal =
      this.sockets >= this.opts.maxConnections ? (['too_many_connections', `this node serves at most ${this.opts.maxConnections} sockets`] as const)
      : held === 0 && this.pages.size >= maxPages ? (['too_many_pages', `this node serves at most ${maxPages} pages`] as const)
      : held >= perPage ? (['too_many_sockets_per_page', `a page may hold at most ${perPage} sockets`] as const)
      : null;
    if (refusal) {
      this.refusedByLimit[refusal[0]] = (this.refusedByLimit[refusal[0]] ?? 0) + 1;
      const body = JSON.stringify({ error: { code: refusal[0], message: refusal[1] } });
      socket.on('error', () => {});
      socket.end(`HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return false;
    }
    this.pages.set(key, held + 1);
    this.sockets += 1;
    socket.once('close', () => {
      this.sockets -= 1;
      const n = (this.pages.get(key) ?? 1) - 1;
      if (n === 0) this.pages.delete(key);
      else this.pages.set(key, n);
    });
    return true;
  }

  private accept(ws: WebSocket, generation: string, docName: string): void {
    ws.binaryType = 'nodebuffer';
    const served = this.served.get(generation);
    if (!served) {
      ws.close(CLOSE_GENERATION_GONE, 'generation gone');
      return;
    }
    const { set } = served;
    // resolve() only when the room doesn't exist yet: resolve/release pair up per room.
    const doc = set.docs.get(docName) ?? served.rooms.get(docName)?.doc ?? set.resolve?.(docName);
    if (doc === undefined) {
      ws.close(CLOSE_UNKNOWN_DOC, 'unknown doc');
      return;
    }
    const room = this.room(served, docName, doc);
    room.conns.add(ws);
    this.alive.set(ws, true);
    ws.on('pong', () => this.alive.set(ws, true));
    ws.on('message', (data: Buffer) => this.onMessage(ws, room, docName, data));
    ws.on('close', () => {
      room.conns.delete(ws);
      // A room lives only while someone watches it: its 'update' listener makes Yjs encode every
      // transaction, which an empty room would only throw away. On-demand docs are released too.
      if (room.conns.size === 0 && served.rooms.get(docName) === room) {
        room.doc.off('update', room.onUpdate);
        served.rooms.delete(docName);
        if (!set.docs.has(docName)) set.release?.(docName, room.doc);
      }
    });
    // Server's step1 is deliberately not sent: we never want the client's state.
  }

  private room(served: Served, name: string, doc: Y.Doc): Room {
    const existing = served.rooms.get(name);
    if (existing) return existing;
    // Fan-out costs per send, not per byte: every update that lands in one turn of the event loop
    // (under load, several commits) goes out as one merged frame, encoded once, the same buffer
    // to every socket of the room. Idle, a frame leaves on the next turn (no added delay).
    const flush = () => {
      room.scheduled = false;
      const updates = room.pending.splice(0);
      if (updates.length === 0 || room.conns.size === 0) return;
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MSG_SYNC);
      syncProtocol.writeUpdate(encoder, updates.length === 1 ? updates[0]! : Y.mergeUpdates(updates));
      const frame = binaryFrame(encoding.toUint8Array(encoder));
      for (const ws of room.conns) this.sendFrame(ws, frame);
    };
    const room: Room = {
      doc,
      conns: new Set(),
      pending: [],
      scheduled: false,
      onUpdate: (update) => {
        room.pending.push(update);
        if (room.pending.length >= MAX_PENDING_UPDATES) return flush(); // bounded: flush now
        if (!room.scheduled) {
          room.scheduled = true;
          // A crowded room waits a tick so each socket gets one frame per tick, not one per
          // commit: a send costs microseconds per socket whatever its size (the bounded lag this
          // adds is the price of serving thousands of pages from one process). A tick that grew
          // with the broadcast's duration was tried and measured worse (bench:fanout, 1000 pages).
          if (room.conns.size > CROWDED_ROOM) setTimeout(flush, FLUSH_TICK_MS);
          else setImmediate(flush);
        }
      },
    };
    doc.on('update', room.onUpdate);
    served.rooms.set(name, room);
    return room;
  }

  private onMessage(ws: WebSocket, room: Room, docName: string, data: Buffer): void {
    try {
      const decoder = decoding.createDecoder(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      const type = decoding.readVarUint(decoder);
      if (type === MSG_SYNC) {
        const sub = decoding.readVarUint(decoder);
        if (sub === syncProtocol.messageYjsSyncStep1) {
          const stateVector = decoding.readVarUint8Array(decoder);
          const encoder = encoding.createEncoder();
          encoding.writeVarUint(encoder, MSG_SYNC);
          encoding.writeVarUint(encoder, syncProtocol.messageYjsSyncStep2);
          encoding.writeVarUint8Array(encoder, Y.encodeStateAsUpdate(room.doc, stateVector));
          this.send(ws, encoding.toUint8Array(encoder));
          return;
        }
        // step2 / update from a client: read-only room, never applied nor forwarded.
        this.droppedClientMessages += 1;
        this.opts.onDroppedClientUpdate?.(docName);
        return;
      }
      if (type === MSG_AWARENESS || type === MSG_QUERY_AWARENESS) return;
      ws.close(CLOSE_BAD_MESSAGE, 'unknown message type');
    } catch {
      ws.close(CLOSE_BAD_MESSAGE, 'malformed message');
    }
  }

  private send(ws: WebSocket, msg: Uint8Array): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (this.slow(ws)) return;
    ws.send(msg);
  }

  /**
   * Writes an already framed message (binaryFrame) straight to the socket: the same bytes for every
   * socket of a room, one write each. Safe because this server never compresses
   * (perMessageDeflate off), so ws's sender writes synchronously and keeps no queue to interleave
   * with; without the underlying socket (not expected) it falls back to ws.send.
   */
  private sendFrame(ws: WebSocket, frame: { bytes: Buffer; payload: Uint8Array }): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (this.slow(ws)) return;
    const raw = (ws as unknown as { _socket?: Socket })._socket;
    if (raw && raw.writable) raw.write(frame.bytes);
    else ws.send(frame.payload);
  }

  private slow(ws: WebSocket): boolean {
    if (ws.bufferedAmount <= (this.opts.maxBufferedBytes ?? 32 * 1024 * 1024)) return false;
    ws.close(CLOSE_SLOW_CONSUMER, 'slow consumer');
    return true;
  }

  private beat(): void {
    // Empty awareness update: [1, len=1, clients=0]. Keeps y-websocket's 30 s watchdog quiet on
    // docs that see no writes, and ws ping/pong finds peers that vanished without a FIN.
    const msg = Uint8Array.of(MSG_AWARENESS, 1, 0);
    for (const ws of this.wss.clients) {
      if (this.alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      this.alive.set(ws, false);
      ws.ping();
      this.send(ws, msg);
    }
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const g of [...this.served.keys()]) this.retire(g);
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

/** An unmasked, final, binary WebSocket frame (RFC 6455 §5.2) carrying `payload`. */
export function binaryFrame(payload: Uint8Array): { bytes: Buffer; payload: Uint8Array } {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65_536 ? 4 : 10;
  const bytes = Buffer.allocUnsafe(head + n);
  bytes[0] = 0x82; // FIN + opcode 2 (binary)
  if (n < 126) bytes[1] = n;
  else if (n < 65_536) {
    bytes[1] = 126;
    bytes.writeUInt16BE(n, 2);
  } else {
    bytes[1] = 127;
    bytes.writeBigUInt64BE(BigInt(n), 2);
  }
  bytes.set(payload, head);
  return { bytes, payload };
}

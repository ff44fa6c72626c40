// Read-only y-websocket rooms. Serves the docs of one generation at /sync/<generation>/<doc> using
// the y-websocket wire protocol (y-protocols sync + awareness), so stock WebsocketProvider clients
// (read nodes, browsers) can sync. Wire messages, varuint-prefixed:
//   0 sync:      0 step1(stateVector) -> we answer step2(diff); 1 step2 / 2 update -> DROPPED
//   1 awareness: client awareness is DROPPED; we send an empty awareness update as a heartbeat
//                (the client reconnects after 30 s without a message)
//   3 queryAwareness: ignored (no server-side presence)
// Invariants: nothing a client sends is ever applied to a doc or forwarded; a connection for
// another generation is closed with 4410 (terminal for y-websocket, the reader rediscovers);
// connections are bounded (maxConnections), and a consumer that can't keep up is closed rather
// than buffered without bound (it resyncs by state vector when it reconnects, losing nothing).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
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
export const CLOSE_SLOW_CONSUMER = 4508; // 45xx: transient, the client retries

export interface RoomSet {
  generation: string;
  docs: ReadonlyMap<string, Y.Doc>;
}

export interface SyncServerOptions {
  maxConnections: number;
  heartbeatMs?: number;
  /** Above this many unsent bytes a connection is closed (slow consumer). */
  maxBufferedBytes?: number;
  /** Optional gate (auth comes in a later issue): return false to refuse with 4403. */
  authorize?: (req: IncomingMessage, docName: string) => boolean;
  onDroppedClientUpdate?: (docName: string) => void;
}

interface Room {
  doc: Y.Doc;
  conns: Set<WebSocket>;
  onUpdate: (update: Uint8Array, origin: unknown) => void;
}

const PATH = /^\/sync\/([A-Za-z0-9-]{1,64})\/([A-Za-z0-9_-]{1,80})$/;

export class SyncServer {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 });
  private rooms = new Map<string, Room>();
  private current: RoomSet | null = null;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly alive = new WeakMap<WebSocket, boolean>();
  droppedClientMessages = 0;

  constructor(private readonly opts: SyncServerOptions) {
    const every = opts.heartbeatMs ?? 5000;
    this.heartbeat = setInterval(() => this.beat(), every);
    this.heartbeat.unref();
  }

  get connections(): number {
    return this.wss.clients.size;
  }

  get generation(): string | null {
    return this.current?.generation ?? null;
  }

  /** Serves a (new) generation; connections to any other generation are closed with 4410. */
  serve(set: RoomSet): void {
    const previous = this.rooms;
    this.current = set;
    this.rooms = new Map();
    for (const room of previous.values()) {
      room.doc.off('update', room.onUpdate);
      for (const ws of room.conns) ws.close(CLOSE_GENERATION_GONE, 'generation gone');
    }
  }

  /** Upgrade handler for node's http server 'upgrade' event. Returns false if the path isn't ours. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://x');
    const match = PATH.exec(url.pathname);
    if (!match) return false;
    const [, generation, docName] = match as unknown as [string, string, string];
    if (this.wss.clients.size >= this.opts.maxConnections) {
      socket.end('HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\ntoo_many_connections\n');
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req, generation, docName));
    return true;
  }

  private accept(ws: WebSocket, req: IncomingMessage, generation: string, docName: string): void {
    ws.binaryType = 'nodebuffer';
    const set = this.current;
    if (set === null || set.generation !== generation) {
      ws.close(CLOSE_GENERATION_GONE, 'generation gone');
      return;
    }
    const doc = set.docs.get(docName);
    if (doc === undefined) {
      ws.close(CLOSE_UNKNOWN_DOC, 'unknown doc');
      return;
    }
    if (this.opts.authorize && !this.opts.authorize(req, docName)) {
      ws.close(CLOSE_FORBIDDEN, 'forbidden');
      return;
    }
    const room = this.room(docName, doc);
    room.conns.add(ws);
    this.alive.set(ws, true);
    ws.on('pong', () => this.alive.set(ws, true));
    ws.on('message', (data: Buffer) => this.onMessage(ws, room, docName, data));
    ws.on('close', () => room.conns.delete(ws));
    ws.on('error', () => ws.terminate());
    // Server's step1 is deliberately not sent: we never want the client's state.
  }

  private room(name: string, doc: Y.Doc): Room {
    const existing = this.rooms.get(name);
    if (existing) return existing;
    const room: Room = {
      doc,
      conns: new Set(),
      onUpdate: (update) => {
        const encoder = encoding.createEncoder();
        encoding.writeVarUint(encoder, MSG_SYNC);
        syncProtocol.writeUpdate(encoder, update);
        const msg = encoding.toUint8Array(encoder);
        for (const ws of room.conns) this.send(ws, msg);
      },
    };
    doc.on('update', room.onUpdate);
    this.rooms.set(name, room);
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
    if (ws.bufferedAmount > (this.opts.maxBufferedBytes ?? 32 * 1024 * 1024)) {
      ws.close(CLOSE_SLOW_CONSUMER, 'slow consumer');
      return;
    }
    ws.send(msg);
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
    for (const room of this.rooms.values()) room.doc.off('update', room.onUpdate);
    this.rooms.clear();
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

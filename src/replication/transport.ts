// The cluster transport between core nodes (docs/replication.md, "Transport"): one WebSocket per
// ordered pair of nodes at /v1/cluster. Each node dials every peer and sends only on the
// connection it dialled; it receives on the connections its peers dialled. Dialling never stops:
// a failed or closed connection (refused, 401, 404 from a node that is not serving yet, a reset)
// is re-dialled with exponential backoff and jitter, and every failure shows in status().
// Invariants: a peer is authenticated (bearer cluster secret, constant-time compare) and names
// itself (x-statemirror-node, a configured node other than us) before any frame is read; a frame
// whose `from` is not the connection's node, or that does not decode, closes the connection;
// a message to a peer that is not connected, or whose socket buffer is over its limit, is dropped
// and counted (Raft retransmits); nothing here queues without bound.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { decodeMessage, encodeMessage, type ClusterMessage, type NodeId } from './messages.js';

export const CLUSTER_PATH = '/v1/cluster';
const NODE_HEADER = 'x-statemirror-node';

export interface TransportOptions {
  self: NodeId;
  /** Peer name → its base URL (http://host:port, possibly through a link proxy). */
  peers: ReadonlyMap<NodeId, string>;
  clusterSecret: string;
  onMessage: (from: NodeId, msg: ClusterMessage) => void;
  /** Frames larger than this close the connection. */
  maxFrameBytes: number;
  /** Per-connection socket buffer above which messages are dropped. */
  maxBufferedBytes: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

export interface PeerLink {
  /** Our outbound connection is open. */
  connected: boolean;
  /** The peer's connection to us is open. */
  inbound: boolean;
  /** Why the last dial failed or closed (null while connected). */
  lastError: string | null;
  dials: number;
  dropped: number;
  sent: number;
  received: number;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of an `Authorization: Bearer <secret>` header value (cluster links, snapshot transfer). */
export function bearerIs(header: string | undefined, secret: string): boolean {
  const presented = header?.startsWith('Bearer ') ? header.slice(7) : '';
  return timingSafeEqual(digest(presented), digest(secret));
}

/** Constant-time check of a request's `Authorization: Bearer <secret>`. */
export function authorizedPeer(req: IncomingMessage, secret: string): boolean {
  return bearerIs(req.headers.authorization, secret);
}

interface Dialer {
  url: string;
  ws: WebSocket | null;
  timer: NodeJS.Timeout | null;
  failures: number;
  link: PeerLink;
}

export class ClusterTransport {
  private readonly wss: WebSocketServer;
  private readonly dialers = new Map<NodeId, Dialer>();
  private readonly inbound = new Map<NodeId, WebSocket>();
  private closed = false;

  constructor(private readonly o: TransportOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: o.maxFrameBytes });
    for (const [peer, url] of o.peers) {
      this.dialers.set(peer, {
        url: url.replace(/^http/, 'ws') + CLUSTER_PATH,
        ws: null, timer: null, failures: 0,
        link: { connected: false, inbound: false, lastError: 'not dialled yet', dials: 0, dropped: 0, sent: 0, received: 0 },
      });
    }
  }

  /** A peer's address changed (e.g. an ephemeral port): used from the next dial on. */
  setPeerUrl(peer: NodeId, url: string): void {
    const d = this.dialers.get(peer);
    if (d) d.url = url.replace(/^http/, 'ws') + CLUSTER_PATH;
  }

  start(): void {
    for (const peer of this.dialers.keys()) this.dial(peer);
  }

  status(): Record<NodeId, PeerLink> {
    return Object.fromEntries([...this.dialers].map(([peer, d]) => [peer, { ...d.link }]));
  }

  /** Sends if connected; otherwise drops (Raft retransmits) and counts it. */
  send(to: NodeId, msg: ClusterMessage): void {
    const d = this.dialers.get(to);
    if (!d) return;
    const ws = d.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > this.o.maxBufferedBytes) {
      d.link.dropped += 1;
      return;
    }
    ws.send(encodeMessage(msg));
    d.link.sent += 1;
  }

  // ---- outbound ----

  private dial(peer: NodeId): void {
    const d = this.dialers.get(peer)!;
    if (this.closed) return;
    d.timer = null;
    d.link.dials += 1;
    const ws = new WebSocket(d.url, {
      headers: { authorization: `Bearer ${this.o.clusterSecret}`, [NODE_HEADER]: this.o.self },
      maxPayload: this.o.maxFrameBytes,
      handshakeTimeout: 5_000,
      perMessageDeflate: false,
      // A client must mask its frames (RFC 6455 §5.3) so that browser scripts cannot poison caching
      // proxies; a link between two authenticated cluster nodes has no such party. An all-zero mask
      // is a valid mask that ws skips XOR-ing with: the leader ships every entry to every follower,
      // and masking it cost ~2% of the leader's CPU.
      generateMask: (mask: Buffer) => mask.fill(0),
    });
    d.ws = ws;
    let failed = false;
    // No 'unexpected-response' listener: with one attached, ws would not abort a refused
    // handshake and no 'close' would ever come (the old standby's silent stop). Without it, a
    // non-101 answer is an 'error' followed by 'close', and we re-dial.
    ws.on('error', (err) => {
      failed = true;
      this.noteFailure(peer, err.message);
    });
    ws.on('open', () => {
      d.failures = 0;
      d.link.connected = true;
      d.link.lastError = null;
      this.o.log?.('info', 'cluster link up', { peer });
    });
    // We never expect frames on our own dialled connection: ignore them.
    ws.on('close', (code, reason) => {
      if (d.ws === ws) d.ws = null;
      const was = d.link.connected;
      d.link.connected = false;
      if (!failed) this.noteFailure(peer, `closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`, was);
      this.schedule(peer);
    });
  }

  private noteFailure(peer: NodeId, why: string, wasConnected = false): void {
    const d = this.dialers.get(peer)!;
    if (d.link.lastError !== why || wasConnected) this.o.log?.('warn', 'cluster link down: re-dialling with backoff', { peer, why });
    d.link.lastError = why;
  }

  private schedule(peer: NodeId): void {
    const d = this.dialers.get(peer)!;
    if (this.closed || d.timer) return;
    d.failures += 1;
    const min = this.o.backoffMinMs ?? 50;
    const max = this.o.backoffMaxMs ?? 2_000;
    const base = Math.min(max, min * 2 ** Math.min(d.failures - 1, 16));
    // Full jitter: restarts of several nodes don't re-dial in lockstep.
    d.timer = setTimeout(() => this.dial(peer), base / 2 + Math.random() * (base / 2));
    d.timer.unref();
  }

  // ---- inbound ----

  /** HTTP upgrade hook: true if the request was for the cluster endpoint (handled here). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (new URL(req.url ?? '/', 'http://x').pathname !== CLUSTER_PATH) return false;
    const peer = req.headers[NODE_HEADER];
    const refuse = (status: string, why: string) => {
      this.o.log?.('warn', 'cluster peer refused', { remote: req.socket.remoteAddress, why });
      const body = JSON.stringify({ error: { code: why, message: why } });
      socket.on('error', () => {});
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    };
    if (!authorizedPeer(req, this.o.clusterSecret)) {
      refuse('401 Unauthorized', 'bad_cluster_secret');
      return true;
    }
    if (typeof peer !== 'string' || !this.dialers.has(peer)) {
      refuse('403 Forbidden', 'unknown_cluster_node');
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(peer, ws));
    return true;
  }

  private accept(peer: NodeId, ws: WebSocket): void {
    // First: an unhandled socket error (an oversized frame) would crash the node.
    ws.on('error', () => ws.terminate());
    this.inbound.get(peer)?.close(4000, 'replaced by a newer connection');
    this.inbound.set(peer, ws);
    const dialer = this.dialers.get(peer)!;
    const link = dialer.link;
    link.inbound = true;
    // The peer is back (it dialled us): dial it now rather than at the end of a long backoff.
    if (dialer.timer && !link.connected) {
      clearTimeout(dialer.timer);
      dialer.failures = 0;
      this.dial(peer);
    }
    ws.on('message', (raw) => {
      let msg: ClusterMessage;
      try {
        msg = decodeMessage(raw);
      } catch (err) {
        this.o.log?.('warn', 'malformed cluster frame: closing the link', { peer, err: err instanceof Error ? err.message.slice(0, 200) : String(err) });
        ws.close(4400, 'malformed message');
        return;
      }
      if (msg.from !== peer) {
        ws.close(4400, 'sender mismatch');
        return;
      }
      link.received += 1;
      this.o.onMessage(peer, msg);
    });
    ws.on('close', () => {
      if (this.inbound.get(peer) === ws) {
        this.inbound.delete(peer);
        link.inbound = false;
      }
    });
  }

  close(): void {
    this.closed = true;
    for (const d of this.dialers.values()) {
      if (d.timer) clearTimeout(d.timer);
      d.ws?.terminate();
      d.ws = null;
    }
    for (const ws of this.inbound.values()) ws.terminate();
    this.inbound.clear();
    this.wss.close();
  }
}

// The primary's side of log shipping. Accepts one standby connection at a time, finds where the
// standby's log agrees with ours (by epoch, Kafka-style), ships the missing entries from the log,
// then every new batch as it becomes durable, and resolves `replicate()` once the standby acks.
// Invariants (synchronous mode): while a standby is connected, no batch is released (acked to
// clients or published) before the standby acknowledged it; while none is connected and none has
// ever caught up under this primary (a fresh bootstrap or promotion: the other node is dead or
// fenced, since it cannot commit without us), batches are released solo. A standby that drops
// after catching up does NOT re-enable solo: it may have promoted itself, so we wait — a split
// brain can't acknowledge on both sides. A standby promotes only once it has caught up (see
// Follower), so it never takes over without the entries released solo before it connected.
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, WebSocket } from 'ws';
import type { CommandLog, LogEntry } from '../log/command-log.js';
import {
  FencedError, MSG_ACK, MSG_APPEND, MSG_FENCED, MSG_HEARTBEAT, MSG_HELLO, MSG_WELCOME, REPLICATION_PATH,
  authorizedPeer, decodeRepl, encodeRepl, type ReplMessage,
} from './protocol.js';

export interface PrimaryReplicatorOptions {
  log: CommandLog;
  epoch: number;
  nodeName: string;
  mode: 'sync' | 'async';
  clusterSecret: string;
  heartbeatMs: number;
  /** True when this primary may commit alone until a standby first catches up. */
  soloAllowed: boolean;
  /** Entries per APPEND frame during catch-up. */
  chunkEntries?: number;
  logger?: Logger;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Decodes a frame, or closes the connection (4400) and returns null if it is malformed. */
function decodeOrClose(ws: WebSocket, raw: unknown): ReplMessage | null {
  try {
    return decodeRepl(raw);
  } catch {
    ws.close(4400, 'malformed message');
    return null;
  }
}

export class PrimaryReplicator extends EventEmitter<{ fenced: [number]; attached: [string]; detached: [string] }> {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  private standby: { ws: WebSocket; node: string; sentSeq: number; ackedSeq: number } | null = null;
  private everAttached = false;
  private waiters: Waiter[] = [];
  private readonly heartbeat: NodeJS.Timeout;
  private fencedBy: number | null = null;
  private pumping = false;

  constructor(private readonly opts: PrimaryReplicatorOptions) {
    super();
    this.heartbeat = setInterval(() => this.beat(), opts.heartbeatMs);
    this.heartbeat.unref();
  }

  get attached(): boolean {
    return this.standby !== null && this.everAttached && this.standby.ackedSeq >= this.opts.log.lastSeq();
  }

  status() {
    return {
      mode: this.opts.mode,
      standby: this.standby?.node ?? null,
      standbyAckedSeq: this.standby?.ackedSeq ?? null,
      solo: !this.everAttached && this.opts.soloAllowed,
      waitingForStandby: this.waiters.length,
    };
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (new URL(req.url ?? '/', 'http://x').pathname !== REPLICATION_PATH) return false;
    if (!authorizedPeer(req, this.opts.clusterSecret)) {
      this.opts.logger?.warn({ remote: req.socket.remoteAddress }, 'replication peer refused: bad cluster secret');
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nbad_cluster_secret\n');
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    return true;
  }

  private accept(ws: WebSocket): void {
    // Before anything else: an unhandled socket error (oversized frame) would crash the node.
    ws.on('error', () => ws.terminate());
    ws.once('message', (data) => {
      const hello = decodeOrClose(ws, data);
      if (!hello) return;
      if (hello.t !== MSG_HELLO) {
        ws.close(4400, 'expected hello');
        return;
      }
      if (hello.epoch > this.opts.epoch) {
        // The "standby" has seen a newer epoch than ours: we are the stale one.
        ws.send(encodeRepl({ t: MSG_FENCED, epoch: this.opts.epoch }));
        ws.close(4409, 'primary is stale');
        this.fence(hello.epoch);
        return;
      }
      const { log } = this.opts;
      // Where does the standby's log stop agreeing with ours? Entries up to our end of its last
      // epoch are identical (one writer per epoch); anything after that is its unreplicated tail.
      const agreeUpTo = Math.min(hello.lastSeq, log.epochEnd(hello.lastEpoch));
      const truncateTo = agreeUpTo < hello.lastSeq ? agreeUpTo : null;
      if (this.standby) this.standby.ws.close(4000, 'replaced by a newer standby connection');
      this.standby = { ws, node: hello.node, sentSeq: agreeUpTo, ackedSeq: agreeUpTo };
      this.opts.logger?.info({ standby: hello.node, standbySeq: hello.lastSeq, truncateTo, primarySeq: log.lastSeq() }, 'standby connected');
      ws.send(encodeRepl({ t: MSG_WELCOME, node: this.opts.nodeName, epoch: this.opts.epoch, truncateTo }));
      ws.on('message', (raw) => this.onMessage(ws, raw));
      ws.on('close', () => this.detach(ws));
      if (agreeUpTo >= log.lastSeq()) this.markAttached();
      this.pump();
    });
  }

  private markAttached(): void {
    const sb = this.standby;
    if (this.everAttached || !sb) return;
    this.everAttached = true;
    this.opts.logger?.info({ standby: sb.node, seq: sb.ackedSeq }, 'standby caught up: synchronous replication');
    this.emit('attached', sb.node);
  }

  private onMessage(ws: WebSocket, raw: unknown): void {
    const msg = decodeOrClose(ws, raw);
    if (!msg) return;
    const sb = this.standby;
    if (!sb || sb.ws !== ws) return;
    if (msg.t === MSG_ACK) {
      if (msg.seq > sb.sentSeq || msg.seq < sb.ackedSeq) {
        ws.close(4400, `ack ${msg.seq} outside ${sb.ackedSeq}..${sb.sentSeq}`);
        return;
      }
      sb.ackedSeq = msg.seq;
      if (sb.ackedSeq >= this.opts.log.lastSeq()) this.markAttached();
      this.release();
      this.pump();
    } else if (msg.t === MSG_FENCED) {
      this.fence(msg.epoch);
    } else {
      ws.close(4400, 'unexpected message');
    }
  }

  private detach(ws: WebSocket): void {
    if (this.standby?.ws !== ws) return;
    this.opts.logger?.warn({ standby: this.standby.node, ackedSeq: this.standby.ackedSeq }, 'standby disconnected');
    this.emit('detached', this.standby.node);
    this.standby = null;
    // A standby that never caught up can't have promoted: a primary allowed solo goes on alone.
    this.release();
  }

  /** Sends whatever the standby lacks, from the log, without overfilling the socket. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const sb = this.standby;
      const chunk = this.opts.chunkEntries ?? 512;
      while (sb && this.standby === sb && sb.ws.readyState === WebSocket.OPEN && sb.sentSeq < this.opts.log.lastSeq()) {
        if (sb.ws.bufferedAmount > 8 * 1024 * 1024) return; // resumes on the next ack or batch
        const entries: LogEntry[] = [];
        for (const e of this.opts.log.entriesFrom(sb.sentSeq + 1)) {
          entries.push(e);
          if (entries.length >= chunk) break;
        }
        if (entries.length === 0) return;
        sb.ws.send(encodeRepl({ t: MSG_APPEND, epoch: this.opts.epoch, entries }));
        sb.sentSeq = entries[entries.length - 1]!.seq;
      }
    } finally {
      this.pumping = false;
    }
  }

  private beat(): void {
    const sb = this.standby;
    if (sb && sb.ws.readyState === WebSocket.OPEN) {
      sb.ws.send(encodeRepl({ t: MSG_HEARTBEAT, epoch: this.opts.epoch, seq: this.opts.log.lastSeq() }));
    }
  }

  /** Whether batches may be released without a standby ack right now. */
  private releasesAlone(): boolean {
    return this.opts.mode === 'async' || (this.opts.soloAllowed && !this.everAttached && this.standby === null);
  }

  private release(): void {
    const acked = this.standby?.ackedSeq ?? -1;
    const alone = this.releasesAlone();
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (alone || w.seq <= acked) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  /** The sequencer's hook: resolves when the batch may be acknowledged and published. */
  replicate(entries: readonly LogEntry[]): Promise<void> {
    if (this.fencedBy !== null) return Promise.reject(new FencedError(this.fencedBy));
    this.pump();
    const seq = entries[entries.length - 1]!.seq;
    if (this.releasesAlone()) return Promise.resolve();
    if (this.standby && this.standby.ackedSeq >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }

  /** A node with a higher epoch exists: stop releasing anything, forever. */
  fence(epoch: number): void {
    if (this.fencedBy !== null) return;
    this.fencedBy = epoch;
    this.opts.logger?.warn({ epoch: this.opts.epoch, higherEpoch: epoch }, 'fenced: a newer primary exists');
    const err = new FencedError(epoch);
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.emit('fenced', epoch);
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const w of this.waiters.splice(0)) w.reject(new FencedError(this.fencedBy ?? this.opts.epoch));
    this.standby?.ws.terminate();
    this.standby = null;
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

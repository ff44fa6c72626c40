// The standby's side of log shipping. Connects to the primary, says how far its log goes, truncates
// the tail the primary says it never committed, then stores and applies every shipped entry,
// checking each result and state hash against the primary's before acking. Invariants: an entry is
// acked only after it is durable here; an entry from an epoch lower than ours is refused (the
// sender is fenced); on any divergence the follower halts loudly and never acks or promotes again;
// it asks to be promoted only after it has caught up with the primary at least once and then heard
// nothing for heartbeatTimeoutMs — a node that never caught up would lose committed writes.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import type { DomainConfig } from '../domain/types.js';
import type { CommandLog } from '../log/command-log.js';
import { applyChecked, replay } from '../engine/replay.js';
import type { HashedMachine } from '../engine/hashed-machine.js';
import {
  MSG_ACK, MSG_APPEND, MSG_FENCED, MSG_HEARTBEAT, MSG_HELLO, MSG_WELCOME, REPLICATION_PATH,
  decodeRepl, encodeRepl, type ReplMessage,
} from './protocol.js';

export interface FollowerOptions {
  log: CommandLog;
  domain: DomainConfig;
  nodeName: string;
  /** http://host:port of the primary (possibly through a LinkProxy). */
  peerUrl: string;
  clusterSecret: string;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  machine?: HashedMachine;
  logger?: Logger;
}

export type FollowerState = 'connecting' | 'catching_up' | 'in_sync' | 'diverged' | 'stopped';

export class Follower extends EventEmitter<{ promote: []; diverged: [Error]; appended: [number]; stale: [number]; caughtUp: [number] }> {
  machine: HashedMachine;
  private ws: WebSocket | null = null;
  private lastHeardMs = 0;
  private caughtUp = false;
  private state: FollowerState = 'connecting';
  private readonly watchdog: NodeJS.Timeout;
  private readonly checkEveryMs: number;
  private lastCheckMs: number;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private primaryNode: string | null = null;

  constructor(private readonly opts: FollowerOptions) {
    super();
    this.machine = opts.machine ?? replay(opts.domain, opts.log);
    this.machine.drainEffects();
    this.checkEveryMs = Math.max(5, Math.floor(opts.heartbeatMs / 2));
    this.lastCheckMs = Date.now();
    this.watchdog = setInterval(() => this.check(), this.checkEveryMs);
  }

  get seq(): number {
    return this.opts.log.lastSeq();
  }

  status() {
    return { state: this.state, primary: this.primaryNode, caughtUp: this.caughtUp, lastHeardMsAgo: this.lastHeardMs ? Date.now() - this.lastHeardMs : null };
  }

  start(): void {
    this.connect();
  }

  private connect(): void {
    if (this.state === 'stopped' || this.state === 'diverged') return;
    const url = this.opts.peerUrl.replace(/^http/, 'ws') + REPLICATION_PATH;
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.opts.clusterSecret}` }, maxPayload: 64 * 1024 * 1024 });
    this.ws = ws;
    ws.on('open', () => {
      const { log } = this.opts;
      ws.send(encodeRepl({ t: MSG_HELLO, node: this.opts.nodeName, epoch: log.currentEpoch(), lastSeq: log.lastSeq(), lastEpoch: log.lastEpoch() }));
    });
    ws.on('message', (raw) => {
      try {
        this.onMessage(ws, decodeRepl(raw));
      } catch (err) {
        this.opts.logger?.error({ err: err instanceof Error ? err.message : String(err) }, 'replication message refused');
        ws.close(4400, 'bad message');
      }
    });
    ws.on('error', () => {}); // 'close' follows and reconnects
    ws.on('unexpected-response', (_req, res) => {
      this.opts.logger?.error({ status: res.statusCode }, 'primary refused the replication link (cluster secret?)');
    });
    ws.on('close', () => {
      if (this.ws === ws) this.ws = null;
      if (this.state === 'stopped' || this.state === 'diverged') return;
      this.state = 'connecting';
      this.reconnectTimer = setTimeout(() => this.connect(), Math.min(200, this.opts.heartbeatMs));
    });
  }

  private onMessage(ws: WebSocket, msg: ReplMessage): void {
    if (this.ws !== ws || this.state === 'stopped' || this.state === 'diverged') return;
    const { log } = this.opts;
    if ('epoch' in msg && msg.t !== MSG_FENCED && msg.epoch < log.currentEpoch()) {
      // A stale primary: tell it, and don't take anything from it.
      ws.send(encodeRepl({ t: MSG_FENCED, epoch: log.currentEpoch() }));
      ws.close(4409, 'stale primary');
      this.emit('stale', msg.epoch);
      return;
    }
    this.lastHeardMs = Date.now();
    switch (msg.t) {
      case MSG_WELCOME: {
        if (msg.epoch > log.currentEpoch()) log.setCurrentEpoch(msg.epoch);
        this.primaryNode = msg.node;
        if (msg.truncateTo !== null) {
          const removed = log.truncateAfter(msg.truncateTo);
          this.opts.logger?.warn({ truncateTo: msg.truncateTo, removed }, 'dropped an unreplicated log tail the primary never committed');
          this.machine = replay(this.opts.domain, log);
          this.machine.drainEffects();
        }
        this.state = this.caughtUp ? 'in_sync' : 'catching_up';
        return;
      }
      case MSG_APPEND: {
        const first = msg.entries[0]!.seq;
        if (first !== log.lastSeq() + 1) throw new Error(`append starts at ${first}, log ends at ${log.lastSeq()}`);
        try {
          for (const e of msg.entries) {
            if (e.epoch > msg.epoch || e.epoch < log.lastEpoch()) throw new Error(`entry ${e.seq} has epoch ${e.epoch}`);
            applyChecked(this.machine, e);
          }
        } catch (err) {
          this.diverge(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        log.appendBatch(msg.entries);
        this.machine.drainEffects();
        const seq = log.lastSeq();
        ws.send(encodeRepl({ t: MSG_ACK, seq }));
        this.emit('appended', seq);
        return;
      }
      case MSG_HEARTBEAT: {
        if (log.lastSeq() >= msg.seq && !this.caughtUp) {
          this.caughtUp = true;
          this.opts.logger?.info({ seq: log.lastSeq() }, 'standby caught up with the primary');
          this.emit('caughtUp', log.lastSeq());
        }
        if (this.caughtUp) this.state = 'in_sync';
        return;
      }
      case MSG_FENCED: {
        // The primary knows a higher epoch than ours: adopt it so a later promotion goes above it.
        if (msg.epoch > log.currentEpoch()) log.setCurrentEpoch(msg.epoch);
        ws.close();
        return;
      }
      default:
        throw new Error(`unexpected message type ${msg.t}`);
    }
  }

  private diverge(err: Error): void {
    this.state = 'diverged';
    this.opts.logger?.fatal({ err: err.message }, 'STANDBY DIVERGED FROM THE PRIMARY: halting, refusing to ack or promote');
    this.ws?.close(4500, 'diverged');
    this.emit('diverged', err);
  }

  private check(): void {
    const now = Date.now();
    // If this process itself stalled (GC, a long synchronous write), the timers phase runs before
    // the heartbeats waiting in the socket are read: that silence is ours, not the primary's.
    const stalledMs = now - this.lastCheckMs - this.checkEveryMs;
    this.lastCheckMs = now;
    if (stalledMs > this.checkEveryMs) this.lastHeardMs += stalledMs;
    if (this.state === 'stopped' || this.state === 'diverged' || !this.caughtUp) return;
    if (now - this.lastHeardMs <= this.opts.heartbeatTimeoutMs) return;
    this.opts.logger?.warn({ silentMs: Date.now() - this.lastHeardMs, seq: this.seq }, 'primary silent past the heartbeat timeout: promoting');
    this.stop();
    this.emit('promote');
  }

  stop(): void {
    if (this.state !== 'diverged') this.state = 'stopped';
    clearInterval(this.watchdog);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    this.ws = null;
    ws?.terminate();
  }
}

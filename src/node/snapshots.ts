// A core node's snapshots (docs/snapshots.md): loads the newest valid one at start, writes one on a
// follower at each position (applying paused, the export spread over event-loop turns), fetches
// the one its followers wrote when this node leads (a leader never pauses to export), serves its
// files to peers (http/snapshot-routes.ts), and reports all of it in /v1/status.
// Invariants: a snapshot is only ever of committed state (followers apply committed entries only;
// a leader fetches a position only once it is committed); a fetched file is installed only if it
// parses (checksum) and its seq, epoch and state hash equal this node's own log entry at that seq;
// every failure is logged, counted in status and retried at the next position — never silent.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { DomainConfig } from '../domain/types.js';
import type { CommandLog } from '../log/command-log.js';
import { agreesWithLog, frames, readSnapshotFile, SnapshotStore, type SnapshotInfo, type SnapshotMeta } from '../log/snapshot-file.js';
import { renameSync } from 'node:fs';
import { fromFrames, loadNewest, take, verifyInBackground } from '../engine/snapshot.js';
import type { HashedMachine } from '../engine/hashed-machine.js';
import type { SnapshotHooks } from '../replication/replicated-machine.js';

export interface NodeSnapshotsOptions {
  dir: string;
  domain: DomainConfig;
  log: CommandLog;
  every: number;
  keep: number;
  budgetMs: number;
  /** Peers' base URLs (for fetching), by name. */
  peers: () => Map<string, string>;
  clusterSecret: string;
  /** The node's current machine (a snapshot is cancelled if it is replaced or moves). */
  currentMachine: () => HashedMachine;
  /** Hands a fetched snapshot's machine to the replicated machine (it is behind its log's base). */
  install: (machine: HashedMachine) => void;
  /** The node's commit index. */
  commit: () => number;
  retention: 'archive' | 'drop' | 'keep';
  /** A restored snapshot's digests do not describe its state: a bug, stop. */
  halt: (why: string) => void;
  closed: () => boolean;
  logger?: Logger;
}

interface Stats {
  taken: number;
  fetched: number;
  failed: number;
  corrupt: number;
  lastError: string | null;
  last: { seq: number; bytes: number; ms: number; longestTurnMs: number; how: 'written' | 'fetched' } | null;
  restoredFrom: { seq: number; bytes: number; ms: number } | null;
  refilled: { seq: number; from: string; bytes: number; ms: number } | null;
  verify: 'none' | 'running' | 'ok' | 'failed';
  /** Entries dropped (or archived) from the log by retention since start. */
  dropped: number;
}

export class NodeSnapshots {
  readonly store: SnapshotStore;
  private readonly stats: Stats = { taken: 0, fetched: 0, failed: 0, corrupt: 0, lastError: null, last: null, restoredFrom: null, refilled: null, verify: 'none', dropped: 0 };
  private fetching: number | null = null;
  /** A refill from a peer's snapshot is under way (from this log base). */
  private refilling: number | null = null;
  /** The newest position this leader committed (what it fetches). */
  private wanted = 0;

  constructor(private readonly o: NodeSnapshotsOptions) {
    this.store = new SnapshotStore(o.dir, o.keep);
  }

  /**
   * The newest valid snapshot that this node's log agrees with (same epoch and state hash at its
   * seq), as a machine to start from; null: start from an empty machine.
   */
  restore(maxSeq = this.o.log.lastSeq()): { machine: HashedMachine; seq: number } | null {
    const t0 = performance.now();
    const loaded = loadNewest(
      this.o.domain,
      this.store,
      (meta) => this.agrees(meta, maxSeq),
      (path, why) => {
        this.stats.corrupt += 1;
        this.fail(`snapshot ${path} is corrupt (${why}); trying an older one`);
      },
    );
    if (loaded === null) return null;
    this.stats.restoredFrom = { seq: loaded.meta.seq, bytes: loaded.bytes, ms: Math.round(performance.now() - t0) };
    this.o.logger?.info({ seq: loaded.meta.seq, bytes: loaded.bytes, ms: this.stats.restoredFrom.ms }, 'state restored from a snapshot');
    return { machine: loaded.machine, seq: loaded.meta.seq };
  }

  /**
   * Checks every restored account's stored digest against its state over many turns; `halt` is
   * called on a mismatch (the snapshot held a state its hash does not describe: a bug).
   */
  verifyRestored(machine: HashedMachine): void {
    const halt = this.o.halt;
    this.stats.verify = 'running';
    void verifyInBackground(() => machine, machine.machine.accountIdIterator(), { cancelled: () => this.o.closed() || this.o.currentMachine() !== machine }).then(
      (wrong) => {
        if (wrong === null) {
          this.stats.verify = this.o.currentMachine() === machine ? 'ok' : 'none';
          return;
        }
        this.stats.verify = 'failed';
        halt(`restored snapshot: account ${wrong}'s stored digest does not match its state`);
      },
      (err: unknown) => this.fail(`snapshot verification failed: ${String(err)}`),
    );
  }

  /** The hooks the replicated machine calls. */
  hooks(): SnapshotHooks {
    return {
      every: this.o.every,
      take: (machine, seq, epoch) => this.write(machine, seq, epoch, this.o.budgetMs),
      leaderPassed: (seq, epoch) => this.onLeaderPassed(seq, epoch),
      restore: (maxSeq) => {
        const r = this.restore(maxSeq);
        if (r !== null) this.verifyRestored(r.machine);
        return r?.machine ?? null;
      },
      needSnapshot: (base) => this.refill(base),
    };
  }

  /**
   * The machine is behind the log's base: fetch the newest snapshot a peer holds at or after it,
   * once this node's log reaches it (so it can be checked against the log), and install it.
   * Retries with backoff until it succeeds; status shows `refilling` meanwhile.
   */
  private refill(base: number): void {
    if (this.refilling !== null) return;
    this.refilling = base;
    this.o.logger?.warn({ base }, 'state behind the log\'s base: refilling from a peer\'s snapshot');
    void (async () => {
      for (let attempt = 0; !this.o.closed(); attempt++) {
        if (this.o.currentMachine().lastSeq >= this.o.log.base().seq) break;
        try {
          if (await this.refillOnce()) break;
        } catch (err) {
          this.fail(`refill: ${err instanceof Error ? err.message : String(err)}`);
        }
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(attempt, 6))).unref());
      }
    })().finally(() => {
      this.refilling = null;
    });
  }

  private async refillOnce(): Promise<boolean> {
    const base = this.o.log.base().seq;
    const limit = Math.min(this.o.log.lastSeq(), this.o.commit());
    // Newest first, among what peers hold at or after the base and this node's log (committed) reaches.
    const offers: Array<{ peer: string; url: string; seq: number }> = [];
    for (const [peer, url] of this.o.peers()) {
      try {
        const res = await fetch(`${url}/v1/cluster/snapshots`, { headers: { authorization: `Bearer ${this.o.clusterSecret}` }, signal: AbortSignal.timeout(5000) });
        if (!res.ok) continue;
        const body = (await res.json()) as { snapshots?: Array<{ seq: number }> };
        for (const f of body.snapshots ?? []) if (Number.isSafeInteger(f.seq) && f.seq >= base && f.seq <= limit) offers.push({ peer, url, seq: f.seq });
      } catch {
        // That peer is down: ask the others.
      }
    }
    offers.sort((a, b) => b.seq - a.seq);
    for (const o of offers) {
      const t0 = performance.now();
      const have = this.store.has(o.seq);
      const info = have ? { path: this.store.path(o.seq) } : await this.fetchInto(`${o.url}/v1/cluster/snapshots/${o.seq}`, o.seq);
      if (info === null) continue;
      // A node being refilled serves nothing yet: reading and rebuilding in one go is fine here.
      const parsed = readSnapshotFile(info.path);
      const { meta, bytes } = parsed;
      if (meta.seq !== o.seq || !this.agrees(meta, limit)) {
        if (!have) renameSync(info.path, `${info.path}.corrupt`);
        this.fail(`snapshot ${o.seq} from ${o.peer} does not match this node's log`);
        continue;
      }
      const machine = fromFrames(this.o.domain, meta, frames(parsed), `snapshot ${o.seq} from ${o.peer}`);
      this.store.prune();
      this.o.install(machine);
      this.stats.fetched += 1;
      this.stats.refilled = { seq: meta.seq, from: o.peer, bytes, ms: Math.round(performance.now() - t0) };
      this.o.logger?.info({ seq: meta.seq, from: o.peer, bytes }, 'state refilled from a peer\'s snapshot');
      this.verifyRestored(machine);
      return true;
    }
    return false;
  }

  /** Retention after a new snapshot: the log keeps what the oldest kept snapshot may need. */
  private retain(): void {
    if (this.o.retention === 'keep') return;
    const oldest = this.store.list().at(-1);
    if (oldest === undefined) return;
    const upTo = Math.min(oldest.seq, this.o.commit(), this.o.currentMachine().lastSeq);
    try {
      const dropped = this.o.log.dropThrough(upTo);
      if (dropped > 0) {
        this.stats.dropped += dropped;
        this.o.logger?.info({ through: this.o.log.base().seq, entries: dropped, mode: this.o.retention }, 'log retention');
      }
    } catch (err) {
      this.fail(`log retention: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  status() {
    const files = this.store.list();
    return { every: this.o.every, files: files.map((f) => ({ seq: f.seq, bytes: f.bytes })), fetching: this.fetching, refilling: this.refilling, logBase: this.o.log.base().seq, ...this.stats };
  }

  /** The log holds the snapshot's seq with the same epoch and state hash (or it is the log's base). */
  private agrees(meta: SnapshotMeta, maxSeq: number): boolean {
    return meta.seq <= maxSeq && meta.seq <= this.o.log.lastSeq() && agreesWithLog(this.o.log, meta);
  }

  private async write(machine: HashedMachine, seq: number, epoch: number, budgetMs: number): Promise<void> {
    if (this.store.has(seq)) return;
    const t0 = performance.now();
    try {
      const r = await take(machine, epoch, this.store, {
        budgetMs,
        cancelled: () => this.o.closed() || this.o.currentMachine() !== machine || machine.lastSeq !== seq,
      });
      if (r === null) return;
      this.stats.taken += 1;
      this.stats.last = { seq, bytes: r.bytes, ms: Math.round(performance.now() - t0), longestTurnMs: Math.round(r.longestTurnMs * 10) / 10, how: 'written' };
      this.o.logger?.info({ seq, bytes: r.bytes, ms: this.stats.last.ms, longestTurnMs: this.stats.last.longestTurnMs, turns: r.turns }, 'snapshot written');
      this.retain();
    } catch (err) {
      this.fail(`snapshot at ${seq} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** A leader committed a position: fetch the followers' snapshot of it (or, alone, write its own). */
  private onLeaderPassed(seq: number, epoch: number): void {
    if (this.store.has(seq)) return;
    const machine = this.o.currentMachine();
    if (this.o.peers().size === 0) {
      // A single node has nobody to write it: export now, in one go, if the machine is exactly at
      // the position (the sequencer calls this right after the batch that ends there committed).
      if (machine.lastSeq === seq) void this.write(machine, seq, epoch, Number.POSITIVE_INFINITY);
      return;
    }
    // Only the newest position matters: followers keep a few files, and an older one is of no use
    // once a newer one exists.
    this.wanted = Math.max(this.wanted, seq);
    if (this.fetching !== null) return;
    this.fetching = seq;
    void this.fetchFromPeers().finally(() => {
      this.fetching = null;
    });
  }

  private async fetchFromPeers(): Promise<void> {
    // Followers write it after they apply it: give them time, with backoff.
    for (let attempt = 0; attempt < 12 && !this.o.closed(); attempt++) {
      const seq = this.wanted;
      this.fetching = seq;
      if (this.store.has(seq)) return;
      const t0 = performance.now();
      for (const [peer, url] of this.o.peers()) {
        try {
          if (this.store.has(seq)) return;
          const info = await this.fetchInto(`${url}/v1/cluster/snapshots/${seq}`, seq);
          if (info === null) continue;
          if (!this.agrees(info, seq)) {
            // Not what our log says: set it aside (never loaded) and say so.
            renameSync(info.path, `${info.path}.corrupt`);
            throw new Error(`snapshot ${seq} from ${peer} does not match this node's log at that seq`);
          }
          this.store.prune();
          this.stats.fetched += 1;
          this.stats.last = { seq, bytes: info.bytes, ms: Math.round(performance.now() - t0), longestTurnMs: 0, how: 'fetched' };
          this.o.logger?.info({ seq, from: peer, bytes: info.bytes }, 'snapshot fetched from a follower');
          this.retain();
          if (this.wanted === seq) return;
          attempt = -1; // a newer position was passed meanwhile: fetch it, with a fresh backoff
          break;
        } catch (err) {
          this.fail(`fetching snapshot ${seq} from ${peer}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (attempt >= 0) await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt)).unref());
    }
    if (!this.store.has(this.wanted)) this.fail(`no follower served snapshot ${this.wanted}: this node restarts from an older one (or the log)`);
  }

  /**
   * GETs a peer's snapshot into this node's store, streamed to disk with its checksum computed as it
   * arrives, resuming with Range after a dropped connection; null if the peer has none.
   */
  async fetchInto(url: string, seq: number): Promise<SnapshotInfo | null> {
    const rx = this.store.receive(seq);
    let total: number | null = null;
    try {
      for (let tries = 0; tries < 5; tries++) {
        const headers: Record<string, string> = { authorization: `Bearer ${this.o.clusterSecret}` };
        if (rx.bytes > 0) headers['range'] = `bytes=${rx.bytes}-`;
        const res = await fetch(url, { headers, signal: AbortSignal.timeout(120_000) });
        if (res.status === 404) {
          rx.abort();
          return null;
        }
        if (res.status !== 200 && res.status !== 206) throw new Error(`GET ${url}: ${res.status}`);
        if (res.status === 200 && rx.bytes > 0) throw new Error(`GET ${url}: the peer ignored the range`);
        total ??= rx.bytes + Number(res.headers.get('content-length') ?? 'NaN');
        try {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            if (this.o.closed()) throw new Error('node closing');
            rx.write(chunk);
          }
        } catch (err) {
          if (this.o.closed()) throw err;
          continue; // dropped mid-way: resume from rx.bytes
        }
        if (rx.bytes === total) return rx.finish();
      }
      throw new Error(`GET ${url}: incomplete after 5 attempts (${rx.bytes} of ${total ?? '?'} bytes)`);
    } catch (err) {
      rx.abort();
      throw err;
    }
  }

  private fail(msg: string): void {
    this.stats.failed += 1;
    this.stats.lastError = msg;
    this.o.logger?.warn({ err: msg }, 'snapshot problem');
  }
}

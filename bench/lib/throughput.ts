// Throughput measurements for `npm run bench`: each of our figures is taken next to a baseline
// measured in the same run on the same machine, and should be read as a ratio to it (absolute
// numbers move with the machine and whatever else it is doing).
//
// What each number means
//   measureCoreWrites   — autocannon POSTs one `deposit` per request (every clientId unique, an
//     operator bearer token on each) to <core>/v1/commands at a fixed number of connections, one
//     request in flight per connection.
//     `commands` = commands acknowledged with 2xx; each ack means durable (the core answers only
//     after the batch's fsync, and in sync mode after the standby's). The load stops being issued
//     at durationMs and every request still in flight is waited for (drain), so every command the
//     core received has been answered: `commands` + `unacked` = commands the core could have
//     logged. `seconds` = first request sent → last answer received; `commandsPerSec` =
//     commands / seconds. `ackP50Ms`/`ackP99Ms` = per-request time from write to full answer, 2xx
//     only, recorded in microseconds (autocannon's own histogram has 1 ms resolution).
//     `avgBatch` = commands per group-commit batch: every write answer carries
//     x-statemirror-seq, the committed seq when it was built — the last seq of the batch that
//     committed it (answers are built in the same tick as their batch commits) — so distinct values
//     count the batches that carried our commands. `payloads` = the acknowledged request bodies.
//   measureRawSqliteAppend — the ceiling for durable appends on this disk: the SAME payloads
//     (the command without the clientId, as the core stores it; a result shaped like the core's
//     deposit result; a 64-hex state hash on each batch's last entry; epoch and timestamp),
//     packed by the log's own encodeBatch and inserted with better-sqlite3 as one row per batch
//     of `batchSize` into a fresh file whose schema is created by SqliteCommandLog itself, with
//     the same pragmas (WAL, synchronous=FULL, checked) (pass the core's avgBatch so both pay the
//     same fsyncs per command). Rows are encoded before the clock starts: it times SQLite + fsync only, no HTTP, no
//     validation, no state machine, no publishing — everything the core does on top is what the
//     ratio core/ceiling shows.
//   measureReads        — autocannon GETs the given paths round-robin; same drain and timing as
//     writes. `reqPerSec` = 2xx answers / seconds; p50/p99 of 2xx answers, in microsecond
//     resolution.
//   startBareHono       — the read baseline: a hono app with only GET /v1/accounts/:id answering
//     c.json(object) from a Map, bound by the project's own listen() (same @hono/node-server
//     adaptor and server settings as the core and read nodes). No consistency checks, no headers,
//     no token check (it is sent the same Authorization header but ignores it), no Yjs: what the
//     read node adds is what the ratio read-node/bare shows.
// Held equal between ours and the baseline: the same payloads (writes) or the same JSON objects
// (reads), the same table schema and pragmas, the same machine, the same run, the same load
// generator settings. Not equal, on purpose: the write ceiling has no HTTP at all. Note that
// autocannon runs in the calling process; servers started in that process (startBareHono, an
// in-process read node or core) share its event loop with the load generator, so compare like with
// like (both in-process, or both in child processes).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { build, type Histogram } from 'hdr-histogram-js';
import { Hono } from 'hono';
import { listen } from '../../src/http/server.js';
import { encodeBatch, SqliteCommandLog } from '../../src/log/sqlite-log.js';
import type { LogEntry } from '../../src/log/command-log.js';
import type { Command, Result, Seq } from '../../src/domain/types.js';

export interface WriteResult {
  commands: number;
  seconds: number;
  commandsPerSec: number;
  ackP50Ms: number;
  ackP99Ms: number;
  errors: number;
  non2xx: number;
  avgBatch?: number;
  /** Requests sent whose answer never came (timeouts, dropped connections): outcome unknown. 0 after a clean drain. */
  unacked: number;
}

export interface ReadResult {
  requests: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

/** Longest we wait after durationMs for in-flight answers before autocannon drops the sockets. */
const DRAIN_MS_MAX = 30_000;
/** autocannon notices "all clients done" only on its sample tick; keep it short so runs end promptly. */
const SAMPLE_INTERVAL_MS = 50;
/** Per-request timeout (s): a write that takes longer is counted as an error and unacked. */
const REQUEST_TIMEOUT_S = 10;
const DEPOSIT_AMOUNT = 100;

/** The fields of autocannon's per-connection client we use to stop issuing (not in its typings). */
interface ClientInternals {
  reqsMade: number;
  responseMax: number | undefined;
}

interface Run {
  result: autocannon.Result;
  /** 2xx answers. */
  ok: number;
  seconds: number;
  /** 2xx latencies in microseconds. */
  latencyUs: Histogram;
}

function newHistogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

/**
 * Runs autocannon for durationMs, then stops issuing requests and waits for every one in flight
 * (bounded by DRAIN_MS_MAX), so no request is left half done when the run ends.
 */
function drive(opts: { url: string; connections: number; durationMs: number; requests: autocannon.Request[] }): Promise<Run> {
  const clients: ClientInternals[] = [];
  const latencyUs = newHistogram();
  let ok = 0;
  let lastAnswerAt = 0;
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    let stopIssuing: NodeJS.Timeout | undefined;
    const instance = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        pipelining: 1,
        duration: (opts.durationMs + DRAIN_MS_MAX) / 1000,
        sampleInt: SAMPLE_INTERVAL_MS,
        timeout: REQUEST_TIMEOUT_S,
        requests: opts.requests,
        setupClient: (client) => {
          clients.push(client as unknown as ClientInternals);
        },
      },
      (err, result) => {
        clearTimeout(stopIssuing);
        if (err) return reject(err instanceof Error ? err : new Error(String(err)));
        resolve({ result, ok, seconds: (Math.max(lastAnswerAt, startedAt + 1) - startedAt) / 1000, latencyUs });
      },
    );
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      lastAnswerAt = performance.now();
      if (statusCode >= 200 && statusCode < 300) {
        ok += 1;
        latencyUs.recordValue(Math.max(1, Math.round(responseTimeMs * 1000)));
      }
    });
    // A client whose responseMax is reached closes instead of sending its next request: each one
    // finishes the request it has in flight and stops; autocannon ends when all have stopped.
    stopIssuing = setTimeout(() => {
      for (const c of clients) c.responseMax = Math.max(1, c.reqsMade);
    }, opts.durationMs);
  });
}

function percentileMs(h: Histogram, p: number): number {
  return h.totalCount === 0 ? 0 : h.getValueAtPercentile(p) / 1000;
}

function header(headers: autocannon.Request['headers'], name: string): string | undefined {
  if (!headers) return undefined;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v === undefined ? undefined : String(v);
  }
  return undefined;
}

/**
 * POSTs single deposit commands (unique clientIds) to <coreUrl>/v1/commands for durationMs at
 * `connections` concurrency, then drains. Returns the acknowledged request bodies as `payloads`
 * (in ack order) so the raw baseline can append the same ones.
 */
export async function measureCoreWrites(opts: {
  coreUrl: string;
  durationMs: number;
  connections: number;
  accounts: number;
  /** clientId prefix; default unique per call, so runs against the same core never collide. */
  clientIdPrefix?: string;
  /** Bearer token allowed to deposit (an operator token). */
  token: string;
}): Promise<WriteResult & { payloads: string[] }> {
  const prefix = opts.clientIdPrefix ?? `bw-${process.pid.toString(36)}-${Date.now().toString(36)}`;
  const accounts = Math.max(1, opts.accounts);
  /** Bodies sent and not yet answered, by clientId. */
  const sent = new Map<string, string>();
  const payloads: string[] = [];
  const batchEnds = new Set<string>();
  const stray: string[] = [];
  let next = 0;
  const request: autocannon.Request = {
    method: 'POST',
    path: '/v1/commands',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${opts.token}` },
    setupRequest: (req) => {
      const n = next++;
      const clientId = `${prefix}-${n}`;
      const body = JSON.stringify({ clientId, type: 'deposit', account: `acct-${n % accounts}`, amount: DEPOSIT_AMOUNT });
      sent.set(clientId, body);
      return { ...req, body };
    },
    onResponse: (status, body, _context, headers) => {
      if (status < 200 || status >= 300) return;
      const clientId = (JSON.parse(body) as { clientId?: unknown }).clientId;
      const sentBody = typeof clientId === 'string' ? sent.get(clientId) : undefined;
      // Thrown here it would land in autocannon's socket parser; reported after the run instead.
      if (sentBody === undefined) return void stray.push(String(clientId));
      sent.delete(clientId as string);
      payloads.push(sentBody);
      const seq = header(headers, 'x-statemirror-seq');
      if (seq !== undefined) batchEnds.add(seq);
    },
  };
  const run = await drive({ url: opts.coreUrl, connections: opts.connections, durationMs: opts.durationMs, requests: [request] });
  if (stray.length > 0) throw new Error(`${stray.length} answers for clientIds this run did not send or already had answered, e.g. ${stray[0]}`);
  const commands = payloads.length;
  return {
    commands,
    seconds: run.seconds,
    commandsPerSec: commands / run.seconds,
    ackP50Ms: percentileMs(run.latencyUs, 50),
    ackP99Ms: percentileMs(run.latencyUs, 99),
    errors: run.result.errors,
    non2xx: run.result.non2xx,
    ...(batchEnds.size > 0 ? { avgBatch: commands / batchEnds.size } : {}),
    unacked: sent.size,
    payloads,
  };
}

/**
 * The ceiling: appends the same payloads to a fresh SQLite log (schema made by SqliteCommandLog,
 * same pragmas) in transactions of batchSize rows (default 64; pass the core's avgBatch).
 * Writes `<dir>/raw-append.db`, which must not exist yet.
 */
export function measureRawSqliteAppend(opts: { payloads: string[]; batchSize?: number; dir: string }): {
  commands: number;
  seconds: number;
  commandsPerSec: number;
  batches: number;
  path: string;
} {
  const batchSize = Math.max(1, Math.round(opts.batchSize ?? 64));
  const path = join(opts.dir, 'raw-append.db');
  if (existsSync(path)) throw new Error(`${path} exists: the baseline needs a fresh file`);
  // Let the log create its own schema, so the baseline's table can't drift from ours.
  new SqliteCommandLog(path).close();

  // Batches as the core would store them (one row of packed entries per batch), encoded before
  // the clock starts: the baseline is the durable append of the same bytes, nothing else.
  const tsMs = Date.now();
  const collateral = new Map<string, number>();
  const entries: LogEntry[] = opts.payloads.map((p, i) => {
    const { clientId, ...command } = JSON.parse(p) as { clientId: string; account: string; amount: number };
    const after = (collateral.get(command.account) ?? 0) + command.amount;
    collateral.set(command.account, after);
    return {
      epoch: 1,
      seq: (i + 1) as Seq,
      clientId,
      tsMs,
      command: command as unknown as Command,
      result: { status: 'accepted', collateral: after } as Result,
      // Like the core: the state hash on the last entry of a batch only.
      stateHash: (i + 1) % batchSize === 0 || i === opts.payloads.length - 1 ? createHash('sha256').update(`raw-append:${i + 1}`).digest('hex') : '',
    };
  });
  const rows: { first: number; last: number; bytes: Buffer }[] = [];
  for (let from = 0; from < entries.length; from += batchSize) {
    const batch = entries.slice(from, from + batchSize);
    rows.push({ first: batch[0]!.seq, last: batch.at(-1)!.seq, bytes: encodeBatch(batch) });
  }

  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    const journal = db.pragma('journal_mode', { simple: true });
    const sync = db.pragma('synchronous', { simple: true });
    if (journal !== 'wal' || sync !== 2) throw new Error(`baseline pragmas are journal_mode=${String(journal)} synchronous=${String(sync)}, want wal/2 (FULL)`);
    const insert = db.prepare<[number, number, number, number, Buffer]>('INSERT INTO log_batch (first_seq, last_seq, last_epoch, n, entries) VALUES (?, ?, ?, ?, ?)');
    let batches = 0;
    const t0 = performance.now();
    for (const r of rows) {
      insert.run(r.first, r.last, 1, r.last - r.first + 1, r.bytes);
      batches += 1;
    }
    const seconds = (performance.now() - t0) / 1000;
    return { commands: entries.length, seconds, commandsPerSec: seconds > 0 ? entries.length / seconds : 0, batches, path };
  } finally {
    db.close();
  }
}

/**
 * GETs `paths` (round-robin) on baseUrl for durationMs at `connections`, then drains. `token` is
 * sent as a bearer token (account routes need one; send it to a baseline too, for equal requests).
 */
export async function measureReads(opts: { baseUrl: string; paths: string[]; durationMs: number; connections: number; token?: string }): Promise<ReadResult> {
  if (opts.paths.length === 0) throw new Error('measureReads: no paths');
  const run = await drive({
    url: opts.baseUrl,
    connections: opts.connections,
    durationMs: opts.durationMs,
    requests: opts.paths.map((path) => ({ method: 'GET', path, ...(opts.token ? { headers: { authorization: `Bearer ${opts.token}` } } : {}) })),
  });
  return {
    requests: run.ok,
    reqPerSec: run.ok / run.seconds,
    p50Ms: percentileMs(run.latencyUs, 50),
    p99Ms: percentileMs(run.latencyUs, 99),
    non2xx: run.result.non2xx,
    errors: run.result.errors,
  };
}

/** The read baseline: GET /v1/accounts/:id answered from a Map with c.json(object). */
export async function startBareHono(objects: Map<string, unknown>, headers: Record<string, string> = {}): Promise<{ url: string; close(): Promise<void> }> {
  const app = new Hono();
  app.get('/v1/accounts/:id', (c) => {
    const obj = objects.get(c.req.param('id'));
    for (const [k, v] of Object.entries(headers)) c.header(k, v);
    return obj === undefined ? c.json({ error: { code: 'unknown_account', message: 'no such account' } }, 404) : c.json(obj);
  });
  const server = await listen(app, '127.0.0.1', 0);
  return { url: server.url, close: () => server.close() };
}

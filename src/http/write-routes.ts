// The core's HTTP API (hono), write routes and wiring: POST /v1/commands (one command or {commands:[...]}), the shared read
// routes answered from the authoritative state, GET /v1/status, and GET /v1/sync/info (which
// generation and docs a read node should sync). Invariant: nothing reaches the sequencer unless it
// parsed as JSON, passed the strict schema, fits the size and count limits, and every command of
// the request is authorized for the bearer token (auth/rules.ts decides; this module only asks).
import type { SnapshotStore } from '../log/snapshot-file.js';
import { mountSnapshotRoutes } from './snapshot-routes.js';
import { Hono, type Context } from 'hono';
import type { Logger } from 'pino';
import type { Core } from '../publish/core.js';
import { HaltedError, LeadershipLostError, OverloadedError, type Outcome, type Submission } from '../engine/sequencer.js';
import type { AccountView, Command, DomainConfig, TradeView } from '../domain/types.js';
import { ACCOUNTS, META_DOC, TRADES, accountShardDoc, docNames, marketDoc, shardOf, type Layout } from '../publish/layout.js';
import { accountOf, bookOf } from '../replica/read-model.js';
import { authenticate, tokenFrom } from '../auth/tokens.js';
import { authorizeCommand } from '../auth/rules.js';
import { REJECT_HTTP, errorBody, errorCounter, markError, requestError } from './errors.js';
import { headerOf, readBodyLimited } from './node-request.js';
import { mountReadRoutes, type ReadLimits, type ReadModel, type ReadScope } from './read-routes.js';
import { commandSchemas, describeIssues, type CommandInput } from './schemas.js';

export interface CoreAppOptions {
  /** The current primary engine, or null while this node is not primary. */
  core: Core | (() => Core | null);
  domain: DomainConfig;
  layout: Layout;
  region: string;
  /** Role, epoch, replication state: merged into /v1/status and /v1/sync/info. */
  describe?: () => { role: string; epoch: number; seq: number; stateHash: string; [k: string]: unknown };
  /** A write not committed within this answers 503 commit_timeout. */
  commitTimeoutMs?: number;
  maxBodyBytes: number;
  maxCommandsPerRequest: number;
  readLimits: ReadLimits;
  /** Token verification: user tokens (operator/account) with jwtSecret, cluster tokens with clusterSecret. */
  secrets: { jwtSecret: string; clusterSecret: string };
  logger?: Logger;
  /** This node's snapshot files, served to its peers (GET /v1/cluster/snapshots…). */
  snapshots?: () => SnapshotStore | null;
  /** Called with the code of every request answered with an error (metrics: rejects by code). */
  countError?: (code: string) => void;
}

export class CommitTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`not committed within ${timeoutMs} ms (standby unreachable?); the outcome is unknown: retry with the same clientId`);
  }
}

export function toSubmission(input: CommandInput): Submission {
  const { clientId, ...command } = input;
  return { clientId, command: command as Command };
}

export function outcomeBody(o: Outcome) {
  if (o.kind === 'conflict') {
    return errorBody('idempotency_conflict', `clientId ${o.clientId} was already used for a different command`, { clientId: o.clientId, seq: o.seq });
  }
  return { clientId: o.clientId, seq: o.seq, tsMs: o.tsMs, duplicate: o.kind === 'duplicate', result: o.result };
}

/** Reads answered from the primary's authoritative state (routes refuse them on a non-primary). */
export function coreReadModel(
  getCore: () => Core | null,
  region: string,
  layout: Layout,
  describe?: () => Record<string, unknown>,
): ReadModel {
  const markets = new Set(layout.markets);
  const core = () => {
    const c = getCore();
    if (!c) throw new Error('not primary'); // unreachable: the route middleware answers 503 first
    return c;
  };
  return {
    region,
    generation: () => (getCore()?.publishing ? getCore()!.publisher.generation : null),
    seqFor: () => getCore()?.seq ?? 0,
    waitFor: (_scope: ReadScope, minSeq, timeoutMs) =>
      new Promise((resolve) => {
        const c = core();
        if (c.seq >= minSeq) return resolve(true);
        const onCommit = () => {
          if (c.seq >= minSeq) done(true);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        const done = (ok: boolean) => {
          clearTimeout(timer);
          c.off('committed', onCommit);
          resolve(ok);
        };
        c.on('committed', onCommit);
      }),
    // From the published docs, not the live state machine: the machine is ahead of the committed
    // state while a batch waits for a majority's ack, and a read must never show a write that a
    // failover could still lose. The docs hold exactly the committed state.
    account: (id) => accountOf({ doc: (name: string) => core().publisher.doc(name), meta: core().publisher.doc(META_DOC) }, layout, id),
    hasMarket: (symbol) => markets.has(symbol),
    book: (symbol) => bookOf({ doc: (name: string) => core().publisher.doc(name), meta: core().publisher.doc(META_DOC) }, symbol),
    // The state machine keeps no trade history; the published market doc holds the last ones.
    trades: (symbol, limit) => {
      const arr = core().publisher.doc(marketDoc(symbol)).getArray<TradeView>(TRADES);
      return limit === 0 ? [] : arr.slice(Math.max(0, arr.length - limit));
    },
    status: () => {
      const c = core();
      return {
        role: 'primary',
        epoch: c.epoch,
        stateHash: c.stateHash,
        queueDepth: c.sequencer.queueDepth,
        halted: c.sequencer.isHalted,
        accounts: c.machine.accountCount(),
        uptimeMs: Date.now() - c.startedAtMs,
        ...describe?.(),
      };
    },
  };
}

/** Where the leader is, when this node knows (a client redirects there). */
function leaderHint(d: { [k: string]: unknown }): { leader?: string; leaderUrl?: string } {
  return {
    ...(typeof d.leader === 'string' ? { leader: d.leader } : {}),
    ...(typeof d.leaderUrl === 'string' ? { leaderUrl: d.leaderUrl } : {}),
  };
}

export function createCoreApp(opts: CoreAppOptions): Hono {
  const getCore = typeof opts.core === 'function' ? opts.core : ((c: Core) => () => c)(opts.core);
  const app = new Hono();
  if (opts.countError) app.use('*', errorCounter(opts.countError));
  const { command: commandSchema, batch: batchSchema } = commandSchemas(opts.domain, opts.maxCommandsPerRequest);
  const describe = () =>
    opts.describe?.() ?? (() => {
      const c = getCore();
      return { role: c ? 'primary' : 'none', epoch: c?.epoch ?? 0, seq: c?.seq ?? 0, stateHash: c?.stateHash ?? '' };
    })();
  const notPrimary = (c: Context) => {
    const d = describe();
    c.header('retry-after', '1');
    return requestError(c, 'not_primary', `this core node is ${d.role}; send writes and reads to the primary`, { role: d.role, epoch: d.epoch, ...leaderHint(d) });
  };

  // Checks, in order: body size (413) → content-type (415) → JSON and strict schema (400) → token
  // (401 unauthenticated) and then every command of the batch against it (403 forbidden, with the
  // index and reason of the first refused one; the whole request is refused) → not_primary →
  // sequencer. Auth comes after parsing because the decision is per command; a 400 reveals nothing
  // about any account. Nothing reaches the log unless every command is allowed.
  app.post(
    '/v1/commands',
    async (c) => {
      const text = await readBodyLimited(c, opts.maxBodyBytes);
      if (text === null) return requestError(c, 'body_too_large', `body over ${opts.maxBodyBytes} bytes`);
      const type = headerOf(c, 'content-type') ?? '';
      if (!/^application\/json\b/i.test(type)) return requestError(c, 'unsupported_media_type', 'send Content-Type: application/json');
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        return requestError(c, 'malformed_json', 'body is not valid JSON');
      }
      const isBatch = typeof raw === 'object' && raw !== null && !Array.isArray(raw) && 'commands' in raw;
      if (isBatch && Array.isArray((raw as { commands: unknown }).commands) && (raw as { commands: unknown[] }).commands.length > opts.maxCommandsPerRequest) {
        return requestError(c, 'too_many_commands', `at most ${opts.maxCommandsPerRequest} commands per request`);
      }
      const parsed = isBatch ? batchSchema.safeParse(raw) : commandSchema.safeParse(raw);
      if (!parsed.success) {
        const { code, issues } = describeIssues(parsed.error);
        return requestError(c, code, 'command rejected by validation', { issues });
      }
      const inputs: CommandInput[] = isBatch ? (parsed.data as { commands: CommandInput[] }).commands : [parsed.data as CommandInput];
      const ids = new Set<string>();
      for (const i of inputs) {
        if (ids.has(i.clientId)) return requestError(c, 'duplicate_client_id_in_batch', `clientId ${i.clientId} appears twice`);
        ids.add(i.clientId);
      }
      const claims = await authenticate(tokenFrom({ authorization: headerOf(c, 'authorization') }, c.req.url), opts.secrets);
      for (const [index, input] of inputs.entries()) {
        const decision = authorizeCommand(claims, toSubmission(input).command);
        if (!decision.ok) {
          return requestError(c, decision.code, decision.reason, { index, clientId: input.clientId });
        }
      }
      const core = getCore();
      if (!core) return notPrimary(c);
      let outcomes: Outcome[];
      let timer: NodeJS.Timeout | undefined;
      try {
        const timeoutMs = opts.commitTimeoutMs ?? 30_000;
        outcomes = await Promise.race([
          core.sequencer.submit(inputs.map(toSubmission)),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new CommitTimeoutError(timeoutMs)), timeoutMs);
          }),
        ]);
      } catch (err) {
        if (err instanceof CommitTimeoutError) {
          c.header('retry-after', '1');
          return requestError(c, 'commit_timeout', err.message);
        }
        if (err instanceof OverloadedError) {
          c.header('retry-after', '1');
          return requestError(c, 'overloaded', err.message, { queued: err.queued, maxQueue: err.maxQueue });
        }
        if (err instanceof LeadershipLostError) {
          // Stopped leading before the commit: the write may still commit under the next leader.
          c.header('retry-after', '1');
          const d = describe();
          return requestError(c, 'not_primary', err.message, { role: d.role, epoch: d.epoch, ...leaderHint(d) });
        }
        if (err instanceof HaltedError) return requestError(c, 'halted', err.message);
        throw err;
      } finally {
        clearTimeout(timer);
      }
      c.header('x-statemirror-seq', String(core.seq));
      if (isBatch) return c.json({ results: outcomes.map(outcomeBody) });
      const o = outcomes[0]!;
      if (o.kind === 'conflict') {
        markError(c, 'idempotency_conflict');
        return c.json(outcomeBody(o), 409);
      }
      return c.json(outcomeBody(o), o.result.status === 'rejected' ? REJECT_HTTP[o.result.code] : 200);
    },
  );

  if (opts.snapshots) mountSnapshotRoutes(app, opts.snapshots, opts.secrets.clusterSecret);

  app.get('/v1/sync/info', (c) => {
    const core = getCore();
    const d = describe();
    const pub = core?.publishing ? core.publisher : null;
    return c.json({ generation: pub?.generation ?? null, seq: pub?.seq ?? 0, epoch: d.epoch, docs: docNames(opts.layout), role: d.role });
  });

  // A standby (or a node still electing) answers status only: reads come from the primary.
  app.get('/v1/status', async (c, next) => {
    if (getCore()) return next();
    c.header('x-statemirror-region', opts.region);
    return c.json({ region: opts.region, generation: null, ...describe() });
  });
  app.use('/v1/accounts/*', async (c, next) => (getCore() ? next() : notPrimary(c)));
  app.use('/v1/markets/*', async (c, next) => (getCore() ? next() : notPrimary(c)));

  // After a log failure the state machine is ahead of the log: never serve state a client was told failed.
  const refuseWhenHalted = async (c: Context, next: () => Promise<void>) => {
    if (getCore()?.sequencer.isHalted) return requestError(c, 'halted', 'core halted; it takes no more writes (restart it, or it rejoins as standby)');
    await next();
  };
  app.use('/v1/accounts/*', refuseWhenHalted);
  app.use('/v1/markets/*', refuseWhenHalted);
  // A new leader with a large state writes its first generation over many turns (it takes writes
  // meanwhile); reads are served from that generation, so they wait for it.
  const refuseUntilPublishing = async (c: Context, next: () => Promise<void>) => {
    const core = getCore();
    if (core && !core.publishing) {
      c.header('retry-after', '1');
      return requestError(c, 'seq_not_reached', 'this leader is still writing its first generation of published state: retry in a moment, or read from a region');
    }
    await next();
  };
  app.use('/v1/accounts/*', refuseUntilPublishing);
  app.use('/v1/markets/*', refuseUntilPublishing);
  mountReadRoutes(app, coreReadModel(getCore, opts.region, opts.layout, describe), opts.readLimits, opts.secrets);
  app.notFound((c) => requestError(c, 'not_found', `no route ${c.req.method} ${c.req.path}`));
  app.onError((err, c: Context) => {
    // The body broke off (bad chunk framing, which the parser has already answered, or the client
    // went away): the client's doing, not a node fault, so neither logged as one nor counted internal.
    if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') {
      markError(c, 'request_aborted');
      return c.json(errorBody('request_aborted', 'the request broke off before its body ended'), 400);
    }
    opts.logger?.error({ err }, 'unhandled error');
    markError(c, 'internal');
    return c.json(errorBody('internal', 'internal error'), 500);
  });
  return app;
}

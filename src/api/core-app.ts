// The core's HTTP API (hono): POST /v1/commands (one command or {commands:[...]}), the shared read
// routes answered from the authoritative state, GET /v1/status, and GET /v1/sync/info (which
// generation and docs a read node should sync). Invariant: nothing reaches the sequencer unless it
// parsed as JSON, passed the strict schema and fits the size and count limits.
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from 'pino';
import type { Core } from '../core/core.js';
import { HaltedError, OverloadedError, type Outcome, type Submission } from '../core/sequencer.js';
import type { Command } from '../domain/types.js';
import { docNames } from '../publish/layout.js';
import { REJECT_HTTP, errorBody, requestError } from './errors.js';
import { mountReadRoutes, type ReadLimits, type ReadModel, type ReadScope } from './read-routes.js';
import { commandSchemas, describeIssues, type CommandInput } from './schemas.js';

export interface CoreAppOptions {
  core: Core;
  region: string;
  role: 'primary';
  maxBodyBytes: number;
  maxCommandsPerRequest: number;
  readLimits: ReadLimits;
  logger?: Logger;
}

function toSubmission(input: CommandInput): Submission {
  const { clientId, ...command } = input;
  return { clientId, command: command as Command };
}

function outcomeBody(o: Outcome) {
  if (o.kind === 'conflict') {
    return errorBody('idempotency_conflict', `clientId ${o.clientId} was already used for a different command`, { clientId: o.clientId, seq: o.seq });
  }
  return { clientId: o.clientId, seq: o.seq, tsMs: o.tsMs, duplicate: o.kind === 'duplicate', result: o.result };
}

export function coreReadModel(core: Core, region: string): ReadModel {
  const markets = new Set(core.machine.marketSymbols());
  return {
    region,
    generation: () => core.publisher.generation,
    seqFor: () => core.seq,
    waitFor: (_scope: ReadScope, minSeq, timeoutMs) =>
      new Promise((resolve) => {
        if (core.seq >= minSeq) return resolve(true);
        const onCommit = () => {
          if (core.seq >= minSeq) done(true);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        const done = (ok: boolean) => {
          clearTimeout(timer);
          core.off('committed', onCommit);
          resolve(ok);
        };
        core.on('committed', onCommit);
      }),
    account: (id) => core.machine.account(id),
    hasMarket: (symbol) => markets.has(symbol),
    book: (symbol) => core.machine.book(symbol, core.opts.bookDepth),
    trades: () => [], // trades live in the published market docs; the core keeps no history in memory
    status: () => ({
      role: 'primary',
      stateHash: core.stateHash,
      queueDepth: core.sequencer.queueDepth,
      halted: core.sequencer.isHalted,
      accounts: core.machine.accountCount(),
      uptimeMs: Date.now() - core.startedAtMs,
    }),
  };
}

export function createCoreApp(opts: CoreAppOptions): Hono {
  const { core } = opts;
  const app = new Hono();
  const { command: commandSchema, batch: batchSchema } = commandSchemas(core.opts.domain, opts.maxCommandsPerRequest);

  app.post(
    '/v1/commands',
    bodyLimit({
      maxSize: opts.maxBodyBytes,
      onError: (c) => requestError(c, 'body_too_large', `body over ${opts.maxBodyBytes} bytes`),
    }),
    async (c) => {
      const type = c.req.header('content-type') ?? '';
      if (!/^application\/json\b/i.test(type)) return requestError(c, 'unsupported_media_type', 'send Content-Type: application/json');
      let raw: unknown;
      try {
        raw = JSON.parse(await c.req.text());
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
      let outcomes: Outcome[];
      try {
        outcomes = await core.sequencer.submit(inputs.map(toSubmission));
      } catch (err) {
        if (err instanceof OverloadedError) {
          c.header('retry-after', '1');
          return requestError(c, 'overloaded', err.message, { queued: err.queued, maxQueue: err.maxQueue });
        }
        if (err instanceof HaltedError) return requestError(c, 'halted', err.message);
        throw err;
      }
      c.header('x-statemirror-seq', String(core.seq));
      if (isBatch) return c.json({ results: outcomes.map(outcomeBody) });
      const o = outcomes[0]!;
      if (o.kind === 'conflict') return c.json(outcomeBody(o), 409);
      return c.json(outcomeBody(o), o.result.status === 'rejected' ? REJECT_HTTP[o.result.code] : 200);
    },
  );

  app.get('/v1/sync/info', (c) =>
    c.json({ generation: core.publisher.generation, seq: core.publisher.seq, docs: docNames(core.opts.layout), role: opts.role }),
  );

  // After a log failure the state machine is ahead of the log: never serve state a client was told failed.
  const refuseWhenHalted = async (c: Context, next: () => Promise<void>) => {
    if (core.sequencer.isHalted) return requestError(c, 'halted', 'core halted after a log failure; restart it to replay the log');
    await next();
  };
  app.use('/v1/accounts/*', refuseWhenHalted);
  app.use('/v1/markets/*', refuseWhenHalted);
  mountReadRoutes(app, coreReadModel(core, opts.region), opts.readLimits);
  app.notFound((c) => requestError(c, 'not_found', `no route ${c.req.method} ${c.req.path}`));
  app.onError((err, c: Context) => {
    opts.logger?.error({ err }, 'unhandled error');
    return c.json(errorBody('internal', 'internal error'), 500);
  });
  return app;
}

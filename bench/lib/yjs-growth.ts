// Yjs state growth under sustained publishing: drives a real Core (sequencer → state machine →
// Publisher) with `updates` seeded commands and, at evenly spaced checkpoints, sums over every doc
// of the Publisher: Y.encodeStateAsUpdate (v1) and ...V2 sizes, the plain JSON size of the same
// data (JSON.stringify(doc.toJSON()), i.e. account views + books + kept trades + stamps/meta), and
// the sizes of fresh docs rebuilt from those plain values (what compacting into a new generation
// would produce). Bounded growth means v1Bytes/jsonBytes stays roughly flat across checkpoints.
// Invariants: commands go only through core.sequencer.submit (the single writer); the command
// stream depends only on the seed (mulberry32), so two runs publish the same docs; sizes are
// measured between batches, never while a batch is in flight.
import * as Y from 'yjs';
import { Core, type CoreOptions } from '../../src/publish/core.js';
import type { Submission } from '../../src/engine/sequencer.js';
import { EMBEDDED_DEFAULTS, parseConfig } from '../../src/config/schema.js';
import { assert } from '../../src/domain/assert.js';
import type { Amount, Command, PriceTicks, QtyLots } from '../../src/domain/types.js';
import { EMPTY_BASE, EMPTY_HARD_STATE, type CommandLog, type HardState, type LogBase, type LogEntry } from '../../src/log/command-log.js';
import { mulberry32 } from '../../sim/prng.js';

export interface GrowthRow {
  /** Commands submitted after the accounts were created (0 = right after seeding). */
  updates: number;
  v1Bytes: number;
  v2Bytes: number;
  jsonBytes: number;
  rebuiltV1Bytes: number;
  rebuiltV2Bytes: number;
  docs: number;
  /** Compactions into a new generation so far (the sizes are the generation served now). */
  generations?: number;
}

export interface GrowthOptions {
  updates: number;
  accounts: number;
  checkpoints: number;
  onProgress?: (done: number) => void;
  /** PRNG seed for the command stream (default DEFAULT_SEED). */
  seed?: number;
  /** Commands per sequencer.submit call (default 500). */
  batch?: number;
  /** The Core's compaction policy (default: the node's, COMPACTION_DEFAULT). */
  compaction?: CoreOptions['compaction'];
}

const DEFAULT_SEED = 0x6e0717;
const BATCH_DEFAULT = 500;
const INITIAL_DEPOSIT = 1_000_000_000;

/**
 * A CommandLog that keeps only what the sequencer consults while running: lastSeq, epochs, the set
 * of used client ids (uniqueness + "not a duplicate" lookups) and the last entry. MemoryCommandLog
 * structuredClones and retains every entry, which for 1M commands costs several seconds and
 * hundreds of MB that have nothing to do with what this bench measures. It satisfies the
 * CommandLog contract for an append-only run that never restarts: findByClientId answers only
 * "not found" (this bench never retries a client id; a reused id is asserted on append), and
 * entriesFrom/entryAt can only return the last entry (asserted: nothing older is retained).
 */
export class CountingCommandLog implements CommandLog {
  private seq = 0;
  private epochLast = 0;
  private hard: HardState = EMPTY_HARD_STATE;
  private last: LogEntry | undefined;
  private readonly clientIds = new Set<string>();

  lastSeq(): number {
    return this.seq;
  }

  hardState(): HardState {
    return this.hard;
  }

  setHardState(h: HardState): void {
    this.hard = { ...h };
  }

  epochAt(seq: number): number | undefined {
    if (seq === 0) return 0;
    if (seq === this.seq) return this.epochLast;
    assert(seq > this.seq, `CountingCommandLog retains only the last entry (asked the epoch at ${seq})`);
    return undefined;
  }

  lastSeqOfEpochAtMost(epoch: number): number {
    assert(epoch >= this.epochLast, 'CountingCommandLog retains only the last entry');
    return this.seq;
  }

  entries(from: number, to: number): LogEntry[] {
    assert(from === this.seq && to === this.seq && this.last !== undefined, `CountingCommandLog retains only the last entry (asked ${from}..${to})`);
    return [this.last];
  }

  append(entries: readonly LogEntry[]): void {
    entries.forEach((e, i) => {
      assert(e.seq === this.seq + 1 + i, `log append out of order: got seq ${e.seq}`);
      assert(!this.clientIds.has(e.clientId), `duplicate client id ${e.clientId}`);
    });
    for (const e of entries) {
      assert(e.epoch >= this.epochLast, `epoch ${e.epoch} after ${this.epochLast}`);
      this.clientIds.add(e.clientId);
      this.epochLast = e.epoch;
      this.seq = e.seq;
      this.last = e;
    }
  }

  findByClientId(clientId: string): LogEntry | undefined {
    assert(!this.clientIds.has(clientId), `CountingCommandLog does not retain entries (client id ${clientId} reused)`);
    return undefined;
  }

  *entriesFrom(fromSeq: number): IterableIterator<LogEntry> {
    if (fromSeq > this.seq) return;
    assert(fromSeq === this.seq && this.last !== undefined, `CountingCommandLog retains only the last entry (asked from ${fromSeq})`);
    yield this.last;
  }

  entryAt(seq: number): LogEntry | undefined {
    if (seq === this.seq) return this.last;
    assert(seq > this.seq || seq < 1, `CountingCommandLog retains only the last entry (asked ${seq})`);
    return undefined;
  }

  truncateAfter(seq: number): number {
    assert(seq === this.seq, 'CountingCommandLog cannot truncate');
    return 0;
  }

  base(): LogBase {
    return EMPTY_BASE;
  }

  dropThrough(): number {
    throw new Error('CountingCommandLog keeps no history to drop');
  }

  resetTo(): void {
    throw new Error('CountingCommandLog is never refilled');
  }

  close(): void {}
}

/** Copies a doc's current plain values into a fresh doc: one compaction into a new generation. */
export function rebuildDoc(doc: Y.Doc): Y.Doc {
  const fresh = new Y.Doc({ gc: true });
  fresh.transact(() => {
    for (const [name, type] of doc.share) {
      if (type instanceof Y.Map) {
        const m = fresh.getMap(name);
        for (const [k, v] of type.entries()) m.set(k, v);
      } else if (type instanceof Y.Array) {
        const items = type.toArray();
        if (items.length > 0) fresh.getArray(name).push(items);
      } else {
        // Shares never accessed by type (e.g. created by a remote update) would need a decision;
        // the publisher only uses maps and arrays.
        assert(false, `unexpected shared type for ${name}`);
      }
    }
  });
  return fresh;
}

export function measureDocs(docs: Iterable<Y.Doc>, updates: number): GrowthRow {
  const row: GrowthRow = { updates, v1Bytes: 0, v2Bytes: 0, jsonBytes: 0, rebuiltV1Bytes: 0, rebuiltV2Bytes: 0, docs: 0 };
  for (const doc of docs) {
    row.docs++;
    row.v1Bytes += Y.encodeStateAsUpdate(doc).length;
    row.v2Bytes += Y.encodeStateAsUpdateV2(doc).length;
    row.jsonBytes += Buffer.byteLength(JSON.stringify(doc.toJSON()));
    const fresh = rebuildDoc(doc);
    row.rebuiltV1Bytes += Y.encodeStateAsUpdate(fresh).length;
    row.rebuiltV2Bytes += Y.encodeStateAsUpdateV2(fresh).length;
    fresh.destroy();
  }
  return row;
}

/**
 * Seeded command mix: 25% deposits, 15% withdrawals (small, always covered), 60% crossing order
 * pairs — a GTC order from one account near the mid, then an IOC from another account that takes
 * the same quantity from the opposite best — so resting depth stays roughly constant while books,
 * positions and the trades arrays keep changing.
 */
function* commandStream(seed: number, accounts: readonly string[], markets: readonly string[], count: number): Generator<Command> {
  const rnd = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  let n = 0;
  while (n < count) {
    const r = rnd();
    const account = pick(accounts);
    if (r < 0.25) {
      n++;
      yield { type: 'deposit', account, amount: int(1, 100_000) as Amount };
    } else if (r < 0.4) {
      n++;
      yield { type: 'withdraw', account, amount: int(1, 100_000) as Amount };
    } else {
      const market = pick(markets);
      const makerSide = rnd() < 0.5 ? 'buy' : 'sell';
      const qty = int(1, 10) as QtyLots;
      n++;
      yield { type: 'place_order', account, market, side: makerSide, price: int(995, 1005) as PriceTicks, qty, tif: 'GTC' };
      if (n >= count) break;
      let taker = pick(accounts);
      if (taker === account) taker = accounts[(accounts.indexOf(account) + 1) % accounts.length]!;
      n++;
      const takerSide = makerSide === 'buy' ? 'sell' : 'buy';
      yield { type: 'place_order', account: taker, market, side: takerSide, price: (takerSide === 'buy' ? 1010 : 990) as PriceTicks, qty, tif: 'IOC' };
    }
  }
}

export async function measureYjsGrowth(opts: GrowthOptions): Promise<GrowthRow[]> {
  assert(opts.accounts >= 2 && opts.updates >= 0 && opts.checkpoints >= 1, 'need ≥ 2 accounts, ≥ 0 updates, ≥ 1 checkpoint');
  const batch = opts.batch ?? BATCH_DEFAULT;
  const config = parseConfig({ ...EMBEDDED_DEFAULTS, core: { nodes: [{ name: 'bench', port: 0, dataDir: 'unused' }] } });
  assert(opts.accounts <= config.domain.limits.maxAccounts, 'more accounts than domain.limits.maxAccounts');
  const markets = config.domain.markets.map((m) => m.symbol);
  const core = new Core({
    domain: config.domain,
    layout: { accountShards: config.publish.accountShards, markets },
    bookDepth: config.publish.bookDepth,
    tradesKept: config.publish.tradesKept,
    maxBatch: batch,
    maxQueue: batch * 2,
    log: new CountingCommandLog(),
    ...(opts.compaction ? { compaction: opts.compaction } : {}),
  });
  // What a node does after its handover grace: the replaced generation stops being published.
  let generations = 0;
  core.on('generation', (_fresh, old) => {
    generations++;
    core.retire(old);
  });
  const measure = (done: number): GrowthRow => ({ ...measureDocs(core.publisher.docs.values(), done), generations });
  try {
    let clientSeq = 0;
    const submit = async (commands: Command[]) => {
      const subs: Submission[] = commands.map((command) => ({ clientId: `g${++clientSeq}`, command }));
      const outcomes = await core.sequencer.submit(subs);
      for (const o of outcomes) assert(o.kind === 'committed', `unexpected outcome ${o.kind}`);
    };
    const accounts = Array.from({ length: opts.accounts }, (_, i) => `acct${i}`);
    for (let i = 0; i < accounts.length; i += batch) {
      await submit(accounts.slice(i, i + batch).map((account) => ({ type: 'deposit', account, amount: INITIAL_DEPOSIT as Amount })));
    }
    const rows: GrowthRow[] = [measure(0)];
    const marks = Array.from({ length: opts.checkpoints }, (_, i) => Math.round(((i + 1) * opts.updates) / opts.checkpoints));
    let done = 0;
    let pending: Command[] = [];
    const flush = async () => {
      await submit(pending);
      done += pending.length;
      pending = [];
      opts.onProgress?.(done);
      while (marks.length > 0 && marks[0]! <= done) {
        marks.shift();
        rows.push(measure(done));
      }
    };
    for (const command of commandStream(opts.seed ?? DEFAULT_SEED, accounts, markets, opts.updates)) {
      pending.push(command);
      // End a batch exactly at a checkpoint so each row measures exactly `updates` commands.
      if (pending.length >= batch || done + pending.length === marks[0]) await flush();
    }
    if (pending.length > 0) await flush();
    return rows;
  } finally {
    core.close();
  }
}

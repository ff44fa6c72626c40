// Local persistence of a read node's Yjs docs (SQLite). Each doc is stored as the list of updates
// received since its last compaction; loading applies them in order. Rows are tagged with the
// generation they belong to, so a node never mixes two generations, and the old one is deleted
// only after the new one is fully synced and serving. Writes are batched per tick in one
// transaction. synchronous=NORMAL: a replica that loses its last writes on power loss simply
// re-syncs them from upstream by state vector, so it doesn't need the core's fsync per batch.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface ReplicaStoreOptions {
  /** Rows per doc before they are merged into one. */
  compactAfterRows?: number;
}

export class ReplicaStore {
  private readonly db: Database.Database;
  private readonly pending: Array<[string, string, Uint8Array]> = [];
  private flushScheduled = false;
  private readonly rowsPerDoc = new Map<string, number>();
  readonly compactAfterRows: number;

  constructor(dataDir: string, opts: ReplicaStoreOptions = {}) {
    mkdirSync(dataDir, { recursive: true });
    this.compactAfterRows = opts.compactAfterRows ?? 500;
    this.db = new Database(join(dataDir, 'replica.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS updates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        generation TEXT NOT NULL,
        doc TEXT NOT NULL,
        data BLOB NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS updates_gen_doc ON updates (generation, doc, id);
      CREATE TABLE IF NOT EXISTS current (k INTEGER PRIMARY KEY CHECK (k = 1), generation TEXT NOT NULL) STRICT;
    `);
  }

  /** The generation this node was serving when it stopped, if any. */
  servingGeneration(): string | null {
    const row = this.db.prepare<[], { generation: string }>('SELECT generation FROM current WHERE k = 1').get();
    return row?.generation ?? null;
  }

  /** Marks `generation` as the one served and deletes every other generation's rows. */
  setServing(generation: string): void {
    this.flush();
    this.db.transaction(() => {
      this.db.prepare('INSERT INTO current (k, generation) VALUES (1, ?) ON CONFLICT (k) DO UPDATE SET generation = excluded.generation').run(generation);
      this.db.prepare('DELETE FROM updates WHERE generation <> ?').run(generation);
    })();
    for (const key of [...this.rowsPerDoc.keys()]) if (!key.startsWith(`${generation}\u0000`)) this.rowsPerDoc.delete(key);
  }

  /** Deletes one generation's rows (a sync attempt that was abandoned). */
  dropGeneration(generation: string): void {
    this.flush();
    this.db.prepare('DELETE FROM updates WHERE generation = ?').run(generation);
  }

  load(generation: string): Map<string, Uint8Array[]> {
    const out = new Map<string, Uint8Array[]>();
    const rows = this.db
      .prepare<[string], { doc: string; data: Buffer }>('SELECT doc, data FROM updates WHERE generation = ? ORDER BY id')
      .iterate(generation);
    for (const row of rows) {
      const list = out.get(row.doc) ?? [];
      list.push(new Uint8Array(row.data));
      out.set(row.doc, list);
      const key = `${generation}\u0000${row.doc}`;
      this.rowsPerDoc.set(key, (this.rowsPerDoc.get(key) ?? 0) + 1);
    }
    return out;
  }

  append(generation: string, doc: string, update: Uint8Array): void {
    this.pending.push([generation, doc, update]);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** True when `doc` has enough rows that merging them is worth it. */
  needsCompaction(generation: string, doc: string): boolean {
    return (this.rowsPerDoc.get(`${generation}\u0000${doc}`) ?? 0) >= this.compactAfterRows;
  }

  /** Replaces every stored row of a doc by one update holding its whole state. */
  compact(generation: string, doc: string, state: Uint8Array): void {
    this.flush();
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM updates WHERE generation = ? AND doc = ?').run(generation, doc);
      this.db.prepare('INSERT INTO updates (generation, doc, data) VALUES (?, ?, ?)').run(generation, doc, Buffer.from(state));
    })();
    this.rowsPerDoc.set(`${generation}\u0000${doc}`, 1);
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || !this.db.open) return;
    const batch = this.pending.splice(0);
    const insert = this.db.prepare('INSERT INTO updates (generation, doc, data) VALUES (?, ?, ?)');
    this.db.transaction(() => {
      for (const [gen, doc, data] of batch) {
        insert.run(gen, doc, Buffer.from(data));
        const key = `${gen}\u0000${doc}`;
        this.rowsPerDoc.set(key, (this.rowsPerDoc.get(key) ?? 0) + 1);
      }
    })();
  }

  close(): void {
    if (!this.db.open) return;
    this.flush();
    this.db.close();
  }
}

// Per-account view docs for browsers. The account shards hold many accounts, so a browser with an
// account token gets a small doc `view-<id>` holding only its account, made by this node from its
// own copy. A view is rewritten only when its account changed (the shard docs report which keys
// changed), and its stamp moves only then: a commit that does not touch an account costs its
// pages nothing — no Yjs transaction, no message (the page takes the seq from the meta doc).
// Invariants: view docs are written only by this node (never from upstream, never by a client);
// one doc per account serves that account's room in every generation being served (refs counts the
// rooms), and it is destroyed when the last room releases it; at most MAX_VIEWS exist at once.
import * as Y from 'yjs';
import { ACCOUNT_ID, type AccountView } from '../domain/types.js';
import { ACCOUNT_VIEW_PREFIX, STAMP } from '../publish/layout.js';
import type { ReadScope } from './read-model.js';

/** Per-account browser views one node keeps at once (each is one small doc). */
export const MAX_VIEWS = 10_000;

interface View {
  doc: Y.Doc;
  value: unknown;
  seq: number;
  refs: number;
}

export class AccountViews {
  private readonly views = new Map<string, View>();
  /** Accounts with an open view that changed since the last flush (bounded by MAX_VIEWS). */
  private readonly dirty = new Set<string>();
  private allDirty = false;

  constructor(private readonly read: { account(id: string): AccountView | undefined; seqFor(scope: ReadScope): number }) {}

  /** The view doc for room `name` (`view-<id>`), or undefined if it isn't one or the bound is hit. */
  open(name: string): Y.Doc | undefined {
    if (!name.startsWith(ACCOUNT_VIEW_PREFIX)) return undefined;
    const id = name.slice(ACCOUNT_VIEW_PREFIX.length);
    if (!ACCOUNT_ID.test(id)) return undefined;
    // View docs are written only by this node, so one doc serves the account's room in every
    // generation being served (refs counts those rooms).
    const existing = this.views.get(id);
    if (existing) {
      existing.refs += 1;
      return existing.doc;
    }
    if (this.views.size >= MAX_VIEWS) return undefined;
    const view: View = { doc: new Y.Doc({ gc: true }), value: undefined, seq: -1, refs: 1 };
    this.views.set(id, view);
    this.refresh(id, view);
    return view.doc;
  }

  close(name: string): void {
    const id = name.slice(ACCOUNT_VIEW_PREFIX.length);
    const view = this.views.get(id);
    if (!view || --view.refs > 0) return;
    this.views.delete(id);
    view.doc.destroy();
  }

  /** Accounts changed in the copy (`all`: a new generation): their views refresh on flush(). */
  markChanged(ids: Iterable<string> | 'all'): void {
    if (this.allDirty) return;
    if (ids === 'all' || this.dirty.size > MAX_VIEWS) {
      this.allDirty = true;
      this.dirty.clear();
      return;
    }
    for (const id of ids) if (this.views.has(id)) this.dirty.add(id);
  }

  /** Brings the views of changed accounts up to the node's copy. */
  flush(): void {
    const ids = this.allDirty ? [...this.views.keys()] : [...this.dirty];
    this.allDirty = false;
    this.dirty.clear();
    for (const id of ids) {
      const view = this.views.get(id);
      if (view) this.refresh(id, view);
    }
  }

  private refresh(id: string, view: View): void {
    const value = this.read.account(id);
    // Yjs hands out the same object until the value changes, so identity is the change test.
    if (value === view.value) return;
    const seq = this.read.seqFor({ kind: 'account', id });
    view.doc.transact(() => {
      if (value === undefined) view.doc.getMap('view').delete('account');
      else view.doc.getMap('view').set('account', value);
      view.doc.getMap(STAMP).set('seq', seq);
    });
    view.value = value;
    view.seq = seq;
  }
}

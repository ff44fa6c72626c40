// The live regional dashboard (browser). Syncs, read-only, from the read node that served the page:
// the meta doc (seq, commit time), the account's own view doc (needs that account's token or an
// operator token: the node refuses anything else) and one market doc; re-renders on every change.
// Invariants: it never writes to a doc; it renders only what the node let it sync, so another
// account's data can't appear; on a new generation (compaction, failover) it rediscovers and
// reconnects without a reload.
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { bookSide } from '../../publish/layout.js';

interface PositionView { market: string; qty: number; costBasis: number; avgEntryPrice: number; realizedPnl: number }
interface OrderView { orderId: number; market: string; side: string; price: number; qty: number; remaining: number; tif: string }
interface AccountView { id: string; collateral: number; marginRequired: number; available: number; positions: PositionView[]; openOrders: OrderView[] }
interface Level { price: number; qty: number; orders: number }

const params = new URLSearchParams(location.search);
/** This page's id: the read node counts this page's sockets (meta, view, market) as one page. */
const pageId = Math.random().toString(36).slice(2, 14);
const account = params.get('account') ?? '';
const token = params.get('token') ?? '';
const $ = (id: string) => document.getElementById(id)!;
const text = (id: string, value: string) => {
  $(id).textContent = value;
};
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

let session: { providers: WebsocketProvider[]; docs: Y.Doc[] } | null = null;
let market = params.get('market') ?? '';

function teardown(): void {
  for (const p of session?.providers ?? []) p.destroy();
  for (const d of session?.docs ?? []) d.destroy();
  session = null;
}

async function connect(): Promise<void> {
  teardown();
  text('status', 'connecting…');
  const status = await (await fetch('/v1/status')).json();
  text('region', String(status.region));
  const info = await (await fetch('/v1/sync/info')).json();
  if (!info.generation) {
    text('status', 'node not synced yet; retrying');
    setTimeout(connect, 1000);
    return;
  }
  if (!market) market = (info.docs as string[]).find((d) => d.startsWith('mkt-'))?.slice(4) ?? '';
  text('market', market);
  const base = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/sync/${info.generation}`;
  const meta = new Y.Doc();
  const view = new Y.Doc();
  const book = new Y.Doc();
  const open = (room: string, doc: Y.Doc) => {
    const p = new WebsocketProvider(base, room, doc, { params: { token, page: pageId }, disableBc: true, maxBackoffTime: 1000 });
    p.awareness.setLocalState(null);
    p.on('closed', ({ code, reason }: { code: number; reason: string }) => {
      if (code === 4410) void connect(); // new generation: rediscover
      else {
        text('status', `refused (${code}): ${reason}`);
        $('status').className = 'error';
      }
    });
    return p;
  };
  session = {
    docs: [meta, view, book],
    providers: [open('meta', meta), open(`view-${account}`, view), open(`mkt-${market}`, book)],
  };
  const render = () => renderAll(meta, view, book);
  for (const d of session.docs) d.on('update', render);
  session.providers[1]!.on('sync', (synced: boolean) => {
    if (synced) text('status', 'live');
    render();
  });
}

let lastMetaSeq = -1;

function renderAll(meta: Y.Doc, view: Y.Doc, book: Y.Doc): void {
  const m = meta.getMap('meta');
  const commitTs = m.get('tsMs');
  const metaSeq = m.get('seq');
  // The page holds everything up to the meta doc's seq (the view doc changes only when the account
  // does; the node keeps it current), so that is the seq it shows.
  const seq = Math.max(Number(m.get('seq') ?? 0), Number(view.getMap('stamp').get('seq') ?? 0));
  text('seq', seq === 0 ? '–' : String(seq));
  // Lag = when a commit reached this page − when the core committed it (one machine, one clock in
  // the local cluster; across machines this needs synchronised clocks).
  if (typeof metaSeq === 'number' && metaSeq !== lastMetaSeq && typeof commitTs === 'number') {
    if (lastMetaSeq !== -1) text('lag', `${Math.max(0, Date.now() - commitTs)} ms`);
    lastMetaSeq = metaSeq;
  }
  if (typeof commitTs === 'number') text('since', `${Math.round(Math.max(0, Date.now() - commitTs) / 1000)} s ago`);
  const a = view.getMap('view').get('account') as AccountView | undefined;
  text('account', account);
  // Book sides: one map per side, price → [qty, orders] (layout.bookSide).
  const bids = bookSide(book, 'bids');
  const asks = bookSide(book, 'asks');
  const levels = (ls: Level[]) => ls.slice(0, 10).map((l) => `<tr><td>${l.price}</td><td>${l.qty}</td><td>${l.orders}</td></tr>`).join('');
  $('book-bids').innerHTML = levels(bids);
  $('book-asks').innerHTML = levels(asks);
  const mark = book.getMap('book').get('mark');
  text('mark', typeof mark === 'number' ? String(mark) : '–');
  const fund = m.get('insurance') as { collateral: number } | undefined;
  text('insurance', fund ? String(fund.collateral) : '0');
  const liquidations = book.getArray<{ seq: number; account: string; qty: number; price: number; fee: number }>('liquidations').toArray().slice(-10).reverse();
  $('liquidations').innerHTML = liquidations
    .map((l) => `<tr><td>${l.seq}</td><td>${esc(l.account)}</td><td>${l.qty}</td><td>${l.price}</td><td>${l.fee}</td></tr>`)
    .join('');
  if (!a) {
    text('collateral', '–');
    $('positions').innerHTML = '';
    $('orders').innerHTML = '';
    return;
  }
  text('collateral', String(a.collateral));
  text('available', String(a.available));
  $('positions').innerHTML = a.positions
    .map((p) => {
      // Unrealized PnL at the market's mark (its last trade: what the risk engine uses).
      const unrealized = p.market === market && typeof mark === 'number' && p.qty !== 0 ? p.qty * mark - Math.sign(p.qty) * p.costBasis : null;
      return `<tr data-market="${esc(p.market)}"><td>${esc(p.market)}</td><td class="qty">${p.qty}</td><td>${p.avgEntryPrice}</td><td class="rpnl">${p.realizedPnl}</td><td>${unrealized ?? '–'}</td></tr>`;
    })
    .join('');
  $('orders').innerHTML = a.openOrders
    .map((o) => `<tr><td>${o.orderId}</td><td>${esc(o.market)}</td><td>${o.side}</td><td>${o.price}</td><td>${o.remaining}/${o.qty}</td></tr>`)
    .join('');
}

setInterval(() => {
  // Keep "last commit … ago" moving while nothing changes.
  const m = session?.docs[0]?.getMap('meta').get('tsMs');
  if (typeof m === 'number') text('since', `${Math.round(Math.max(0, Date.now() - m) / 1000)} s ago`);
}, 1000);

void connect();

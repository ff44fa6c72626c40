// Serves the regional dashboard: an HTML shell and its script (./client.ts, bundled by bundle.ts:
// on demand from source, prebuilt under dist/pages/ in a production install).
// Invariant: the page only reads (its rooms are read-only and gated by the same tokens as HTTP).
import { browserBundle } from './bundle.js';

export function dashboardScript(): Promise<string> {
  return browserBundle('dashboard', new URL('./client.ts', import.meta.url));
}

export function dashboardHtml(region: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>statemirror · ${region}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.2em}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1.5em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:right}th{background:#f6f6f6}
.kv span{display:inline-block;margin-right:2em}.error{color:#b00}
</style></head>
<body>
<h1>statemirror — region <span id="region">${region}</span></h1>
<p class="kv"><span>account <b id="account"></b></span><span>seq <b id="seq">–</b></span><span>lag <b id="lag">–</b></span><span>last commit <b id="since">–</b></span><span id="status">loading…</span></p>
<p class="kv"><span>collateral <b id="collateral">–</b></span><span>available <b id="available">–</b></span><span>mark <b id="mark">–</b></span><span>insurance fund <b id="insurance">–</b></span></p>
<div class="grid">
<section><h2>Positions</h2><table><thead><tr><th>market</th><th>qty</th><th>avg entry</th><th>realized PnL</th><th>unrealized</th></tr></thead><tbody id="positions"></tbody></table>
<h2>Open orders</h2><table><thead><tr><th>id</th><th>market</th><th>side</th><th>price</th><th>left</th></tr></thead><tbody id="orders"></tbody></table></section>
<section><h2>Book <span id="market"></span></h2>
<table><thead><tr><th colspan="3">bids</th></tr><tr><th>price</th><th>qty</th><th>orders</th></tr></thead><tbody id="book-bids"></tbody></table>
<table><thead><tr><th colspan="3">asks</th></tr><tr><th>price</th><th>qty</th><th>orders</th></tr></thead><tbody id="book-asks"></tbody></table>
<h2>Liquidations</h2><table><thead><tr><th>seq</th><th>account</th><th>qty</th><th>at</th><th>fee</th></tr></thead><tbody id="liquidations"></tbody></table></section>
</div>
<script type="module" src="/dashboard.js"></script>
</body></html>`;
}

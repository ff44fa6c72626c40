// The live cluster page (GET /cluster) and its script (GET /cluster.js, bundled from ./client.ts
// with uPlot and its CSS). The page holds no data of its own: its script polls /v1/overview once a
// second and redraws the tables, the lag chart and the event list without a reload.
// Invariant: public and read-only, like /v1/status (it shows roles, positions and counts, never
// account data or secrets).
import { browserBundle } from '../../replica/dashboard/bundle.js';

/** The page's script (./client.ts with uPlot): bundled on demand from source, prebuilt under dist/pages/ in a production install. */
export function clusterScript(): Promise<string> {
  return browserBundle('cluster', new URL('./client.ts', import.meta.url));
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function clusterHtml(self: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>statemirror · cluster</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.2em}h2{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #eee;padding:3px 10px;text-align:right}th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left}.kv span{display:inline-block;margin-right:2em}
tr[data-role=primary] td:nth-child(2){font-weight:bold;color:#070}tr.down td{color:#b00}.error{color:#b00}
#events{list-style:none;padding:0;font-size:.92em;max-height:18em;overflow:auto}#events time{color:#777;margin-right:.8em}
#events li[data-kind=failover],#events li[data-kind=no_leader],#events li[data-kind=unreachable]{color:#b00}
#events li[data-kind=generation]{color:#05a}#lag-chart{min-height:260px}
</style></head>
<body>
<h1>statemirror — cluster <small>(served by <span id="self">${esc(self)}</span>)</small></h1>
<p class="kv"><span>leader <b id="leader">–</b></span><span>epoch <b id="epoch">–</b></span><span>updated <b id="updated">–</b></span><span id="status">loading…</span></p>
<h2>Core nodes</h2>
<table><thead><tr><th>node</th><th>role</th><th>epoch</th><th>commit</th><th>seq</th><th>last seq</th><th>followers: lag (entries)</th></tr></thead><tbody id="cores"></tbody></table>
<h2>Regions</h2>
<table><thead><tr><th>region</th><th>seq</th><th>behind</th><th>lag</th><th>generation</th><th>connections</th><th>pages</th><th>upstream</th></tr></thead><tbody id="regions"></tbody></table>
<h2>Lag per region <small>(ms; vertical lines: failovers in red, new generations in blue)</small></h2>
<div id="lag-chart"></div>
<h2>Events</h2>
<ol id="events"></ol>
<script type="module" src="/cluster.js"></script>
</body></html>`;
}

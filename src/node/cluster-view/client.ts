// The live cluster page (browser): polls /v1/overview on the node that served it once a second and
// redraws the core nodes' table, the regions' table, the lag chart (uPlot: one series per region,
// failovers and new generations drawn as vertical markers on the time axis) and the event list.
// Invariants: read-only; a failed poll marks the page offline and the next one retries (no reload
// ever needed); everything from the JSON is escaped before it reaches innerHTML.
import uPlot from 'uplot';
import uplotCss from 'uplot/dist/uPlot.min.css' with { type: 'text' };
import type { ClusterEvent, CoreRow, RegionRow } from './history.js';
import type { Overview } from './overview.js';

declare global {
  interface Window {
    /** The last overview and the chart, for tests and the curious (devtools). */
    clusterView?: { overview: Overview | null; plot: uPlot | null; polls: number };
  }
}

const POLL_MS = 1000;
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];
const MARKER: Partial<Record<ClusterEvent['kind'], string>> = { failover: '#d00', leader: '#d00', no_leader: '#f80', generation: '#05a' };

const $ = (id: string) => document.getElementById(id)!;
const text = (id: string, value: string) => {
  $(id).textContent = value;
};
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const n = (v: number | null | undefined) => (v === null || v === undefined ? '–' : String(v));
const clock = (ms: number) => new Date(ms).toLocaleTimeString([], { hour12: false });

const style = document.createElement('style');
style.textContent = uplotCss;
document.head.appendChild(style);

const state: NonNullable<Window['clusterView']> = { overview: null, plot: null, polls: 0 };
window.clusterView = state;
let chartRegions = '';

function renderCores(nodes: CoreRow[]): void {
  $('cores').innerHTML = nodes
    .map((c) => {
      const followers = c.followers.map((f) => `${esc(f.node)}: ${n(f.lag)}`).join(', ') || (c.role === 'primary' ? 'none' : '');
      const role = c.reachable ? esc(c.role ?? '?') : `unreachable (${esc(c.error ?? '')})`;
      return `<tr data-node="${esc(c.name)}" data-role="${esc(c.reachable ? c.role ?? '' : 'unreachable')}"${c.reachable ? '' : ' class="down"'}>
<td>${esc(c.name)}</td><td class="role">${role}</td><td>${n(c.epoch)}</td><td>${n(c.commit)}</td><td>${n(c.seq)}</td><td>${n(c.lastSeq)}</td><td class="followers">${followers}</td></tr>`;
    })
    .join('');
}

function renderRegions(regions: RegionRow[]): void {
  $('regions').innerHTML = regions
    .map((r) => {
      if (!r.reachable) return `<tr data-region="${esc(r.name)}" class="down"><td>${esc(r.name)}</td><td colspan="7">unreachable (${esc(r.error ?? '')})</td></tr>`;
      const gen = r.generation === null ? '–' : esc(r.generation.slice(0, 12));
      return `<tr data-region="${esc(r.name)}"><td>${esc(r.name)}</td><td class="seq">${n(r.seq)}</td><td>${n(r.lagSeq)}</td><td class="lag">${r.lagMs === null ? '–' : `${r.lagMs} ms`}</td>
<td title="${esc(r.generation ?? '')}">${gen}</td><td>${n(r.connections)}</td><td>${n(r.pages)}</td><td>${esc(r.upstream ?? '–')}</td></tr>`;
    })
    .join('');
}

function renderEvents(events: ClusterEvent[]): void {
  $('events').innerHTML = events
    .slice(-50)
    .reverse()
    .map((e) => `<li data-kind="${esc(e.kind)}" data-at="${e.at}"><time>${clock(e.at)}</time>${esc(e.message)}</li>`)
    .join('');
}

/** Vertical lines at the events' times, drawn on the plot's canvas after each redraw. */
function drawMarkers(u: uPlot): void {
  const events = state.overview?.events ?? [];
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.lineWidth = 2 * devicePixelRatio;
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  for (const e of events) {
    const color = MARKER[e.kind];
    if (!color) continue;
    const x = u.valToPos(e.at / 1000, 'x', true);
    if (x < left || x > left + width) continue;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    if (e.kind !== 'generation') ctx.fillText(e.kind === 'no_leader' ? 'no leader' : `→ ${e.to ?? ''}`, x + 4, top + 12 * devicePixelRatio);
  }
  ctx.restore();
}

function chartData(o: Overview): uPlot.AlignedData {
  const names = o.regions.map((r) => r.name);
  return [o.history.t.map((t) => t / 1000), ...names.map((name) => o.history.regions[name]?.lagMs ?? o.history.t.map(() => null))];
}

function renderChart(o: Overview): void {
  const names = o.regions.map((r) => r.name);
  const data = chartData(o);
  const el = $('lag-chart');
  const width = Math.max(320, el.clientWidth || 800);
  if (state.plot && chartRegions === names.join(',')) {
    state.plot.setData(data);
    if (Math.abs(state.plot.width - width) > 4) state.plot.setSize({ width, height: 260 });
    return;
  }
  state.plot?.destroy();
  chartRegions = names.join(',');
  state.plot = new uPlot(
    {
      width,
      height: 260,
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(10, max ?? 0)] } },
      axes: [{}, { label: 'lag (ms)' }],
      series: [{}, ...names.map((name, i) => ({ label: name, stroke: COLORS[i % COLORS.length]!, width: 2, spanGaps: false }))],
      hooks: { draw: [drawMarkers] },
    },
    data,
    el,
  );
}

function render(o: Overview): void {
  state.overview = o;
  state.polls += 1;
  text('self', o.self);
  text('leader', o.leader?.node ?? 'none');
  text('epoch', o.leader ? String(o.leader.epoch) : '–');
  text('updated', o.at === null ? '–' : clock(o.at));
  renderCores(o.nodes);
  renderRegions(o.regions);
  renderEvents(o.events);
  renderChart(o);
}

async function poll(): Promise<void> {
  try {
    const res = await fetch('/v1/overview', { signal: AbortSignal.timeout(5000), cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render((await res.json()) as Overview);
    text('status', 'live');
    $('status').className = '';
  } catch (err) {
    text('status', `offline (${err instanceof Error ? err.message : String(err)}); retrying`);
    $('status').className = 'error';
  }
  setTimeout(() => void poll(), POLL_MS);
}

void poll();

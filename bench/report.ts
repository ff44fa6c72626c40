// Report rendering of the latency benchmark: the Markdown report (the tables the README explains),
// the lag chart as SVG, and the HTML page rendered from the Markdown with `marked` (a maintained
// CommonMark/GFM renderer; tables included) with the chart placed under section 1.
// Invariant: rendering is pure — the numbers come in, text comes out; nothing is measured here.
import { availableParallelism } from 'node:os';
import { marked } from 'marked';
import { pathLatencyMs, type Config, type RegionConfig } from '../src/config/schema.js';
import type { BenchOptions } from './args.js';
import type { LagRow, lagPhase } from './load.js';
import { fmt, ratio, type Summary } from './lib/stats.js';
import type { measureCoreWrites, measureRawSqliteAppend, measureReads } from './lib/throughput.js';
import type { measureCatchUp } from './lib/catch-up.js';
import type { measureYjsGrowth } from './lib/yjs-growth.js';

export interface BenchResults {
  startedAt: Date;
  totalS: number;
  config: Config;
  opts: BenchOptions;
  lag: Awaited<ReturnType<typeof lagPhase>>;
  writes: Awaited<ReturnType<typeof measureCoreWrites>>;
  raw: ReturnType<typeof measureRawSqliteAppend>;
  readRegion: RegionConfig;
  reads: Awaited<ReturnType<typeof measureReads>>;
  bareReads: Awaited<ReturnType<typeof measureReads>>;
  farthest: RegionConfig;
  catchUp: Awaited<ReturnType<typeof measureCatchUp>>;
  growth: Awaited<ReturnType<typeof measureYjsGrowth>>;
}

export function svgChart(rows: LagRow[]): string {
  // Grouped bars per region: p50 and p99 for ours / poll / redis, with the floor as a line.
  const series: Array<[string, string, (r: LagRow) => Summary | null]> = [
    ['statemirror', '#2b6cb0', (r) => r.ours],
    ['HTTP poll', '#dd6b20', (r) => r.poll],
    ['Redis', '#c53030', (r) => r.redis],
  ];
  const max = Math.max(1, ...rows.flatMap((r) => series.map(([, , f]) => f(r)?.p99Ms ?? 0).filter(Number.isFinite)));
  const W = 760;
  const H = 320;
  const left = 60;
  const bottom = 40;
  const groupW = (W - left - 20) / rows.length;
  const barW = groupW / (series.length * 2 + 1);
  const y = (v: number) => H - bottom - (v / max) * (H - bottom - 20);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 30}" font-family="sans-serif" font-size="11">`);
  parts.push(`<text x="${left}" y="14" font-size="13">commit→visible lag per region (ms): p50 solid, p99 light; dashed = physical floor</text>`);
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    parts.push(`<line x1="${left}" x2="${W - 10}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v, 0)}</text>`);
  }
  rows.forEach((r, gi) => {
    const gx = left + gi * groupW;
    series.forEach(([, color, f], si) => {
      const s = f(r);
      if (!s || !Number.isFinite(s.p50Ms)) return;
      const x = gx + barW * (1 + si * 2);
      parts.push(`<rect x="${x}" y="${y(s.p99Ms)}" width="${barW * 0.9}" height="${H - bottom - y(s.p99Ms)}" fill="${color}" opacity="0.35"/>`);
      parts.push(`<rect x="${x + barW}" y="${y(s.p50Ms)}" width="${barW * 0.9}" height="${H - bottom - y(s.p50Ms)}" fill="${color}"/>`);
    });
    parts.push(`<line x1="${gx + barW * 0.5}" x2="${gx + groupW - barW * 0.5}" y1="${y(r.floorMs)}" y2="${y(r.floorMs)}" stroke="#000" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${gx + groupW / 2}" y="${H - bottom + 16}" text-anchor="middle">${r.region} (floor ${r.floorMs} ms)</text>`);
  });
  series.forEach(([name, color], i) => parts.push(`<rect x="${left + i * 130}" y="${H + 8}" width="12" height="12" fill="${color}"/><text x="${left + i * 130 + 16}" y="${H + 18}">${name}</text>`));
  parts.push('</svg>');
  return parts.join('\n');
}

/** The HTML page: the Markdown rendered by marked, the chart right under the section 1 heading. */
export function markdownToHtml(md: string, svg: string): string {
  // A raw HTML block (the SVG) after the heading line is passed through by marked as is.
  const withChart = md.replace(/^(## 1\..*)$/m, `$1\n\n${svg}\n`);
  const body = marked.parse(withChart, { async: false, gfm: true });
  return `<!doctype html><meta charset="utf-8"><title>statemirror bench</title><style>body{font-family:sans-serif;max-width:980px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}</style>\n${body}`;
}

/** The Markdown report. */
export function renderMarkdown(r: BenchResults): string {
  const { config, opts, startedAt, writes, raw, reads, bareReads, catchUp, growth, farthest } = r;
  const lagResult = r.lag;
  const region = { config: r.readRegion };
  const rowsMd = lagResult.rows.map(
    (r) =>
      `| ${r.region} | ${r.floorMs} | ${fmt(r.ours.p50Ms)} / ${fmt(r.ours.p99Ms)} / ${fmt(r.ours.p999Ms)} | ${fmt(r.poll.p50Ms)} / ${fmt(r.poll.p99Ms)} / ${fmt(r.poll.p999Ms)} | ${r.redis ? `${fmt(r.redis.p50Ms)} / ${fmt(r.redis.p99Ms)} / ${fmt(r.redis.p999Ms)}` : '–'} | ${ratio(r.ours.p50Ms, r.floorMs)} | ${r.redis ? ratio(r.ours.p50Ms, r.redis.p50Ms) : '–'} | ${r.ours.n} |`,
  );
  return [
    `# statemirror benchmark — ${startedAt.toISOString()}`,
    '',
    `node ${process.version}, ${availableParallelism()} cpus; seed ${opts.seed}; load ${opts.rate} cmds/s for ${opts.durationS} s over ${opts.accounts} accounts (${lagResult.sent} sent, ${lagResult.rejectedHttp} refused/failed, ${lagResult.saturated} skipped at the in-flight cap); reads ${opts.readRate}/s per region; core: ${config.core.nodes.length} nodes (Raft, majority commit); failovers during the load: ${lagResult.failovers}.`,
    '',
    '## 1. Commit→visible lag per region (ms: p50 / p99 / p999)',
    '',
    'Lag = time a region can serve a seq − time the core committed it (one process, one clock). Floor = configured one-way path latency from the core. Baselines cross the same simulated links in the same run.',
    '',
    `| region | floor | statemirror | HTTP poll every ${opts.pollIntervalMs} ms | Redis replica | ours p50 / floor | ours p50 / Redis p50 | seqs |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rowsMd,
    '',
    `Redis baseline: ${lagResult.redisNote}. Every node, proxy and load generator runs in this one Node process (${availableParallelism()} cpus), so absolute lags include its event-loop queueing under load; the baselines share that handicap, which is why the ratios are the figures to read.`,
    '',
    '## 2. Core writes vs raw SQLite append',
    '',
    '| | commands/s | ack p50 ms | ack p99 ms |',
    '|---|---:|---:|---:|',
    `| statemirror core process (HTTP, validate, sequence, apply, fsync, ${config.core.nodes.length > 1 ? 'standby process ack, ' : ''}publish) | ${fmt(writes.commandsPerSec, 0)} | ${fmt(writes.ackP50Ms)} | ${fmt(writes.ackP99Ms)} |`,
    `| raw better-sqlite3 batched append, same payloads, batches of ${raw.batches ? Math.round(raw.commands / raw.batches) : '?'} (ceiling) | ${fmt(raw.commandsPerSec, 0)} | – | – |`,
    `| ratio ours / ceiling | ${ratio(writes.commandsPerSec, raw.commandsPerSec)} | | |`,
    '',
    '## 3. Read node GETs vs bare hono',
    '',
    '| | req/s | p50 ms | p99 ms |',
    '|---|---:|---:|---:|',
    `| read node ${region.config.name} GET /v1/accounts/:id | ${fmt(reads.reqPerSec, 0)} | ${fmt(reads.p50Ms)} | ${fmt(reads.p99Ms)} |`,
    `| bare hono, same objects from a Map | ${fmt(bareReads.reqPerSec, 0)} | ${fmt(bareReads.p50Ms)} | ${fmt(bareReads.p99Ms)} |`,
    `| ratio ours / bare | ${ratio(reads.reqPerSec, bareReads.reqPerSec)} | | ${ratio(reads.p99Ms, bareReads.p99Ms)} |`,
    '',
    'Reads during the lag phase (client on the same machine as the region, ms):',
    '',
    '| region | p50 | p99 | p999 | n |',
    '|---|---:|---:|---:|---:|',
    ...lagResult.rows.map((r) => `| ${r.region} | ${fmt(r.reads.p50Ms)} | ${fmt(r.reads.p99Ms)} | ${fmt(r.reads.p999Ms)} | ${r.reads.n} |`),
    '',
    `## 4. Fresh replica catch-up (${farthest.name} link, ${pathLatencyMs(config, farthest)} ms one-way)`,
    '',
    '| accounts | seed the core (ms) | catch-up (ms) | bytes over the link | Yjs state bytes | plain JSON bytes |',
    '|---:|---:|---:|---:|---:|---:|',
    `| ${catchUp.accounts} | ${fmt(catchUp.seedMs, 0)} | ${fmt(catchUp.catchUpMs, 0)} | ${catchUp.bytesTransferred} | ${catchUp.stateBytesV1} | ${catchUp.jsonBytes} |`,
    '',
    '## 5. Yjs state size vs plain JSON as updates accumulate',
    '',
    '| updates | Yjs V1 bytes | Yjs V2 bytes | plain JSON bytes | V1 / JSON | rebuilt V1 (new generation) |',
    '|---:|---:|---:|---:|---:|---:|',
    ...growth.map((g) => `| ${g.updates} | ${g.v1Bytes} | ${g.v2Bytes} | ${g.jsonBytes} | ${ratio(g.v1Bytes, g.jsonBytes)} | ${g.rebuiltV1Bytes} |`),
    '',
    `Total bench time ${fmt(r.totalS, 0)} s.`,
  ].join('\n');
}

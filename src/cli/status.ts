// `statemirror status`: the /cluster page's table in the terminal. It asks one node for
// GET /v1/overview (the --url given, else the first node of the config that answers: core nodes,
// then regions) and prints the core nodes (role, epoch, commit, each follower's lag), the regions
// (seq, lag, generation, connections) and the last events; --watch redraws it every second.
// Invariants: read-only and public (no token); every request has a timeout; when no node answers it
// says which were tried and why, and exits non-zero.
import type { ClusterEvent } from '../node/cluster-view/history.js';
import type { Overview } from '../node/cluster-view/overview.js';

/** Columns padded to their widest cell, two spaces apart. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

const n = (v: number | null | undefined) => (v === null || v === undefined ? '-' : String(v));
const clock = (ms: number) => new Date(ms).toLocaleTimeString('en-GB', { hour12: false });

export function renderOverview(o: Overview, eventsShown = 8): string {
  const cores = [
    ['core node', 'role', 'epoch', 'commit', 'seq', 'last seq', 'followers: lag (entries)'],
    ...o.nodes.map((c) =>
      c.reachable
        ? [c.name, c.role ?? '?', n(c.epoch), n(c.commit), n(c.seq), n(c.lastSeq), c.followers.map((f) => `${f.node}: ${n(f.lag)}`).join(', ')]
        : [c.name, `unreachable (${c.error ?? 'no answer'})`, '', '', '', '', ''],
    ),
  ];
  const regions = [
    ['region', 'seq', 'behind', 'lag', 'generation', 'connections', 'pages'],
    ...o.regions.map((r) =>
      r.reachable
        ? [r.name, n(r.seq), n(r.lagSeq), r.lagMs === null ? '-' : `${r.lagMs} ms`, r.generation?.slice(0, 12) ?? '-', n(r.connections), n(r.pages)]
        : [r.name, `unreachable (${r.error ?? 'no answer'})`, '', '', '', '', ''],
    ),
  ];
  const events: ClusterEvent[] = o.events.slice(-eventsShown).reverse();
  const leader = o.leader ? `leader ${o.leader.node} (epoch ${o.leader.epoch})` : 'no leader';
  return [
    `cluster as seen from ${o.self}${o.at === null ? '' : ` at ${clock(o.at)}`}: ${leader}`,
    '',
    table(cores),
    '',
    table(regions),
    '',
    events.length === 0 ? 'no events yet' : 'last events (newest first):',
    ...events.map((e) => `  ${clock(e.at)}  ${e.message}`),
    '',
  ].join('\n');
}

/** Asks each URL in turn for its overview; resolves with the first answer, or throws listing every failure. */
export async function fetchOverview(urls: string[], timeoutMs = 5000): Promise<{ url: string; overview: Overview }> {
  const failures: string[] = [];
  for (const url of urls) {
    try {
      const res = await fetch(`${url.replace(/\/+$/, '')}/v1/overview`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      return { url, overview: (await res.json()) as Overview };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      failures.push(`  ${url}: ${e.name === 'TimeoutError' ? `no answer in ${timeoutMs} ms` : (e.cause?.code ?? e.message)}`);
    }
  }
  throw new Error(`no node answered GET /v1/overview; tried:\n${failures.join('\n')}`);
}

export interface StatusOptions {
  urls: string[];
  watch: boolean;
  out: NodeJS.WriteStream;
}

/** Prints the overview once (or, with watch, every second until interrupted). */
export async function runStatus(opts: StatusOptions): Promise<void> {
  if (!opts.watch) {
    opts.out.write(renderOverview((await fetchOverview(opts.urls)).overview));
    return;
  }
  let preferred = opts.urls;
  for (;;) {
    let text: string;
    try {
      const { url, overview } = await fetchOverview(preferred);
      preferred = [url, ...opts.urls.filter((u) => u !== url)]; // stay on the node that answered
      text = renderOverview(overview);
    } catch (err) {
      text = `${err instanceof Error ? err.message : String(err)}\n(retrying every second; Ctrl-C stops)\n`;
    }
    opts.out.write(opts.out.isTTY ? `\x1b[H\x1b[2J${text}` : `${text}\n`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

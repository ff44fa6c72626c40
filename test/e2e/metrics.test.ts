// GET /metrics on real sockets: a two-node core and two regions. One accepted write, one business
// reject and one bad request; then the leader's, the follower's and a region's metrics are scraped
// and checked for real values (commit histogram, rejects by code, per-peer match = the follower's
// last seq, the region's seq) and for the Prometheus text format and naming conventions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { WebSocket } from 'ws';
import { startCluster, type Cluster } from '../../src/cli/cluster.js';
import { packFrame, unpackFrame } from '../../src/http/order-session.js';
import { get, operatorToken, post, tempDir, testConfig } from './helpers.js';

const config = testConfig({ coreNodes: 2 });
let cluster: Cluster;
let dir: string;

beforeAll(async () => {
  dir = tempDir('sm-metrics-');
  cluster = await startCluster(config, { ephemeralPorts: true, dataRoot: dir, discoveryIntervalMs: 200 });
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Scrape {
  text: string;
  contentType: string | null;
  /** Sample value by `name{label="v",...}` (labels sorted), as exported. */
  samples: Map<string, number>;
  /** Metric family name → type, from the `# TYPE` lines. */
  types: Map<string, string>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the text exposition format (0.0.4) strictly enough to catch malformed lines. */
function parse(text: string): Pick<Scrape, 'samples' | 'types'> {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(type);
      expect(types.has(name!), `TYPE ${name} twice`).toBe(false);
      types.set(name!, type!);
      continue;
    }
    const m = SAMPLE.exec(line);
    expect(m, `not a sample line: ${line}`).not.toBeNull();
    const labels = [...(m![2] ?? '').matchAll(LABEL)].map(([, k, v]) => `${k}="${v}"`).sort();
    // Go's ParseFloat (Prometheus) reads NaN in any case; prom-client writes `Nan`.
    const value = /^nan$/i.test(m![3]!) ? NaN : Number(m![3]);
    expect(Number.isNaN(value) ? m![3] : 'number', line).toMatch(/^(number|nan)$/i);
    samples.set(labels.length ? `${m![1]}{${labels.join(',')}}` : m![1]!, value);
  }
  return { samples, types };
}

async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, contentType: res.headers.get('content-type'), ...parse(text) };
}

/** The value of one sample; `labels` in any order. Undefined when it is not exported. */
function value(s: Scrape, name: string, labels: Record<string, string> = {}, nodeLabel?: Record<string, string>): number | undefined {
  const all = { ...nodeLabel, ...labels };
  const keys = Object.entries(all).map(([k, v]) => `${k}="${v}"`).sort();
  return s.samples.get(keys.length ? `${name}{${keys.join(',')}}` : name);
}

/** Every family is statemirror_ or a standard process metric; counters end in _total, ours only; histograms are whole. */
function checkConventions(s: Scrape): void {
  expect(s.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  for (const [name, type] of s.types) {
    expect(name, name).toMatch(/^(statemirror_|process_|nodejs_)/);
    // Base units only: seconds and bytes, never milliseconds or kilobytes.
    expect(name, name).not.toMatch(/_(ms|milliseconds|us|microseconds|kb|mb|kilobytes|megabytes)(_|$)/);
    if (type === 'counter') expect(name, `counter ${name}`).toMatch(/_total$/);
    // prom-client's own process metrics include gauges named *_total (nodejs_active_handles_total): ours don't.
    if (type === 'gauge' && name.startsWith('statemirror_')) expect(name, `gauge ${name}`).not.toMatch(/_total$/);
    if (type === 'histogram') {
      const series = [...s.samples.keys()].filter((k) => k.startsWith(`${name}_`));
      // A labelled histogram nobody observed yet (a follower's round trips) has no series at all.
      if (series.length === 0) continue;
      expect(series.some((k) => k.startsWith(`${name}_bucket{`) && k.includes('le="+Inf"')), `${name} +Inf bucket`).toBe(true);
      expect(series.some((k) => k === `${name}_sum` || k.startsWith(`${name}_sum{`)), `${name}_sum`).toBe(true);
      expect(series.some((k) => k === `${name}_count` || k.startsWith(`${name}_count{`)), `${name}_count`).toBe(true);
    }
  }
  // Every sample belongs to a declared family.
  for (const key of s.samples.keys()) {
    const name = key.split('{')[0]!;
    const family = [name, name.replace(/_(bucket|sum|count)$/, '')].find((n) => s.types.has(n));
    expect(family, `sample ${key} has no # TYPE`).toBeDefined();
  }
}

describe('GET /metrics', () => {
  it('exports commit latency, rejects by code, replication progress and region seq, in Prometheus text format', async () => {
    const leader = cluster.primary()!;
    const follower = cluster.cores.find((c) => c !== leader)!;
    const near = cluster.regions.get('near')!;
    const L = { node: leader.name };
    const F = { node: follower.name };
    const R = { region: 'near' };
    const before = await scrape(leader.url);
    const commits0 = value(before, 'statemirror_commit_latency_seconds_count', {}, L) ?? 0;

    const ok = await post(`${leader.url}/v1/commands`, { clientId: 'm-dep', type: 'deposit', account: 'mia', amount: 100 });
    expect(ok.status).toBe(200);
    const rejected = await post(`${leader.url}/v1/commands`, { clientId: 'm-wd', type: 'withdraw', account: 'mia', amount: 101 });
    expect(rejected.status).toBe(422);
    expect(rejected.body.result.code).toBe('insufficient_collateral');
    const bad = await fetch(`${leader.url}/v1/commands`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await operatorToken()}` }, body: '{nope' });
    expect(bad.status).toBe(400);
    const seq: number = rejected.body.seq;

    const l = await scrape(leader.url);
    checkConventions(l);
    expect(value(l, 'statemirror_commit_latency_seconds_count', {}, L)).toBe(commits0 + 2);
    expect(value(l, 'statemirror_commit_latency_seconds_sum', {}, L)).toBeGreaterThan(0);
    expect(value(l, 'statemirror_rejects_total', { code: 'insufficient_collateral' }, L)).toBe(1);
    expect(value(l, 'statemirror_rejects_total', { code: 'malformed_json' }, L)).toBe(1);
    expect(value(l, 'statemirror_commands_acknowledged_total', {}, L)).toBeGreaterThanOrEqual(2);
    expect(value(l, 'statemirror_core_role', { role: 'primary' }, L)).toBe(1);
    expect(value(l, 'statemirror_core_role', { role: 'standby' }, L)).toBe(0);
    expect(value(l, 'statemirror_raft_role', { role: 'leader' }, L)).toBe(1);
    expect(value(l, 'statemirror_raft_commit_seq', {}, L)).toBe(seq);
    expect(value(l, 'statemirror_applied_seq', {}, L)).toBe(seq);
    expect(value(l, 'statemirror_log_last_seq', {}, L)).toBe(seq);
    expect(value(l, 'statemirror_raft_epoch', {}, L)).toBe(leader.raft.epoch);
    expect(value(l, 'statemirror_sequencer_queue_depth', {}, L)).toBe(0);
    expect(value(l, 'statemirror_sequencer_batches_in_flight', {}, L)).toBe(0);
    expect(value(l, 'statemirror_halted', {}, L)).toBe(0);
    expect(value(l, 'statemirror_storage_error', {}, L)).toBe(0);
    expect(value(l, 'statemirror_log_append_seconds_count', {}, L)).toBeGreaterThanOrEqual(2);
    expect(value(l, 'statemirror_log_append_entries_count', {}, L)).toBe(value(l, 'statemirror_log_append_seconds_count', {}, L));
    expect(value(l, 'statemirror_log_appended_bytes_total', {}, L)).toBeGreaterThan(0);
    // Two nodes: a commit needs the follower's ack, so the leader's view of it is exact here.
    expect(value(l, 'statemirror_replication_round_trip_seconds_count', { peer: follower.name }, L)).toBeGreaterThanOrEqual(2);
    expect(value(l, 'statemirror_replication_peer_match_seq', { peer: follower.name }, L)).toBe(seq);
    expect(value(l, 'statemirror_replication_peer_lag_entries', { peer: follower.name }, L)).toBe(0);
    expect(value(l, 'statemirror_cluster_link_up', { peer: follower.name }, L)).toBe(1);
    expect(value(l, 'statemirror_cluster_messages_sent_total', { peer: follower.name }, L)).toBeGreaterThan(0);
    expect(value(l, 'statemirror_http_connections', {}, L)).toBeGreaterThanOrEqual(1);
    // The near region syncs its rooms from the leader.
    expect(value(l, 'statemirror_rooms_connections', {}, L)).toBeGreaterThanOrEqual(1);
    // The process's own metrics ride along (one set per process, without a node label).
    expect(value(l, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(l.types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');

    const f = await scrape(follower.url);
    checkConventions(f);
    expect(value(f, 'statemirror_raft_role', { role: 'follower' }, F)).toBe(1);
    expect(value(f, 'statemirror_core_role', { role: 'standby' }, F)).toBe(1);
    expect(value(f, 'statemirror_log_last_seq', {}, F)).toBe(value(l, 'statemirror_replication_peer_match_seq', { peer: follower.name }, L));
    expect(value(f, 'statemirror_log_append_seconds_count', {}, F)).toBeGreaterThanOrEqual(2);
    expect(value(f, 'statemirror_commit_latency_seconds_count', {}, F)).toBe(0);
    // Per-peer replication state is the leader's: a follower exports no such series.
    expect([...f.samples.keys()].some((k) => k.startsWith('statemirror_replication_peer_'))).toBe(false);

    expect(await near.node.waitFor({ kind: 'all' }, seq, 10_000)).toBe(true);
    const badRead = await get(`${near.url}/v1/accounts/mia?minSeq=-1`);
    expect(badRead.status).toBe(400);
    const status = await get(`${near.url}/v1/status`);
    expect(status.body.lagMs).toBeTypeOf('number');
    const r = await scrape(near.url);
    checkConventions(r);
    expect(value(r, 'statemirror_replica_seq', {}, R)).toBeGreaterThanOrEqual(seq);
    expect(value(r, 'statemirror_replica_upstream_seq', {}, R)).toBeGreaterThanOrEqual(0);
    expect(value(r, 'statemirror_replica_lag_seconds', {}, R)).toBeGreaterThanOrEqual(0);
    expect(value(r, 'statemirror_replica_generation_info', { generation: near.node.generation()! }, R)).toBe(1);
    expect(value(r, 'statemirror_replica_generation_swaps_total', {}, R)).toBeGreaterThanOrEqual(1);
    expect(value(r, 'statemirror_replica_epoch', {}, R)).toBe(leader.raft.epoch);
    expect(value(r, 'statemirror_replica_accounts', {}, R)).toBeGreaterThanOrEqual(1);
    expect(value(r, 'statemirror_rejects_total', { code: 'invalid_query' }, R)).toBe(1);
    // The far region syncs its rooms from near.
    expect(value(r, 'statemirror_rooms_connections', {}, R)).toBeGreaterThanOrEqual(1);
    expect(value(r, 'statemirror_rooms_pages', {}, R)).toBeGreaterThanOrEqual(1);
    expect(value(r, 'statemirror_rooms_dropped_client_messages_total', {}, R)).toBe(0);
  }, 60_000);

  it('counts order-entry session error answers by code', async () => {
    const leader = cluster.primary()!;
    const L = { node: leader.name };
    const before = value(await scrape(leader.url), 'statemirror_rejects_total', { code: 'duplicate_client_id_in_batch' }, L) ?? 0;
    const ws = new WebSocket(`${leader.url.replace('http', 'ws')}/v1/session`, { headers: { authorization: `Bearer ${await operatorToken()}` } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const answer = new Promise<any>((resolve) => ws.once('message', (data: Buffer) => resolve(unpackFrame(data))));
    const dep = { clientId: 's-dup', type: 'deposit', account: 'sam', amount: 1 };
    ws.send(packFrame({ id: 1, commands: [dep, dep] }));
    expect((await answer).error.code).toBe('duplicate_client_id_in_batch');
    ws.close();
    const after = await scrape(leader.url);
    expect(value(after, 'statemirror_rejects_total', { code: 'duplicate_client_id_in_batch' }, L)).toBe(before + 1);
    expect(value(after, 'statemirror_sessions_opened_total', {}, L)).toBeGreaterThanOrEqual(1);
  }, 30_000);
});

// `statemirror status` as a real process against an in-process cluster (three core nodes, two
// regions): it prints the core nodes with the leader's followers, the regions and the events from
// the node given with --url, or from the first node of the config that answers; it exits non-zero
// with a clear message when no node answers or the URL is not one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, type Cluster } from '../../src/cli/cluster.js';
import { freePort } from '../../sim/process-cluster.js';
import { tempDir, testConfig } from '../e2e/helpers.js';

const config = testConfig({ coreNodes: 3 });
const dir = tempDir('sm-status-');
let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster(config, { ephemeralPorts: true, dataRoot: dir, discoveryIntervalMs: 100 });
}, 60_000);
afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

function status(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'status', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`status did not exit in time:\n${out}\n${err}`));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe('statemirror status', () => {
  it('prints the cluster table from the node given with --url', async () => {
    const leader = cluster.primary()!;
    const { code, out, err } = await status('--url', cluster.regions.get('far')!.url);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toContain(`cluster as seen from far`);
    expect(out).toContain(`leader ${leader.name} (epoch ${leader.raft.epoch})`);
    const line = (name: string) => out.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
    expect(line(leader.name)).toMatch(/primary/);
    // The leader's row lists each follower's lag in entries.
    for (const c of cluster.cores.filter((c) => c !== leader)) {
      expect(line(c.name)).toMatch(/standby/);
      expect(line(leader.name)).toMatch(new RegExp(`${c.name}: \\d+`));
    }
    for (const r of ['near', 'far']) expect(line(r)).toMatch(new RegExp(`^${r}\\s+\\d+\\s+\\d+\\s+\\d+ ms\\s+\\S+`));
    expect(out).toContain(`${leader.name} leads (epoch ${leader.raft.epoch})`);
  });

  it('without --url asks the nodes of the config in turn and takes the first that answers', async () => {
    const raw = structuredClone(config) as any;
    const dead = await freePort();
    raw.core.nodes = [
      { ...raw.core.nodes[0], port: dead },
      ...cluster.cores.slice(1).map((c, i) => ({ ...raw.core.nodes[i + 1], port: c.port })),
    ];
    const path = join(dir, 'status-config.json');
    writeFileSync(path, JSON.stringify(raw));
    const { code, out } = await status('--config', path);
    expect(code).toBe(0);
    expect(out).toContain(`cluster as seen from ${cluster.cores[1]!.name}`);
  });

  it('exits non-zero with a clear message when no node answers, or the URL is not one', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const none = await status('--url', dead);
    expect(none.code).toBe(1);
    expect(none.out).toBe('');
    expect(none.err).toContain(`statemirror: no node answered GET /v1/overview; tried:\n  ${dead}: ECONNREFUSED`);
    const bad = await status('--url', 'ftp://nowhere');
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('--url must be http(s)://host:port');
  });
});

// `statemirror up` as a real process: it prints a short banner (the URL table, working demo tokens,
// the log file and the /cluster link) while its full JSON log goes to that file and only warnings
// reach the terminal, serves writes and regional reads (with those tokens), stops cleanly on SIGINT
// (exit 0), and a second start replays the log to the same seq and hash.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMBEDDED_DEFAULTS } from '../../src/config/schema.js';
import { get, post, tempDir } from '../e2e/helpers.js';

const dir = tempDir('sm-cli-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(): string {
  const config = structuredClone(EMBEDDED_DEFAULTS) as any;
  config.core = { ...config.core, nodes: config.core.nodes.map((n: any) => ({ ...n, port: 0, dataDir: join(dir, n.name) })) };
  config.regions = config.regions.map((r: any) => ({ ...r, port: 0, dataDir: join(dir, r.name) }));
  const path = join(dir, 'config.json');
  writeFileSync(path, JSON.stringify(config));
  return path;
}

interface Up {
  child: ChildProcess;
  urls: Map<string, string>;
  /** The printed `export NAME_TOKEN=…` values, by NAME (OPERATOR, ALICE). */
  tokens: Map<string, string>;
  /** Everything printed on stdout so far (the banner), and on stderr. */
  out: string;
  err: () => string;
}

/** Starts `up` and resolves with the URLs from its table and the printed tokens. */
function startUp(configPath: string): Promise<Up> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'up', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`up did not print its table in time:\n${out}\n${err}`)), 30_000);
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      if (!out.includes('try:')) return;
      clearTimeout(timer);
      const urls = new Map<string, string>();
      for (const m of out.matchAll(/^(\S+)\s+(http:\/\/127\.0\.0\.1:\d+)/gm)) urls.set(m[1]!, m[2]!);
      const tokens = new Map<string, string>();
      for (const m of out.matchAll(/export (\w+)_TOKEN=(\S+)/g)) tokens.set(m[1]!, m[2]!);
      resolve({ child, urls, tokens, out, err: () => err });
    });
    child.once('exit', (code) => reject(new Error(`up exited early with ${code}:\n${out}\n${err}`)));
  });
}

async function primaryOf(urls: string[]): Promise<string> {
  for (const url of urls) if ((await get(`${url}/v1/status`)).body.role === 'primary') return url;
  throw new Error('no primary');
}

function exitCode(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('did not exit after SIGINT')), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe('statemirror up', () => {
  it('runs the cluster, stops on SIGINT, and restarts to the same state', async () => {
    const configPath = writeConfig();
    const first = await startUp(configPath);
    expect([...first.urls.keys()]).toEqual(['core-a', 'core-b', 'core-c', 'us-east', 'eu-west', 'ap-southeast']);
    expect([...first.tokens.keys()]).toEqual(['OPERATOR', 'ALICE']);
    const operator = first.tokens.get('OPERATOR')!;
    const alice = first.tokens.get('ALICE')!;
    const cores = ['core-a', 'core-b', 'core-c'].map((n) => first.urls.get(n)!);
    // Raft elects any of the three; `up` waits for a leader before it prints the table.
    const core = await primaryOf(cores);
    const deposit = { clientId: 'cli-1', type: 'deposit', account: 'carol', amount: 4242 };
    expect((await post(`${core}/v1/commands`, deposit, null)).status).toBe(401);
    expect((await post(`${core}/v1/commands`, deposit, alice)).status).toBe(403);
    const w = await post(`${core}/v1/commands`, deposit, operator);
    expect(w.status).toBe(200);
    const far = await get(`${first.urls.get('ap-southeast')}/v1/accounts/carol?minSeq=${w.body.seq}`, operator);
    expect(far.status).toBe(200);
    expect(far.body.collateral).toBe(4242);
    expect((await get(`${first.urls.get('ap-southeast')}/v1/accounts/carol`, alice)).status).toBe(403);
    expect((await get(`${first.urls.get('ap-southeast')}/v1/accounts/carol`, null)).status).toBe(401);
    const before = (await get(`${core}/v1/status`)).body;
    // The banner names the log file and the cluster view; the info lines went to the file only.
    const logFile = join(dir, 'statemirror.log');
    expect(first.out).toContain(`the full log is in ${logFile}`);
    expect(first.out).toMatch(/http:\/\/127\.0\.0\.1:\d+\/cluster\n/);
    expect(first.out).not.toContain('"level"');
    first.child.kill('SIGINT');
    expect(await exitCode(first.child)).toBe(0);
    const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(lines.some((l) => l.msg === 'core role' && l.level === 30)).toBe(true);
    expect(lines.some((l) => l.msg === 'stopping')).toBe(true);
    // stderr (not a TTY here: JSON) carries warnings and errors only.
    for (const l of first.err().split('\n').filter(Boolean)) expect((JSON.parse(l) as { level: number }).level).toBeGreaterThanOrEqual(40);

    const second = await startUp(configPath);
    try {
      // The nodes restart together and elect a leader under a newer epoch, whose epoch_start
      // marker is the only entry added.
      const primaryUrl = await primaryOf(['core-a', 'core-b', 'core-c'].map((n) => second.urls.get(n)!));
      const after = (await get(`${primaryUrl}/v1/status`)).body;
      expect(after.seq).toBe(before.seq + 1);
      expect(after.epoch).toBeGreaterThan(before.epoch);
      const retry = await post(`${primaryUrl}/v1/commands`, deposit, second.tokens.get('OPERATOR')!);
      expect(retry.body).toMatchObject({ seq: w.body.seq, duplicate: true });
    } finally {
      second.child.kill('SIGINT');
      expect(await exitCode(second.child)).toBe(0);
    }
  });
});

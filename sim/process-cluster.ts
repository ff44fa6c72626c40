// Runs core nodes as real OS processes (`statemirror core --node NAME [--peer P=URL]`) for fault
// tests and the failover benchmark: start, SIGKILL, SIGSTOP/SIGCONT, restart, find the leader.
// Readiness is the node's own "core node listening" log line, not a timer. Invariant: every child
// is killed by stopAll() (a paused one is continued first), so a failed test never leaks processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The CLI's TypeScript source, run through tsx: tests and bench never run a stale dist/ build. */
const CLI = ['--import', 'tsx', join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.ts')];

/** A free TCP port on loopback (bound then released; fine for tests on one machine). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface NodeStatus {
  role: string;
  node: string;
  epoch: number;
  seq: number;
  commit: number;
  lastSeq: number;
  stateHash: string;
  leader: string | null;
  /** The node's snapshots (null when they are off). */
  snapshots?: { restoredFrom: { seq: number } | null; taken: number; fetched: number } | null;
  raft: { role: string; learner: boolean; storageError: string | null; peers: Array<{ node: string; match: number; lag: number }> };
}

export class CoreProcesses {
  private readonly children = new Map<string, ChildProcess>();
  private readonly paused = new Set<string>();
  readonly stderr = new Map<string, string>();

  constructor(
    private readonly opts: {
      configPath: string;
      urls: Record<string, string>;
      /** Per node: peer name → the URL it dials (e.g. link proxies the test can partition). */
      peerUrls?: Record<string, Record<string, string>>;
      logLevel?: string;
      /** Extra environment for the nodes (e.g. NODE_EXTRA_CA_CERTS for https/wss peers). */
      env?: Record<string, string>;
    },
  ) {}

  url(name: string): string {
    return this.opts.urls[name]!;
  }

  get names(): string[] {
    return Object.keys(this.opts.urls);
  }

  /** Spawns a node and resolves once it is listening (elections follow on their own). */
  start(name: string, timeoutMs = 30_000): Promise<void> {
    const peers = Object.entries(this.opts.peerUrls?.[name] ?? {}).flatMap(([peer, url]) => ['--peer', `${peer}=${url}`]);
    const child = spawn(process.execPath, [...CLI, 'core', '--node', name, '--config', this.opts.configPath, '--log-level', this.opts.logLevel ?? 'info', ...peers], {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(this.opts.env ? { env: { ...process.env, ...this.opts.env } } : {}),
    });
    this.children.set(name, child);
    this.stderr.set(name, '');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready in ${timeoutMs} ms:\n${this.stderr.get(name)}`)), timeoutMs);
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (chunk: string) => {
        // Keep the tail only: a long run must not grow this without bound.
        this.stderr.set(name, (this.stderr.get(name)! + chunk).slice(-20_000));
        if (chunk.includes('"msg":"core node listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before it was ready:\n${this.stderr.get(name)}`));
      });
    });
  }

  /** SIGKILL: no shutdown code runs, exactly like a machine dying. */
  /** SIGKILL by default; SIGTERM for a graceful stop (a leader hands over first). */
  async kill(name: string, signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const child = this.children.get(name);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    this.children.delete(name);
    this.paused.delete(name);
  }

  /** SIGSTOP: the process freezes (a GC pause, a stuck VM); its sockets stay open. */
  pause(name: string): void {
    this.children.get(name)?.kill('SIGSTOP');
    this.paused.add(name);
  }

  /** SIGCONT: the frozen process runs again and finds the world moved on. */
  resume(name: string): void {
    this.children.get(name)?.kill('SIGCONT');
    this.paused.delete(name);
  }

  isRunning(name: string): boolean {
    return this.children.has(name);
  }

  async status(name: string): Promise<NodeStatus | null> {
    try {
      const res = await fetch(`${this.url(name)}/v1/status`, { signal: AbortSignal.timeout(1000) });
      return (await res.json()) as NodeStatus;
    } catch {
      return null;
    }
  }

  /** Polls until `pred` holds for some node's status (bounded). */
  async waitFor(pred: (s: NodeStatus) => boolean, timeoutMs: number, what: string): Promise<NodeStatus> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const name of this.names) {
        if (!this.children.has(name) || this.paused.has(name)) continue;
        const s = await this.status(name);
        if (s && pred(s)) return s;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  }

  /** Graceful stop (SIGTERM) of every running node. */
  async stopAll(): Promise<void> {
    for (const name of [...this.paused]) this.resume(name);
    await Promise.all(
      [...this.children.entries()].map(async ([name, child]) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
        this.children.delete(name);
      }),
    );
  }
}

// Child processes for the process-separate benches (bench:replica, bench:fanout): start one and
// resolve with the first match of `ready` in its output; stop them all and let them exit (a
// --cpu-prof profile is written on exit). Every child started is tracked, so none outlives a bench.
import { spawn, type ChildProcess } from 'node:child_process';

export class BenchProcs {
  private readonly children: ChildProcess[] = [];

  constructor() {
    process.once('exit', () => this.children.forEach((c) => c.kill('SIGKILL')));
  }

  /** Spawns `node ...args`; resolves with the ready regexp's first group (or whole match). */
  start(args: string[], ready: RegExp): Promise<string> {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return new Promise((resolve, reject) => {
      let out = '';
      const on = (d: Buffer) => {
        out = (out + d).slice(-20_000); // the tail is enough to report a failure
        const m = ready.exec(out);
        if (m) resolve(m[1] ?? m[0]);
      };
      child.stdout!.on('data', on);
      child.stderr!.on('data', on);
      child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}:\n${out.slice(-2000)}`)));
    });
  }

  /** SIGTERM to every child, resolved once all have exited. */
  async stopAll(): Promise<void> {
    await Promise.all(this.children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : (c.once('exit', r), c.kill('SIGTERM'))))));
  }
}

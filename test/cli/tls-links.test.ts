// Every link over TLS, as docs/deploy.md sets it up: each node behind a TLS-terminating proxy (here
// a node:tls server with a self-signed certificate made by openssl at test time, trusted by the
// nodes through NODE_EXTRA_CA_CERTS). Each core node's `url` in the config is its proxy's https://
// address, so two core processes reach each other only there (the Raft link is wss://), and a read
// node process started with no flags reaches both only there too (discovery over https,
// generation sync over wss; `replica --upstream https://…` does the same from the command line). A two-node core commits only with both, so an acknowledged write proves the wss Raft link;
// reading it back from the read node proves its https/wss upstream.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { join } from 'node:path';
import { EMBEDDED_DEFAULTS, parseConfig } from '../../src/config/schema.js';
import { CoreProcesses, freePort } from '../../sim/process-cluster.js';
import { accountToken, get, operatorToken, post, tempDir } from '../e2e/helpers.js';

const dir = tempDir('sm-tls-');
const servers: TlsServer[] = [];
const sockets = new Set<Socket>();
let cores: CoreProcesses | null = null;
let reader: ChildProcess | null = null;
afterAll(async () => {
  if (reader && reader.exitCode === null && reader.signalCode === null) {
    const exited = new Promise((r) => reader!.once('exit', r));
    reader.kill('SIGTERM');
    await exited;
  }
  await cores?.stopAll();
  // close() waits for open connections: cut the proxied ones first.
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  rmSync(dir, { recursive: true, force: true });
});

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A TLS-terminating proxy to 127.0.0.1:targetPort (what nginx or caddy does in front of a node); counts TLS sessions. */
async function tlsProxy(key: Buffer, cert: Buffer, targetPort: number): Promise<{ port: number; sessions: () => number }> {
  let sessions = 0;
  const server = createTlsServer({ key, cert }, (client) => {
    sessions++;
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, sessions: () => sessions };
}

describe('links over TLS (https/wss through a TLS-terminating proxy)', () => {
  it.skipIf(!haveOpenssl())('core nodes replicate over wss and a read node syncs over https/wss', { timeout: 90_000 }, async () => {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    const [key, cert] = [readFileSync(keyPath), readFileSync(certPath)];
    const env = { NODE_EXTRA_CA_CERTS: certPath };

    const corePorts = [await freePort(), await freePort()];
    const [a, b] = [await tlsProxy(key, cert, corePorts[0]!), await tlsProxy(key, cert, corePorts[1]!)];
    const httpsA = `https://localhost:${a.port}`;
    const httpsB = `https://localhost:${b.port}`;
    const raw = structuredClone(EMBEDDED_DEFAULTS) as any;
    raw.core.nodes = [
      { name: 'core-a', host: '127.0.0.1', port: corePorts[0], url: httpsA, dataDir: join(dir, 'core-a') },
      { name: 'core-b', host: '127.0.0.1', port: corePorts[1], url: httpsB, dataDir: join(dir, 'core-b') },
    ];
    raw.regions = [{ name: 'near', host: '127.0.0.1', port: await freePort(), upstream: 'core', dataDir: join(dir, 'near') }];
    raw.links = [{ from: 'core', to: 'near', latencyMs: 0 }];
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify(raw));
    const config = parseConfig(raw);

    cores = new CoreProcesses({
      configPath,
      // The test polls each node's status directly; the nodes themselves use the configured urls.
      urls: { 'core-a': `http://127.0.0.1:${corePorts[0]}`, 'core-b': `http://127.0.0.1:${corePorts[1]}` },
      env,
    });
    await Promise.all([cores.start('core-a'), cores.start('core-b')]);
    const leader = await cores.waitFor((s) => s.role === 'primary', 30_000, 'a leader elected over the wss links');
    expect(a.sessions() + b.sessions()).toBeGreaterThan(0);
    // A write's leader hint is the leader's configured url.
    const follower = leader.node === 'core-a' ? 'core-b' : 'core-a';
    const hint = await post(`${cores.url(follower)}/v1/commands`, { clientId: 'tls-0', type: 'deposit', account: 'alice', amount: 1 }, await operatorToken(config));
    expect(hint.status).toBe(503);
    expect(hint.body.error.leaderUrl).toBe(leader.node === 'core-a' ? httpsA : httpsB);

    const operator = await operatorToken(config);
    const write = await post(`${cores.url(leader.node)}/v1/commands`, { clientId: 'tls-1', type: 'deposit', account: 'alice', amount: 4242 }, operator);
    expect(write.status).toBe(200);
    const seq = write.body.seq as number;
    expect(seq).toBeGreaterThan(0);

    reader = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'replica', '--config', configPath, '--region', 'near'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read node not listening in time:\n${stderr}`)), 30_000);
      reader!.stderr!.setEncoding('utf8');
      reader!.stderr!.on('data', (chunk: string) => {
        stderr = (stderr + chunk).slice(-20_000);
        if (stderr.includes('read node listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
      reader!.once('exit', (code) => reject(new Error(`read node exited (${code}):\n${stderr}`)));
    });
    const readUrl = `http://127.0.0.1:${raw.regions[0].port}`;
    // The read node discovers the leader over https and syncs over wss: wait (bounded) for the write's seq.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const s = await get(`${readUrl}/v1/status`).catch(() => null);
      if (s && typeof s.body.metaSeq === 'number' && s.body.metaSeq >= seq) break;
      if (Date.now() > deadline) throw new Error(`read node did not reach seq ${seq} over https/wss: ${JSON.stringify(s?.body)}\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const read = await get(`${readUrl}/v1/accounts/alice?minSeq=${seq}`, await accountToken(config, 'alice'));
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    expect(JSON.stringify(read.body)).toContain('4242');
    const status = await get(`${readUrl}/v1/status`);
    expect(status.body.upstream).toBe(leader.node === 'core-a' ? httpsA : httpsB);
  });
});

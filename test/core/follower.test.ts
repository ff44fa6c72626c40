// The standby's checks against a scripted primary: it acks only durable, verified entries; halts
// loudly (no ack, no promotion) when an entry's result or state hash differs from its own replay;
// and answers FENCED to a primary from an older epoch.
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import { Follower } from '../../src/replication/follower.js';
import { HashedMachine } from '../../src/engine/hashed-machine.js';
import { MemoryCommandLog } from '../../src/log/memory-log.js';
import type { LogEntry } from '../../src/log/command-log.js';
import {
  MSG_ACK, MSG_APPEND, MSG_FENCED, MSG_HELLO, MSG_WELCOME, decodeRepl, encodeRepl, type ReplMessage,
} from '../../src/replication/protocol.js';
import type { Amount, Seq } from '../../src/domain/types.js';
import { testConfig } from '../domain/helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** Entries as a real primary would produce them. */
function primaryEntries(n: number, epoch = 1): LogEntry[] {
  const m = new HashedMachine(testConfig());
  return Array.from({ length: n }, (_, i) => {
    const command = { type: 'deposit' as const, account: 'alice', amount: (10 + i) as Amount };
    const { result, stateHash } = m.apply({ seq: (i + 1) as Seq, tsMs: 1000 + i, command });
    return { epoch, seq: (i + 1) as Seq, clientId: `c${i}`, tsMs: 1000 + i, command, result, stateHash };
  });
}

/** A scripted primary: records what the follower sends, lets the test send frames. */
async function fakePrimary() {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.once('listening', r));
  const received: ReplMessage[] = [];
  const waiters: Array<(m: ReplMessage) => void> = [];
  let socket: WebSocket | null = null;
  const connected = new Promise<WebSocket>((resolve) =>
    wss.on('connection', (ws) => {
      socket = ws;
      ws.on('message', (raw) => {
        const msg = decodeRepl(raw);
        received.push(msg);
        waiters.splice(0).forEach((w) => w(msg));
      });
      resolve(ws);
    }),
  );
  cleanups.push(() => wss.close());
  const next = () =>
    new Promise<ReplMessage>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no message from follower')), 5000);
      waiters.push((m) => {
        clearTimeout(t);
        resolve(m);
      });
    });
  return { url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, connected, received, next, send: (m: ReplMessage) => socket!.send(encodeRepl(m)) };
}

function follower(peerUrl: string, log = new MemoryCommandLog()) {
  const f = new Follower({ log, domain: testConfig(), nodeName: 'core-b', peerUrl, clusterSecret: 'x'.repeat(16), heartbeatMs: 20, heartbeatTimeoutMs: 100 });
  cleanups.push(() => f.stop());
  return { f, log };
}

describe('Follower', () => {
  it('stores, verifies and then acks shipped entries', async () => {
    const p = await fakePrimary();
    const { f, log } = follower(p.url);
    const hello = p.next();
    f.start();
    await p.connected;
    expect(await hello).toMatchObject({ t: MSG_HELLO, lastSeq: 0, lastEpoch: 0 });
    p.send({ t: MSG_WELCOME, node: 'core-a', epoch: 1, truncateTo: null });
    const ack = p.next();
    p.send({ t: MSG_APPEND, epoch: 1, entries: primaryEntries(3) });
    expect(await ack).toEqual({ t: MSG_ACK, seq: 3 });
    expect(log.lastSeq()).toBe(3);
    expect(f.machine.stateHash).toBe(primaryEntries(3)[2]!.stateHash);
  });

  it('halts loudly on a state hash that differs from its own replay: no ack, no store, no promotion', async () => {
    const p = await fakePrimary();
    const { f, log } = follower(p.url);
    const diverged = new Promise<Error>((resolve) => f.once('diverged', resolve));
    let promoted = false;
    f.on('promote', () => (promoted = true));
    f.start();
    await p.connected;
    p.send({ t: MSG_WELCOME, node: 'core-a', epoch: 1, truncateTo: null });
    const entries = primaryEntries(2);
    entries[1] = { ...entries[1]!, stateHash: 'f'.repeat(64) };
    p.send({ t: MSG_APPEND, epoch: 1, entries });
    expect((await diverged).message).toMatch(/diverged at seq 2/);
    expect(log.lastSeq()).toBe(0);
    expect(p.received.some((m) => m.t === MSG_ACK)).toBe(false);
    expect(f.status().state).toBe('diverged');
    expect(promoted).toBe(false);
  });

  it('tells a primary from an older epoch that it is fenced', async () => {
    const p = await fakePrimary();
    const log = new MemoryCommandLog();
    log.setCurrentEpoch(5);
    const { f } = follower(p.url, log);
    const stale = new Promise<number>((resolve) => f.once('stale', resolve));
    f.start();
    await p.connected;
    await p.next(); // hello
    const reply = p.next();
    p.send({ t: MSG_WELCOME, node: 'core-a', epoch: 4, truncateTo: null });
    expect(await reply).toEqual({ t: MSG_FENCED, epoch: 5 });
    expect(await stale).toBe(4);
  });
});

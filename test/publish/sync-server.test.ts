// The read-only y-websocket room server over real sockets: step1 is answered, client updates are
// dropped, doc changes are broadcast, wrong generations/docs/messages and excess connections are
// refused with their close codes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import * as syncProtocol from 'y-protocols/sync';
import { listen, type RunningServer } from '../../src/http/server.js';
import {
  CLOSE_BAD_MESSAGE, CLOSE_GENERATION_GONE, CLOSE_UNKNOWN_DOC, MSG_SYNC, SyncServer,
} from '../../src/rooms/room-server.js';

let sync: SyncServer;
let server: RunningServer;
let doc: Y.Doc;
const open: WebSocket[] = [];
let onDropped: (doc: string) => void = () => {};

beforeEach(async () => {
  doc = new Y.Doc();
  doc.getMap('m').set('k', 1);
  sync = new SyncServer({ maxConnections: 3, onDroppedClientUpdate: (d) => onDropped(d) });
  sync.serve({ generation: 'gen-1', docs: new Map([['d', doc]]) });
  server = await listen(new Hono(), '127.0.0.1', 0, { sync });
});

afterEach(async () => {
  for (const ws of open.splice(0)) ws.terminate();
  await server.close();
});

function connect(path: string): WebSocket {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`);
  ws.binaryType = 'nodebuffer';
  open.push(ws);
  return ws;
}

function nextMessage(ws: WebSocket, timeoutMs = 5000): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message')), timeoutMs);
    ws.once('message', (data: Buffer) => {
      clearTimeout(t);
      resolve(new Uint8Array(data));
    });
  });
}

function closed(ws: WebSocket, timeoutMs = 5000): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('not closed')), timeoutMs);
    ws.once('close', (code: number) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

const opened = (ws: WebSocket) => new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });

function step1(from: Y.Doc): Uint8Array {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, MSG_SYNC);
  syncProtocol.writeSyncStep1(e, from);
  return encoding.toUint8Array(e);
}

function updateMessage(update: Uint8Array): Uint8Array {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, MSG_SYNC);
  syncProtocol.writeUpdate(e, update);
  return encoding.toUint8Array(e);
}

/** Applies a server sync message (step2 or update) to `target`. */
function applyServerMessage(msg: Uint8Array, target: Y.Doc): number {
  const d = decoding.createDecoder(msg);
  expect(decoding.readVarUint(d)).toBe(MSG_SYNC);
  const sub = decoding.readVarUint(d);
  Y.applyUpdate(target, decoding.readVarUint8Array(d));
  return sub;
}

describe('SyncServer', () => {
  it('answers step1 with the doc, broadcasts changes, and drops client updates', async () => {
    const ws = connect('/sync/gen-1/d');
    await opened(ws);
    ws.send(step1(new Y.Doc()));
    const mirror = new Y.Doc();
    expect(applyServerMessage(await nextMessage(ws), mirror)).toBe(syncProtocol.messageYjsSyncStep2);
    expect(mirror.getMap('m').get('k')).toBe(1);

    const pending = nextMessage(ws);
    doc.getMap('m').set('k', 2);
    expect(applyServerMessage(await pending, mirror)).toBe(syncProtocol.messageYjsUpdate);
    expect(mirror.getMap('m').get('k')).toBe(2);

    // A hostile client edits its copy and sends the update: dropped, not applied, not broadcast.
    const other = connect('/sync/gen-1/d');
    await opened(other);
    const evil = new Y.Doc();
    Y.applyUpdate(evil, Y.encodeStateAsUpdate(mirror));
    let evilUpdate: Uint8Array | null = null;
    evil.on('update', (u: Uint8Array) => (evilUpdate = u));
    evil.getMap('m').set('k', 666);
    const dropped = new Promise<string>((resolve) => (onDropped = resolve));
    other.send(updateMessage(evilUpdate!));
    expect(await dropped).toBe('d');
    expect(sync.droppedClientMessages).toBe(1);
    expect(doc.getMap('m').get('k')).toBe(2);
    // A later real change is the next thing the first client sees: nothing was relayed before it.
    const next = nextMessage(ws);
    doc.getMap('m').set('k', 3);
    applyServerMessage(await next, mirror);
    expect(mirror.getMap('m').get('k')).toBe(3);
  });

  it('closes wrong generations, unknown docs and malformed messages with their codes', async () => {
    expect(await closed(connect('/sync/gen-0/d'))).toBe(CLOSE_GENERATION_GONE);
    expect(await closed(connect('/sync/gen-1/nope'))).toBe(CLOSE_UNKNOWN_DOC);
    const ws = connect('/sync/gen-1/d');
    await opened(ws);
    ws.send(Uint8Array.of(9, 9, 9));
    expect(await closed(ws)).toBe(CLOSE_BAD_MESSAGE);
    const truncated = connect('/sync/gen-1/d');
    await opened(truncated);
    truncated.send(Uint8Array.of(MSG_SYNC, 0, 200));
    expect(await closed(truncated)).toBe(CLOSE_BAD_MESSAGE);
  });

  it('closes every connection of a generation when a new one is served', async () => {
    const ws = connect('/sync/gen-1/d');
    await opened(ws);
    const code = closed(ws);
    sync.serve({ generation: 'gen-2', docs: new Map([['d', new Y.Doc()]]) });
    expect(await code).toBe(CLOSE_GENERATION_GONE);
  });

  it('keeps a previous generation streaming during a handover until it is retired', async () => {
    const ws = connect('/sync/gen-1/d');
    await opened(ws);
    sync.serve({ generation: 'gen-2', docs: new Map([['d', new Y.Doc()]]) }, { keepPrevious: true });
    expect(sync.generations).toEqual(['gen-2', 'gen-1']);
    const mirror = new Y.Doc();
    Y.applyUpdate(mirror, Y.encodeStateAsUpdate(doc));
    const update = nextMessage(ws);
    doc.getMap('m').set('k', 9);
    applyServerMessage(await update, mirror);
    expect(mirror.getMap('m').get('k')).toBe(9);
    const late = connect('/sync/gen-1/d');
    await opened(late);
    const codes = Promise.all([closed(ws), closed(late)]);
    sync.retire('gen-1');
    expect(await codes).toEqual([CLOSE_GENERATION_GONE, CLOSE_GENERATION_GONE]);
    expect(sync.generations).toEqual(['gen-2']);
  });

  it('refuses connections over the limit with 429 and unknown paths with 404', async () => {
    const conns = [connect('/sync/gen-1/d'), connect('/sync/gen-1/d'), connect('/sync/gen-1/d')];
    await Promise.all(conns.map(opened));
    const statusOf = (ws: WebSocket) =>
      new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    const extra = connect('/sync/gen-1/d');
    extra.on('error', () => {});
    expect(await statusOf(extra)).toBe(429);
    const stray = connect('/elsewhere');
    stray.on('error', () => {});
    expect(await statusOf(stray)).toBe(404);
  });

  it('counts the sockets of one page once: pages and sockets per page are limited with JSON reasons', async () => {
    await server.close();
    sync = new SyncServer({ maxConnections: 100, maxPages: 2, maxSocketsPerPage: 3 });
    sync.serve({ generation: 'gen-1', docs: new Map([['d', doc]]) });
    server = await listen(new Hono(), '127.0.0.1', 0, { sync });
    const refusal = (ws: WebSocket) =>
      new Promise<{ status: number; code: string }>((resolve) =>
        ws.once('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, code: JSON.parse(body).error.code }));
        }),
      );
    // Page A: three sockets (meta, view, market) are one page.
    const a = [connect('/sync/gen-1/d?page=A'), connect('/sync/gen-1/d?page=A'), connect('/sync/gen-1/d?page=A')];
    await Promise.all(a.map(opened));
    expect(sync.pageCount).toBe(1);
    const fourth = connect('/sync/gen-1/d?page=A');
    fourth.on('error', () => {});
    expect(await refusal(fourth)).toEqual({ status: 429, code: 'too_many_sockets_per_page' });
    // Page B fits; a third page does not, with or without a page id.
    await opened(connect('/sync/gen-1/d?page=B'));
    expect(sync.pageCount).toBe(2);
    for (const path of ['/sync/gen-1/d?page=C', '/sync/gen-1/d']) {
      const ws = connect(path);
      ws.on('error', () => {});
      expect(await refusal(ws)).toEqual({ status: 429, code: 'too_many_pages' });
    }
    // Closing page A's sockets frees its page.
    await Promise.all(a.map((ws) => { const c = closed(ws); ws.close(); return c; }));
    await opened(connect('/sync/gen-1/d?page=C'));
    expect(sync.pageCount).toBe(2);
    expect(sync.refusedByLimit).toEqual({ too_many_sockets_per_page: 1, too_many_pages: 2 });
  });

  it('a crowded room sends every socket the same pre-framed update, which stock clients decode', async () => {
    await server.close();
    sync = new SyncServer({ maxConnections: 100 });
    sync.serve({ generation: 'gen-1', docs: new Map([['d', doc]]) });
    server = await listen(new Hono(), '127.0.0.1', 0, { sync });
    const conns = Array.from({ length: 40 }, () => connect('/sync/gen-1/d?page=P'.replace('P', Math.random().toString(36).slice(2))));
    await Promise.all(conns.map(opened));
    const copies = conns.map(() => new Y.Doc());
    await Promise.all(conns.map(async (ws, i) => { const m = nextMessage(ws); ws.send(step1(copies[i]!)); applyServerMessage(await m, copies[i]!); }));
    // Two commits' worth of changes, one large enough for a 16-bit length and one for a 64-bit one.
    const arrived = conns.map((ws, i) => nextMessage(ws).then((m) => applyServerMessage(m, copies[i]!)));
    doc.transact(() => { doc.getMap('m').set('big', 'x'.repeat(300)); doc.getMap('m').set('huge', 'y'.repeat(70_000)); });
    await Promise.all(arrived);
    for (const c of copies) expect(c.getMap('m').toJSON()).toEqual(doc.getMap('m').toJSON());
  });
});


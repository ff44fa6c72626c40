// The cluster's snapshot transfer (docs/snapshots.md, "Transfer"): a core node serves its snapshot
// files to its peers, so a leader fetches the snapshot its followers wrote and a new or wiped node
// is refilled from one. Only peers may read them (the cluster secret, compared in constant time):
// a snapshot is the whole exchange's state.
// Invariants: only complete files (`snap-*.bin`) are listed or served; `Range: bytes=N-` resumes a
// transfer from byte N (206), anything else in Range is 416 with the JSON error shape; the seq in
// the path is validated before it names a file.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { Hono } from 'hono';
import type { SnapshotStore } from '../log/snapshot-file.js';
import { bearerIs } from '../replication/transport.js';
import { requestError } from './errors.js';

export function mountSnapshotRoutes(app: Hono, store: () => SnapshotStore | null, clusterSecret: string): void {
  app.use('/v1/cluster/snapshots', async (c, next) => bearerIs(c.req.header('authorization'), clusterSecret) ? next() : requestError(c, 'unauthenticated', 'snapshots are served to core peers only (cluster secret)'));
  app.use('/v1/cluster/snapshots/*', async (c, next) => bearerIs(c.req.header('authorization'), clusterSecret) ? next() : requestError(c, 'unauthenticated', 'snapshots are served to core peers only (cluster secret)'));

  app.get('/v1/cluster/snapshots', (c) => c.json({ snapshots: (store()?.list() ?? []).map((f) => ({ seq: f.seq, bytes: f.bytes })) }));

  app.get('/v1/cluster/snapshots/:seq', (c) => {
    const raw = c.req.param('seq');
    if (!/^\d{1,14}$/.test(raw)) return requestError(c, 'invalid_query', 'seq must be a non-negative integer');
    const f = store()?.list().find((x) => x.seq === Number(raw));
    if (f === undefined) return requestError(c, 'not_found', `no snapshot at seq ${raw} here`, { available: store()?.list().map((x) => x.seq) ?? [] });
    const range = c.req.header('range');
    let start = 0;
    if (range !== undefined) {
      const m = /^bytes=(\d{1,15})-$/.exec(range);
      if (m === null || Number(m[1]) >= f.bytes) {
        c.header('content-range', `bytes */${f.bytes}`);
        return requestError(c, 'range_not_satisfiable', `Range must be "bytes=N-" with N < ${f.bytes}`);
      }
      start = Number(m[1]);
    }
    const body = Readable.toWeb(createReadStream(f.path, { start })) as unknown as ReadableStream;
    c.header('content-type', 'application/octet-stream');
    c.header('content-length', String(f.bytes - start));
    c.header('accept-ranges', 'bytes');
    if (start > 0) {
      c.header('content-range', `bytes ${start}-${f.bytes - 1}/${f.bytes}`);
      return c.body(body, 206);
    }
    return c.body(body, 200);
  });
}

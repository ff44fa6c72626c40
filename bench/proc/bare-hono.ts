// The read baseline of bench:reads as its own process: a bare hono app (the project's listen(),
// same adaptor and server settings) answering GET /v1/accounts/:id with c.json(object) from a Map
// — no token check, no consistency, no Yjs. The objects are read once from `sourceUrl` (the read
// node under test), so both serve the same JSON. Prints "READY <url>".
import { startBareHono } from '../lib/throughput.js';

const [sourceUrl, token, idsCsv, sameHeaders] = process.argv.slice(2) as [string, string, string, string | undefined];
const objects = new Map<string, unknown>();
for (const id of idsCsv.split(',')) {
  const res = await fetch(`${sourceUrl}/v1/accounts/${id}`, { headers: { authorization: `Bearer ${token}` } });
  objects.set(id, await res.json());
}
// With "same-headers": also the headers a read node adds (so a load generator parses as much).
const extra: Record<string, string> = sameHeaders === 'same-headers' ? { etag: 'W/"00000000-0000-0000-0000-000000000000.1"', 'x-statemirror-generation': '00000000-0000-0000-0000-000000000000', 'x-statemirror-region': 'local', 'x-statemirror-seq': '1' } : {};
const bare = await startBareHono(objects, extra);
process.stdout.write(`READY ${bare.url}\n`);
for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => void bare.close().finally(() => process.exit(0)));

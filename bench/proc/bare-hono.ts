// The read baseline of bench:reads as its own process: a bare hono app (the project's listen(),
// same adaptor and server settings) answering GET /v1/accounts/:id with c.json(object) from a Map
// — no token check, no consistency, no Yjs. The objects are read once from `sourceUrl` (the read
// node under test), so both serve the same JSON. Prints "READY <url>".
import { startBareHono } from '../lib/throughput.js';

const [sourceUrl, token, idsCsv] = process.argv.slice(2) as [string, string, string];
const objects = new Map<string, unknown>();
for (const id of idsCsv.split(',')) {
  const res = await fetch(`${sourceUrl}/v1/accounts/${id}`, { headers: { authorization: `Bearer ${token}` } });
  objects.set(id, await res.json());
}
const bare = await startBareHono(objects);
process.stdout.write(`READY ${bare.url}\n`);
for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => void bare.close().finally(() => process.exit(0)));

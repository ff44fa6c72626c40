// Reading a request under @hono/node-server without materializing a WHATWG Request: headers from
// the Node request's plain object, the body from its stream with the size limit enforced while
// reading. hono's own accessors make the adaptor build a Headers object, or a full undici Request
// with an AbortController and a web stream, per request — a large share of a small request's cost.
// Without a Node request (the app called with a fetch Request, as tests do) both fall back to the
// standard accessors, with the same limits.
import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';

/** The Node request under @hono/node-server (absent when the app is called with a fetch Request). */
export function incomingOf(c: Context): IncomingMessage | undefined {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
}

/**
 * A request header, read from the Node request when there is one: hono's own accessor builds a
 * WHATWG Headers object first, a measurable share of a small write's cost.
 */
export function headerOf(c: Context, name: string): string | undefined {
  const incoming = incomingOf(c);
  if (!incoming) return c.req.header(name);
  const v = incoming.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The body as text, or null past `max` bytes (a declared Content-Length over it is refused before
 * reading; an undeclared one is cut off while reading). It reads the Node request directly when
 * there is one: going through `c.req.text()` makes @hono/node-server build a full undici Request
 * with an AbortController and a web stream per request (~15% of the leader's CPU at one command
 * per request).
 */
export async function readBodyLimited(c: Context, max: number): Promise<string | null> {
  const declared = Number(headerOf(c, 'content-length'));
  if (Number.isFinite(declared) && declared > max) return null;
  const incoming = incomingOf(c);
  if (incoming) {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let total = 0;
      let done = false;
      const finish = (value: string | null) => {
        if (done) return;
        done = true;
        incoming.off('data', onData).off('end', onEnd).off('error', onError);
        resolve(value);
      };
      // Past the limit we stop collecting but leave the stream flowing (not destroyed): the rest
      // is dropped and the socket stays up for the 413 answer.
      const onData = (chunk: Buffer) => {
        total += chunk.length;
        if (total > max) finish(null);
        else chunks.push(chunk);
      };
      const onEnd = () => finish(Buffer.concat(chunks).toString('utf8'));
      const onError = (err: Error) => {
        if (done) return;
        done = true;
        reject(err);
      };
      incoming.on('data', onData).once('end', onEnd).once('error', onError);
    });
  }
  const body = c.req.raw.body as unknown as AsyncIterable<Uint8Array> | null;
  if (body === null) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > max) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// Request validation (zod). Everything a client sends is checked here, before the sequencer, so a
// malformed command never reaches the log: strict objects (unknown fields refused), integers only,
// every number inside the configured limits, known markets only.
import { z } from 'zod';
import { ACCOUNT_ID, type DomainConfig } from '../domain/types.js';

export { ACCOUNT_ID };
export const accountIdSchema = z.string().regex(ACCOUNT_ID, 'account id: 1-64 of A-Z a-z 0-9 _ . -');
export const clientIdSchema = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'clientId: 1-128 of A-Z a-z 0-9 _ . : -');

const intIn = (min: number, max: number) => z.number().int().min(min).max(max);

export function commandSchemas(domain: DomainConfig, maxCommandsPerRequest: number) {
  const symbols = domain.markets.map((m) => m.symbol) as [string, ...string[]];
  const { limits } = domain;
  const command = z.discriminatedUnion('type', [
    z.strictObject({ clientId: clientIdSchema, type: z.literal('deposit'), account: accountIdSchema, amount: intIn(1, limits.maxAmount) }),
    z.strictObject({ clientId: clientIdSchema, type: z.literal('withdraw'), account: accountIdSchema, amount: intIn(1, limits.maxAmount) }),
    z.strictObject({
      clientId: clientIdSchema,
      type: z.literal('place_order'),
      account: accountIdSchema,
      market: z.enum(symbols),
      side: z.enum(['buy', 'sell']),
      price: intIn(1, limits.maxPriceTicks),
      qty: intIn(1, limits.maxQtyLots),
      tif: z.enum(['GTC', 'IOC']).default('GTC'),
    }),
    z.strictObject({ clientId: clientIdSchema, type: z.literal('cancel_order'), account: accountIdSchema, orderId: intIn(1, Number.MAX_SAFE_INTEGER) }),
  ]);
  const batch = z.strictObject({ commands: z.array(command).min(1).max(maxCommandsPerRequest) });
  return { command, batch };
}

/** At most this many trades per GET /v1/markets/{symbol}/trades. */
export const TRADES_LIMIT_MAX = 1000;

/**
 * A query parameter that is a non-negative decimal integer (at most 16 digits, no sign, no
 * exponent, no blanks) within `value`'s range. The read routes parse with these and the OpenAPI
 * document shows `value` (z.toJSONSchema with io: 'output'), so the two cannot disagree.
 */
const queryInt = (value: z.ZodNumber) => z.string().regex(/^\d{1,16}$/).transform(Number).pipe(value);

/** The read routes' query parameters; waitMs is bounded by this node's readNode.minSeqWaitMsMax. */
export function readQuerySchemas(minSeqWaitMsMax: number) {
  return {
    minSeq: queryInt(intIn(0, Number.MAX_SAFE_INTEGER)),
    waitMs: queryInt(intIn(0, minSeqWaitMsMax)),
    limit: queryInt(intIn(0, TRADES_LIMIT_MAX)),
  };
}
export type CommandInput = z.infer<ReturnType<typeof commandSchemas>['command']>;

/** Turns zod issues into a reason code and a short list a client can act on. */
export function describeIssues(error: z.ZodError): { code: 'unknown_field' | 'invalid_command'; issues: string[] } {
  const issues = error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
  const unknownField = error.issues.some((i) => i.code === 'unrecognized_keys');
  return { code: unknownField ? 'unknown_field' : 'invalid_command', issues: issues.slice(0, 20) };
}

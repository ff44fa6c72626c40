// Command-line arguments of the latency benchmark (`npm run bench -- --help`): the knobs, their
// defaults and the `--quick` sizes. Invariant: every number is checked (finite, non-negative)
// before the bench starts; `--help` prints the usage and exits 0 before anything is started.
import { parseArgs } from 'node:util';

export const USAGE = `usage: npm run bench -- [options]
  --config PATH            cluster config (default ./regions.config.json, else embedded defaults)
  --rate N                 write commands per second (default 400)
  --duration S             seconds of mixed load for the lag measurement (default 20)
  --accounts N             accounts the load spreads over (default 1000)
  --markets N              markets used (default: all configured)
  --read-rate N            GETs per second per region during the load (default 100)
  --poll-interval-ms N     polling-replica baseline interval (default 25)
  --throughput-seconds S   each throughput phase (default 5)
  --catchup-accounts N     accounts for the fresh-replica catch-up (default 100000)
  --growth-updates N       updates for the Yjs growth measurement (default 1000000)
  --skip-redis             don't run the Redis baseline
  --seed N                 load PRNG seed (default random, printed)
  --quick                  small everything (smoke run)
`;

/** Parses argv; exits on --help (0) or a bad number (2). */
export function parseBenchArgs(argv: string[] = process.argv.slice(2)) {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      rate: { type: 'string', default: '400' },
      duration: { type: 'string', default: '20' },
      accounts: { type: 'string', default: '1000' },
      markets: { type: 'string' },
      'read-rate': { type: 'string', default: '100' },
      'poll-interval-ms': { type: 'string', default: '25' },
      'throughput-seconds': { type: 'string', default: '5' },
      'catchup-accounts': { type: 'string', default: '100000' },
      'growth-updates': { type: 'string', default: '1000000' },
      'skip-redis': { type: 'boolean', default: false },
      seed: { type: 'string' },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const num = (name: keyof typeof values, quick: number): number => {
    if (values.quick) return quick;
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < 0) {
      process.stderr.write(`--${name} must be a non-negative number\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  return {
    values,
    opts: {
      rate: num('rate', 200),
      durationS: num('duration', 5),
      accounts: Math.max(2, num('accounts', 200)),
      readRate: num('read-rate', 50),
      pollIntervalMs: num('poll-interval-ms', 25),
      throughputS: num('throughput-seconds', 2),
      catchupAccounts: num('catchup-accounts', 10_000),
      growthUpdates: num('growth-updates', 50_000),
      seed: values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31),
      markets: values.markets !== undefined ? Math.max(1, Number(values.markets)) : undefined,
      skipRedis: values['skip-redis'] === true,
      config: values.config,
    },
  };
}

export type BenchOptions = ReturnType<typeof parseBenchArgs>['opts'];

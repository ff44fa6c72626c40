// Config loading: the committed regions.config.json equals the embedded defaults, and bad
// topologies (cycles, missing links, unknown upstreams, unknown fields) are refused with reasons.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ConfigError, EMBEDDED_DEFAULTS, nodeUrl, parseConfig, pathLatencyMs } from '../../src/config/schema.js';

const committed = () => JSON.parse(readFileSync('regions.config.json', 'utf8'));

describe('config', () => {
  it('the committed file and the embedded defaults describe the same cluster', () => {
    expect(parseConfig(committed())).toEqual(parseConfig(EMBEDDED_DEFAULTS));
  });

  it('computes the physical floor along relay chains', () => {
    const config = parseConfig(EMBEDDED_DEFAULTS);
    const floors = Object.fromEntries(config.regions.map((r) => [r.name, pathLatencyMs(config, r)]));
    expect(floors).toEqual({ 'us-east': 1, 'eu-west': 35, 'ap-southeast': 110 });
  });

  const broken: Array<[string, (c: any) => void, RegExp]> = [
    ['unknown upstream', (c) => (c.regions[0].upstream = 'mars'), /unknown upstream mars/],
    ['missing link', (c) => c.links.pop(), /expected exactly one link eu-west -> ap-southeast/],
    ['duplicate link', (c) => c.links.push({ ...c.links[0] }), /found 2/],
    ['cycle', (c) => {
      c.regions[1].upstream = 'ap-southeast';
      c.links.push({ from: 'ap-southeast', to: 'eu-west', latencyMs: 1 });
    }, /cycle/],
    ['reserved name', (c) => (c.regions[0].name = 'core'), /reserved/],
    ['unknown field', (c) => (c.core.colour = 'blue'), /core/],
    ['negative latency', (c) => (c.links[0].latencyMs = -1), /links\.0\.latencyMs/],
    ['duplicate market', (c) => c.domain.markets.push({ symbol: 'BTC-USD' }), /duplicate market/],
    ['price out of its own range', (c) => (c.domain.limits.maxPriceTicks = 10 ** 12), /maxPriceTicks/],
    ['price × qty beyond exact integers', (c) => {
      c.domain.limits.maxPriceTicks = 10 ** 9;
      c.domain.limits.maxQtyLots = 10 ** 9;
    }, /2\^50/],
  ];
  it.each(broken)('refuses %s', (_name, mutate, reason) => {
    const raw = committed();
    mutate(raw);
    expect(() => parseConfig(raw)).toThrow(ConfigError);
    expect(() => parseConfig(raw)).toThrow(reason);
  });
});

describe('configs from the primary/standby era', () => {
  it('accept mode "sync" and take heartbeatTimeoutMs as the election timeout', () => {
    const raw = structuredClone(EMBEDDED_DEFAULTS) as any;
    raw.replication = { mode: 'sync', heartbeatMs: 50, heartbeatTimeoutMs: 400, commitTimeoutMs: 2000 };
    expect(parseConfig(raw).replication.electionTimeoutMs).toBe(400);
  });

  it('refuse async mode with the reason, and a risk config that could overflow or gap', () => {
    const raw = structuredClone(EMBEDDED_DEFAULTS) as any;
    raw.replication = { mode: 'async' };
    expect(() => parseConfig(raw)).toThrow(/only "sync" exists now/);
    const big = structuredClone(EMBEDDED_DEFAULTS) as any;
    big.domain.limits.maxOpenInterestLots = 1_000_000_000;
    expect(() => parseConfig(big)).toThrow(/could overflow/);
    const gap = structuredClone(EMBEDDED_DEFAULTS) as any;
    gap.domain.risk = { maintenanceMarginBps: 500, priceBandBps: 400 };
    expect(() => parseConfig(gap)).toThrow(/2 × priceBandBps/);
  });

  it('a node is reached at its url when it has one (a TLS proxy in front), else at http://host:port', () => {
    const raw = structuredClone(EMBEDDED_DEFAULTS) as any;
    raw.core.nodes[0].url = 'https://core-a.example.com';
    raw.regions[0].url = 'https://us-east.example.com:8443';
    const config = parseConfig(raw);
    expect(nodeUrl(config.core.nodes[0]!)).toBe('https://core-a.example.com');
    expect(nodeUrl(config.core.nodes[1]!)).toBe('http://127.0.0.1:7701');
    expect(nodeUrl(config.regions[0]!)).toBe('https://us-east.example.com:8443');
    for (const bad of ['core-a.example.com', 'https://core-a.example.com/', 'https://x/path', 'ftp://x']) {
      raw.core.nodes[0].url = bad;
      expect(() => parseConfig(raw), bad).toThrow(/core\.nodes\.0\.url/);
    }
  });
});

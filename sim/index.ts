// Public surface of the simulated network (sim/: for tests and the bench, not shipped as product
// code): the LinkProxy that turns a loopback TCP hop into a WAN-like link, and the seeded PRNG it
// uses (exported so simulations can share one source of reproducible noise). Invariant: re-exports
// only, no logic, so importing sim/ has no side effects (nothing listens until LinkProxy.start()).

export * from './link-proxy.js';
export * from './prng.js';

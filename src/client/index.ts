// statemirror/client: the package's client library (README "Client library"). A program talks to a
// cluster through StatemirrorClient; every failure is a StatemirrorError with the server's reason code.
export { StatemirrorClient, type ClientOptions, type ReadOptions } from './client.js';
export { OrderSession } from './session.js';
export * from './types.js';

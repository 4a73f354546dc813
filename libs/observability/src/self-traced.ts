import type { Server } from 'node:net';

// A registered symbol on the server object: the preload and the service may hold separate copies
// of this module (two bundles), and both must see the mark.
const SELF_TRACED = Symbol.for('sluice.observability.selfTraced');

/**
 * Marks a server whose request handler opens its own SERVER span (continuing the caller's
 * `traceparent`): the HTTP instrumentation of the preload then opens none for its requests, so one
 * request is one SERVER span. Returns the server.
 */
export function markSelfTraced<S extends Server>(server: S): S {
  (server as unknown as Record<symbol, boolean>)[SELF_TRACED] = true;
  return server;
}

/** Whether {@link markSelfTraced} marked `server`. */
export function isSelfTraced(server: Server | undefined): boolean {
  return (
    server !== undefined && (server as unknown as Record<symbol, boolean>)[SELF_TRACED] === true
  );
}

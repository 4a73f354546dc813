// The webhook dispatcher: consumes clean telemetry and roll-ups, matches them against the
// subscriptions stored in PostgreSQL, and delivers each match as a Standard Webhooks POST (signed,
// retried with backoff, dead-lettered, the attempts logged). Serves the admin API for subscriptions.
import type { Runtime, Service } from '@sluice/runtime';
import type { Config } from './config';
import { createDispatcher } from './dispatcher';
import { SERVICE } from './names';

export { SERVICE };

export function createService(rt: Runtime<Config>): Service {
  const d = createDispatcher(rt);
  return {
    prepare: () => d.prepare(),
    servers: [
      {
        name: 'admin-api',
        start: async () => {
          await d.startAdmin();
        },
        stop: async () => d.api?.close(),
        describe: () => ({ adminPort: d.api?.port }),
      },
    ],
    // The matchers batch; the sender is the actor in per-message mode (one delivery, one slot).
    actors: [d.clean, d.rollups, d.alerts, d.sender],
    close: [{ name: 'stores', stop: () => d.close() }],
    ready: { postgres: async () => (await d.pool.query('SELECT 1')).rowCount === 1 },
  };
}

import { serve, startRuntime } from '@sluice/runtime';
import { config } from './config';
import { createDispatcher } from './dispatcher';
import { SERVICE } from './names';

async function main() {
  const rt = await startRuntime(SERVICE, config);
  const d = createDispatcher(rt);
  await d.prepare();
  const api = await d.startAdmin();
  await serve(rt, {
    // The sender dispatches per message but has the actor surface serve() drives.
    actors: [d.clean, d.rollups, d.sender],
    before: [{ name: 'admin-api', stop: () => api.close() }],
    after: [{ name: 'stores', stop: () => d.close() }],
    ready: { postgres: async () => (await d.pool.query('SELECT 1')).rowCount === 1 },
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

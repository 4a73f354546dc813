import { serve, startRuntime } from '@sluice/runtime';
import { buildCapture, SERVICE } from './capture';
import { config } from './config';

async function main() {
  const rt = await startRuntime(SERVICE, config);
  const capture = buildCapture(rt);
  await capture.prepare();
  const hooks = capture.shutdownHooks();
  await serve(rt, {
    actors: [capture.actor],
    before: hooks.before,
    after: hooks.after,
    ready: { mongodb: async () => (await capture.sink.health()).ok },
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

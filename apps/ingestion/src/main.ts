import { serve, startRuntime } from '@sluice/runtime';
import { config } from './config';
import { buildGateway } from './gateway';

async function main() {
  const rt = await startRuntime('ingestion', config);
  const gateway = await buildGateway(rt);
  await serve(rt, {
    before: [gateway.stoppable],
    ready: { nats_publish: () => gateway.publisher.isConnected },
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

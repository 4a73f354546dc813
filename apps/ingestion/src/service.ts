// The gateway: serves devices over gRPC (`sluice.gateway.v1.Gateway`) and HTTP (`POST /v1/batches`),
// authenticates, validates and rate-limits each batch, and publishes it to the raw stream of its
// region (`<ns>.telemetry.raw.<region>`), acknowledging the device only once JetStream stored it.
// Consumes nothing.
import type { Runtime, Service } from '@sluice/runtime';
import type { Config } from './config';
import { buildGateway, type Gateway } from './gateway';

export const SERVICE = 'ingestion';

export function createService(rt: Runtime<Config>): Service {
  let gateway: Gateway | undefined;
  return {
    servers: [
      {
        name: 'gateway',
        start: async () => {
          gateway = await buildGateway(rt);
        },
        stop: async () => gateway?.stoppable.stop(),
        describe: () => ({ grpcPort: gateway?.grpcPort, httpPort: gateway?.httpPort }),
      },
    ],
    close: [{ name: 'redis', stop: async () => gateway?.close.stop() }],
    ready: { nats_publish: () => gateway?.publisher.isConnected ?? false },
  };
}

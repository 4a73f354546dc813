// The instrumentation preload: loaded by the launcher before the service's own code, so that `pg`,
// `ioredis`, `mongodb`, `@grpc/grpc-js` and `node:http` are patched when the service first requires
// them. It registers no TracerProvider: `startTracing` (called by the runtime once the service has
// parsed its config) registers the one provider of the process, named after the service. The
// instrumentations trace through the global API, so their spans are no-ops until then and real after.
//
//   node --require dist/apps/<app>/preload.js dist/apps/<app>/main.js          (built image)
//   node --import tsx --import ./libs/observability/src/preload.ts <main.ts>  (npm start, tests)
//
// Reads OTEL_SDK_DISABLED (true: instruments nothing), OTEL_EXPORTER_OTLP_ENDPOINT (its requests
// are never traced) and OTEL_NODE_DISABLED_INSTRUMENTATIONS (comma-separated names among http,
// grpc, pg, ioredis, mongodb). Loading it twice registers once.
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { commonEnv, csv, loadConfig, z } from '@sluice/config';
import { createInstrumentations, INSTRUMENTED_LIBRARIES } from './instrumentation';

const REGISTERED = Symbol.for('sluice.observability.preload');
const state = globalThis as { [REGISTERED]?: boolean };

const env = loadConfig(
  z.object({
    OTEL_SDK_DISABLED: commonEnv.OTEL_SDK_DISABLED,
    OTEL_EXPORTER_OTLP_ENDPOINT: commonEnv.OTEL_EXPORTER_OTLP_ENDPOINT,
    /** Libraries not to instrument, comma-separated (`http,grpc,pg,ioredis,mongodb`). Default none. */
    OTEL_NODE_DISABLED_INSTRUMENTATIONS: csv('').refine(
      (names) => names.every((n) => (INSTRUMENTED_LIBRARIES as readonly string[]).includes(n)),
      `must name only ${INSTRUMENTED_LIBRARIES.join(', ')}`,
    ),
  }),
);

if (!env.OTEL_SDK_DISABLED && !state[REGISTERED]) {
  state[REGISTERED] = true;
  registerInstrumentations({
    instrumentations: createInstrumentations({
      otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
      disabled: env.OTEL_NODE_DISABLED_INSTRUMENTATIONS,
    }),
  });
}

import { serve, startRuntime } from '@sluice/runtime';
import { Aggregator, SERVICE } from './aggregator';
import { startApi } from './api';
import { config as configSchema } from './config';

async function main() {
  const rt = await startRuntime(SERVICE, configSchema);
  const { config } = rt;
  const aggregator = new Aggregator({
    nc: rt.nc,
    topology: rt.topology,
    config,
    log: rt.log,
    registry: rt.registry,
  });
  await aggregator.prepare();
  const api = await startApi({
    port: config.AGGREGATOR_API_PORT,
    host: config.AGGREGATOR_API_HOST,
    queries: aggregator.queries,
    resolutions: aggregator.resolutions,
    defaultPoints: config.AGGREGATOR_API_DEFAULT_POINTS,
    maxRangePoints: config.AGGREGATOR_API_MAX_RANGE_POINTS,
    maxPage: config.AGGREGATOR_API_MAX_PAGE,
    log: rt.log,
    metrics: aggregator.metrics,
  });
  rt.log.info({ apiPort: api.port }, 'query API listening');
  await serve(rt, {
    actors: [aggregator.actor],
    before: [
      { name: 'api', stop: () => api.close() },
      { name: 'timers', stop: async () => aggregator.stopTimers() },
    ],
    after: [{ name: 'postgres', stop: () => aggregator.closePool() }],
    ready: { postgres: async () => (await aggregator.pool.query('SELECT 1')).rowCount === 1 },
  });
  aggregator.startTimers();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

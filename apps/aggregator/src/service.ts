// The aggregator: consumes clean telemetry (`<ns>.telemetry.clean.>`), stores event-time roll-ups
// in PostgreSQL (one flush transaction per batch, exactly once per clean message), publishes closed
// windows as Rollup messages (`<ns>.telemetry.rollup.>`) and serves the query API.
import { listenerTls } from '@sluice/config';
import type { Runtime, Service } from '@sluice/runtime';
import { Aggregator, SERVICE } from './aggregator';
import { apiTokens, startApi, type ApiServer } from './api';
import { adminTokens } from './pipeline-admin';
import type { Config } from './config';
import { RollupStream } from './stream';

export { SERVICE };

export function createService(rt: Runtime<Config>): Service {
  const { config } = rt;
  const aggregator = new Aggregator({
    nc: rt.nc,
    topology: rt.topology,
    config,
    log: rt.log,
    registry: rt.registry,
  });
  // Before anything starts: a production service without query API tokens refuses to start, and an
  // unreadable certificate is a ConfigError.
  const tokens = apiTokens(config, rt.log);
  const operators = adminTokens(config, rt.log);
  const tls = listenerTls(config, 'AGGREGATOR_API');
  let api: ApiServer | undefined;
  // GET /v1/stream: one shared ROLLUPS subscription per replica, fanned out to the subscribers.
  const stream = new RollupStream({
    nc: rt.nc,
    topology: rt.topology,
    log: rt.log,
    registry: rt.registry,
    heartbeatMs: config.AGGREGATOR_STREAM_HEARTBEAT,
    maxBufferBytes: config.AGGREGATOR_STREAM_BUFFER_BYTES,
    maxClients: config.AGGREGATOR_STREAM_MAX_CLIENTS,
  });
  return {
    prepare: () => aggregator.prepare(),
    servers: [
      {
        name: 'query-api',
        start: async () => {
          api = await startApi({
            port: config.AGGREGATOR_API_PORT,
            host: config.AGGREGATOR_API_HOST,
            queries: aggregator.queries,
            resolutions: () => aggregator.resolutions,
            defaultPoints: config.AGGREGATOR_API_DEFAULT_POINTS,
            maxRangePoints: config.AGGREGATOR_API_MAX_RANGE_POINTS,
            maxPage: config.AGGREGATOR_API_MAX_PAGE,
            tokens,
            requestTimeoutMs: config.AGGREGATOR_API_REQUEST_TIMEOUT,
            log: rt.log,
            registry: rt.registry,
            tls,
            stream,
            maxStreamClients: config.AGGREGATOR_STREAM_MAX_CLIENTS,
            admin: {
              operators,
              store: aggregator.configStore,
              pipeline: aggregator.pipeline,
              backfills: aggregator.backfills,
            },
          });
        },
        // Subscribers get a shutdown event (with where to resume) before the listener closes.
        stop: async () => {
          await stream.stop();
          await api?.close();
        },
        describe: () => ({ apiPort: api?.port }),
      },
    ],
    actors: aggregator.replayActor
      ? [aggregator.actor, aggregator.replayActor]
      : [aggregator.actor],
    background: [
      {
        name: 'timers',
        start: () => aggregator.startTimers(),
        stop: async () => aggregator.stopTimers(),
      },
    ],
    close: [{ name: 'postgres', stop: () => aggregator.closePool() }],
    ready: { postgres: async () => (await aggregator.pool.query('SELECT 1')).rowCount === 1 },
  };
}

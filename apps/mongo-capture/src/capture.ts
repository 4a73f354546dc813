import type { NatsConnection } from '@nats-io/nats-core';
import type { Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import { SinkRunner } from '@sluice/sinks-core';
import { MongoSink } from '@sluice/sinks-mongodb';
import type { Registry } from 'prom-client';
import type { Config } from './config';

export const SERVICE = 'mongo-capture';

/** The MongoDB sink and its runner on the clean stream, from the parsed config. */
export function buildCapture(deps: {
  config: Config;
  nc: NatsConnection;
  topology: Topology;
  log: Logger;
  registry: Registry;
}): SinkRunner {
  const c = deps.config;
  const sink = new MongoSink({
    name: SERVICE,
    url: c.MONGO_URL,
    urlSetting: 'MONGO_URL',
    database: c.MONGO_DATABASE,
    telemetryCollection: c.MONGO_TELEMETRY_COLLECTION,
    detectionCollection: c.MONGO_DETECTION_COLLECTION,
    writeConcernW: c.MONGO_WRITE_CONCERN,
    writeConcernJournal: c.MONGO_JOURNAL,
    writeConcernTimeoutMs: c.MONGO_WRITE_TIMEOUT,
    ttlDays: c.MONGO_TTL_DAYS,
    timeseries: c.MONGO_TIMESERIES,
    serverSelectionTimeoutMs: c.MONGO_SERVER_SELECTION_TIMEOUT,
  });
  return new SinkRunner({
    sink,
    service: SERVICE,
    nc: deps.nc,
    // Same spec as dedupe's (name + subjects): provisioning from either side is idempotent.
    stream: deps.topology.streams.clean,
    filterSubjects: [deps.topology.filters.clean],
    dlq: { stream: deps.topology.streams.dlq, subject: deps.topology.dlq(SERVICE) },
    durable: c.MONGO_CAPTURE_DURABLE,
    ...(c.MONGO_CAPTURE_REPLAY_TARGET !== 'off'
      ? {
          replay: {
            stream: deps.topology.streams.replay,
            filterSubject: deps.topology.replayFilter(c.MONGO_CAPTURE_REPLAY_TARGET),
          },
        }
      : {}),
    ackWaitMs: c.MONGO_CAPTURE_ACK_WAIT,
    batch: {
      maxMessages: c.MONGO_CAPTURE_BATCH_MESSAGES,
      maxBytes: c.MONGO_CAPTURE_BATCH_BYTES,
      lingerMs: c.MONGO_CAPTURE_LINGER,
    },
    prefetch: { maxBytes: c.MONGO_CAPTURE_PREFETCH_BYTES },
    maxDeliver: c.MONGO_CAPTURE_MAX_DELIVER,
    retry: { budgetMs: c.MONGO_CAPTURE_RETRY_BUDGET },
    logger: deps.log,
    registry: deps.registry,
  });
}

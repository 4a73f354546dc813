import { INGEST_METRICS, METRICS } from '@sluice/observability';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export { INGEST_METRICS };

/** Metrics of the shared (Redis) device rate limit. */
export const RATE_LIMIT_METRICS = {
  /** Gauge: 1 while the shared buckets in Redis decide, 0 while each gateway process decides alone. */
  storeUp: 'sluice_ingest_rate_limit_store_up',
  /** Counter: batches decided by the per-process buckets because Redis could not answer. */
  fallbacks: 'sluice_ingest_rate_limit_fallbacks_total',
  /** Counter: times Redis stopped answering the rate limiter (each starts per-process decisions). */
  outages: 'sluice_ingest_rate_limit_outages_total',
  /** Histogram: one shared rate-limit round trip (one per batch the leases do not cover). */
  roundTrip: 'sluice_ingest_rate_limit_round_trip_seconds',
  /** Counter: batches whose every device was covered by tokens this process had leased (no round trip). */
  leaseHits: 'sluice_ingest_rate_limit_lease_hits_total',
} as const;

export type IngestMetrics = ReturnType<typeof createIngestMetrics>;

export function createIngestMetrics(registry: Registry) {
  return {
    eventsPublished: new Counter({
      name: METRICS.eventsPublished,
      help: 'Events stored in JetStream (acked to devices)',
      labelNames: ['region'],
      registers: [registry],
    }),
    eventsRejected: new Counter({
      name: METRICS.eventsRejected,
      help: 'Events rejected by validation, by field',
      labelNames: ['field'],
      registers: [registry],
    }),
    ackDuration: new Histogram({
      name: METRICS.ingestAckDuration,
      help: 'Batch receipt to ack (or retry answer), seconds',
      labelNames: ['transport', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    inFlightBytes: new Gauge({
      name: METRICS.inFlightBytes,
      help: 'Bytes published and awaiting the JetStream ack',
      registers: [registry],
    }),
    batches: new Counter({
      name: INGEST_METRICS.batches,
      help: 'Batches answered, by transport and status',
      labelNames: ['transport', 'status'],
      registers: [registry],
    }),
    rateLimitStoreUp: new Gauge({
      name: RATE_LIMIT_METRICS.storeUp,
      help: '1 while the device rate limits are shared by the gateway replicas (Redis answers), 0 while they are per process',
      registers: [registry],
    }),
    rateLimitFallbacks: new Counter({
      name: RATE_LIMIT_METRICS.fallbacks,
      help: 'Batches rate-limited by the per-process buckets because Redis could not answer',
      registers: [registry],
    }),
    rateLimitOutages: new Counter({
      name: RATE_LIMIT_METRICS.outages,
      help: 'Times Redis stopped answering the rate limiter (per-process buckets decided until it answered again)',
      registers: [registry],
    }),
    rateLimitRoundTrip: new Histogram({
      name: RATE_LIMIT_METRICS.roundTrip,
      help: 'Shared rate-limit round trip to Redis (one per batch its leases do not cover), seconds',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [registry],
    }),
    rateLimitLeaseHits: new Counter({
      name: RATE_LIMIT_METRICS.leaseHits,
      help: 'Batches decided from tokens this process had leased from the shared buckets, without a Redis round trip',
      registers: [registry],
    }),
    eventsShed: new Counter({
      name: 'sluice_ingest_events_shed_total',
      help: 'Readings the gateway shed itself while overloaded with a full in-flight budget, per sensor tier (never safety)',
      labelNames: ['tier'],
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: INGEST_METRICS.rateLimited,
      help: 'Batches refused by the per-device rate limit',
      registers: [registry],
    }),
    publishFailures: new Counter({
      name: INGEST_METRICS.publishFailures,
      help: 'Publishes answered with a retry, by cause',
      labelNames: ['cause'],
      registers: [registry],
    }),
    openStreams: new Gauge({
      name: INGEST_METRICS.openStreams,
      help: 'Open gRPC Ingest streams',
      registers: [registry],
    }),
    unsentAckBytes: new Gauge({
      name: INGEST_METRICS.unsentAckBytes,
      help: 'Bytes of gRPC acks written but not yet flushed to the devices (all streams)',
      registers: [registry],
    }),
    streamsExhausted: new Counter({
      name: INGEST_METRICS.streamsExhausted,
      help: 'gRPC streams ended with RESOURCE_EXHAUSTED because the device did not read its acks',
      registers: [registry],
    }),
    streamsRefused: new Counter({
      name: INGEST_METRICS.streamsRefused,
      help: 'gRPC Ingest streams refused with RESOURCE_EXHAUSTED: too many open per credential or in all',
      registers: [registry],
    }),
    idempotencyConflicts: new Counter({
      name: INGEST_METRICS.idempotencyConflicts,
      help: 'Batches refused because their batch id / Idempotency-Key was used with other content',
      labelNames: ['transport'],
      registers: [registry],
    }),
    duplicates: new Counter({
      name: INGEST_METRICS.duplicates,
      help: 'Batches answered as duplicates of a stored batch',
      labelNames: ['transport'],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: INGEST_METRICS.authFailures,
      help: 'Requests refused for missing or bad credentials',
      labelNames: ['transport'],
      registers: [registry],
    }),
  };
}

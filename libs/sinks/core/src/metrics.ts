import { SINK_METRICS } from '@sluice/observability';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export { SINK_METRICS };

type L = 'sink';

function getOrCreate<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

/** Per-sink metrics, labelled `sink`; several runners may share one registry. */
export class SinkMetrics {
  readonly writeDuration: Histogram<L>;
  readonly recordsWritten: Counter<L>;
  readonly recordsRejected: Counter<L | 'error_class'>;
  readonly writeErrors: Counter<L | 'retriable'>;
  readonly bufferRecords: Gauge<L>;
  readonly bufferFill: Gauge<L>;
  readonly eventLag: Histogram<L>;
  readonly healthy: Gauge<L>;

  constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = ['sink'] as const;
    this.writeDuration = getOrCreate(
      registry,
      SINK_METRICS.writeDuration,
      () =>
        new Histogram({
          name: SINK_METRICS.writeDuration,
          help: 'Latency of one sink write (one handled batch)',
          labelNames,
          buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
          registers,
        }),
    );
    this.recordsWritten = getOrCreate(
      registry,
      SINK_METRICS.recordsWritten,
      () =>
        new Counter({
          name: SINK_METRICS.recordsWritten,
          help: 'Records stored (or found already stored) by the sink',
          labelNames,
          registers,
        }),
    );
    this.recordsRejected = getOrCreate(
      registry,
      SINK_METRICS.recordsRejected,
      () =>
        new Counter({
          name: SINK_METRICS.recordsRejected,
          help: 'Records the destination refused, sent to the DLQ',
          labelNames: ['sink', 'error_class'],
          registers,
        }),
    );
    this.writeErrors = getOrCreate(
      registry,
      SINK_METRICS.writeErrors,
      () =>
        new Counter({
          name: SINK_METRICS.writeErrors,
          help: 'Failed write attempts',
          labelNames: ['sink', 'retriable'],
          registers,
        }),
    );
    this.bufferRecords = getOrCreate(
      registry,
      SINK_METRICS.bufferRecords,
      () =>
        new Gauge({
          name: SINK_METRICS.bufferRecords,
          help: 'Records in the batch being written',
          labelNames,
          registers,
        }),
    );
    this.bufferFill = getOrCreate(
      registry,
      SINK_METRICS.bufferFill,
      () =>
        new Gauge({
          name: SINK_METRICS.bufferFill,
          help: 'Bytes of the batch being written over the batch byte limit (0..1)',
          labelNames,
          registers,
        }),
    );
    this.eventLag = getOrCreate(
      registry,
      SINK_METRICS.eventLag,
      () =>
        new Histogram({
          name: SINK_METRICS.eventLag,
          help: 'From the clean batch publish (JetStream timestamp) to the record being stored',
          labelNames,
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
          registers,
        }),
    );
    this.healthy = getOrCreate(
      registry,
      SINK_METRICS.healthy,
      () =>
        new Gauge({
          name: SINK_METRICS.healthy,
          help: '1 when the last health check of the destination passed',
          labelNames,
          registers,
        }),
    );
  }
}

import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Metric names of the exporter itself (besides the per-destination `sluice_sink_*`, actor and store
 * metrics its runners report, labelled by destination).
 */
export const EXPORTER_METRICS = {
  reloads: 'sluice_exporter_reloads_total',
  lastReloadSuccessful: 'sluice_exporter_config_last_reload_successful',
  lastReloadTime: 'sluice_exporter_config_last_reload_success_timestamp_seconds',
  destinationUp: 'sluice_exporter_destination_up',
  restarts: 'sluice_exporter_destination_restarts_total',
  filtered: 'sluice_exporter_records_filtered_total',
} as const;

/** Outcome of one reload: the `result` label of {@link EXPORTER_METRICS.reloads}. */
export type ReloadResult = 'applied' | 'unchanged' | 'refused' | 'partial';

function getOrCreate<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

export class ExporterMetrics {
  readonly reloads: Counter<'result'>;
  readonly lastReloadSuccessful: Gauge;
  readonly lastReloadTime: Gauge;
  readonly destinationUp: Gauge<'destination' | 'type'>;
  readonly restarts: Counter<'destination'>;
  readonly filtered: Counter<'destination'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.reloads = getOrCreate(
      registry,
      EXPORTER_METRICS.reloads,
      () =>
        new Counter({
          name: EXPORTER_METRICS.reloads,
          help: 'Reloads of the destinations file by result (applied, unchanged, refused, partial)',
          labelNames: ['result'],
          registers,
        }),
    );
    this.lastReloadSuccessful = getOrCreate(
      registry,
      EXPORTER_METRICS.lastReloadSuccessful,
      () =>
        new Gauge({
          name: EXPORTER_METRICS.lastReloadSuccessful,
          help: '1 when the last load of the destinations file was valid and applied, 0 when it was refused',
          registers,
        }),
    );
    this.lastReloadTime = getOrCreate(
      registry,
      EXPORTER_METRICS.lastReloadTime,
      () =>
        new Gauge({
          name: EXPORTER_METRICS.lastReloadTime,
          help: 'When the destinations file was last loaded and applied (Unix time)',
          registers,
        }),
    );
    this.destinationUp = getOrCreate(
      registry,
      EXPORTER_METRICS.destinationUp,
      () =>
        new Gauge({
          name: EXPORTER_METRICS.destinationUp,
          help: '1 while the destination runs (its destination may still be down: see sluice_sink_healthy), 0 while it failed and waits for a restart',
          labelNames: ['destination', 'type'],
          registers,
        }),
    );
    this.restarts = getOrCreate(
      registry,
      EXPORTER_METRICS.restarts,
      () =>
        new Counter({
          name: EXPORTER_METRICS.restarts,
          help: 'Restarts of a destination after it failed',
          labelNames: ['destination'],
          registers,
        }),
    );
    this.filtered = getOrCreate(
      registry,
      EXPORTER_METRICS.filtered,
      () =>
        new Counter({
          name: EXPORTER_METRICS.filtered,
          help: 'Records the destination filters left out (acked, not written)',
          labelNames: ['destination'],
          registers,
        }),
    );
  }
}

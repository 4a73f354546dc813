import { AGGREGATOR_METRICS } from '@sluice/observability';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export { AGGREGATOR_METRICS };

export class AggregatorMetrics {
  /** kind: aggregated | detection | invalid | expired */
  readonly events: Counter<'kind'>;
  readonly lateEvents: Counter<'resolution'>;
  /** outcome: applied | already_applied */
  readonly messages: Counter<'outcome'>;
  readonly flushDuration: Histogram;
  readonly flushRetries: Counter;
  /** kind: closed | revision */
  readonly windowsClosed: Counter<'resolution' | 'kind'>;
  readonly rollupsPublished: Counter<'resolution'>;
  /** kind: full (from the partition start) | bounded (from where the last pass finished) */
  readonly closerPasses: Counter<'kind'>;
  readonly partitionsDropped: Counter;
  /** Clean publish → committed to the roll-ups, per newly applied message with readings. */
  readonly visible: Histogram;
  /** Version of the pipeline configuration served (0: the environment's, before PostgreSQL was read). */
  readonly configVersion: Gauge;

  constructor(registry: Registry) {
    const M = AGGREGATOR_METRICS;
    this.events = new Counter({
      name: M.events,
      help: 'Events seen by the aggregator, by kind',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.lateEvents = new Counter({
      name: M.lateEvents,
      help: 'Readings merged into windows the watermark had passed',
      labelNames: ['resolution'],
      registers: [registry],
    });
    this.messages = new Counter({
      name: M.messages,
      help: 'Clean messages flushed, by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.flushDuration = new Histogram({
      name: M.flushDuration,
      help: 'Flush transaction duration',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    this.flushRetries = new Counter({
      name: M.flushRetries,
      help: 'Flush attempts repeated after a transient store error',
      registers: [registry],
    });
    this.windowsClosed = new Counter({
      name: M.windowsClosed,
      help: 'Windows closed or revised',
      labelNames: ['resolution', 'kind'],
      registers: [registry],
    });
    this.rollupsPublished = new Counter({
      name: M.rollupsPublished,
      help: 'Rollup messages published',
      labelNames: ['resolution'],
      registers: [registry],
    });
    this.closerPasses = new Counter({
      name: M.closerPasses,
      help: 'Window closer passes: full, or bounded to windows after those the previous pass closed',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.partitionsDropped = new Counter({
      name: M.partitionsDropped,
      help: 'Roll-up partitions dropped by retention',
      registers: [registry],
    });
    this.visible = new Histogram({
      name: M.visible,
      help: 'From the clean batch publish (JetStream timestamp) to its readings committed to the roll-ups (visible in the query API)',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300],
      registers: [registry],
    });
    this.configVersion = new Gauge({
      name: M.configVersion,
      help: 'Version of the live pipeline configuration (resolutions, retention, derived series) this replica serves',
      registers: [registry],
    });
  }
}

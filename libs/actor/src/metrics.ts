import { METRICS } from '@sluice/observability';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

type L = 'service' | 'stream' | 'consumer';

const byRegistry = new WeakMap<Registry, ActorMetrics>();

/** The metrics every actor exports, labelled by service, stream and consumer. */
export class ActorMetrics {
  /** One set per registry: several actors of a service share it and differ by labels. */
  static for(registry: Registry): ActorMetrics {
    let m = byRegistry.get(registry);
    if (!m) {
      m = new ActorMetrics(registry);
      byRegistry.set(registry, m);
    }
    return m;
  }

  readonly processed: Counter<L>;
  readonly retried: Counter<L>;
  readonly deadLettered: Counter<L | 'error_class'>;
  readonly failed: Counter<L>;
  readonly handlerDuration: Histogram<L>;
  readonly batchSize: Histogram<L>;
  readonly inFlightBytes: Gauge<L>;
  readonly pending: Gauge<L>;
  readonly ackPending: Gauge<L>;
  readonly redelivered: Gauge<L>;
  readonly repulls: Counter<L>;
  readonly state: Gauge<L>;

  private constructor(registry: Registry) {
    const labelNames = ['service', 'stream', 'consumer'] as const;
    const registers = [registry];
    this.processed = new Counter({
      name: METRICS.messagesProcessed,
      help: 'Messages acknowledged after processing',
      labelNames,
      registers,
    });
    this.retried = new Counter({
      name: METRICS.messagesRetried,
      help: 'Messages handed back for redelivery (nak with delay)',
      labelNames,
      registers,
    });
    this.deadLettered = new Counter({
      name: METRICS.messagesDeadLettered,
      help: 'Messages moved to the DLQ',
      labelNames: [...labelNames, 'error_class'],
      registers,
    });
    this.repulls = new Counter({
      name: METRICS.consumerRepulls,
      help: 'Pulls renewed after the server refused one as smaller than the next message (409)',
      labelNames,
      registers,
    });
    this.failed = new Counter({
      name: METRICS.messagesFailed,
      help: 'Batches whose handler threw',
      labelNames,
      registers,
    });
    this.handlerDuration = new Histogram({
      name: METRICS.handlerDuration,
      help: 'Batch handler latency',
      labelNames,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.batchSize = new Histogram({
      name: METRICS.batchSize,
      help: 'Messages per handled batch',
      labelNames,
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers,
    });
    this.inFlightBytes = new Gauge({
      name: METRICS.inFlightBytes,
      help: 'Payload bytes held by the actor',
      labelNames,
      registers,
    });
    this.pending = new Gauge({
      name: METRICS.consumerPending,
      help: 'Messages in the stream not yet delivered to the consumer (lag)',
      labelNames,
      registers,
    });
    this.ackPending = new Gauge({
      name: METRICS.consumerAckPending,
      help: 'Delivered messages awaiting acknowledgement',
      labelNames,
      registers,
    });
    this.redelivered = new Gauge({
      name: METRICS.consumerRedelivered,
      help: 'Messages currently being redelivered',
      labelNames,
      registers,
    });
    this.state = new Gauge({
      name: METRICS.lifecycleState,
      help: '0 starting, 1 running, 2 draining, 3 stopped, 4 failed',
      labelNames,
      registers,
    });
  }
}

import { METRICS } from '@sluice/observability';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The metrics every actor exports, labelled by service and consumer. */
export class ActorMetrics {
  readonly processed: Counter<'service' | 'consumer'>;
  readonly retried: Counter<'service' | 'consumer'>;
  readonly deadLettered: Counter<'service' | 'consumer' | 'error_class'>;
  readonly failed: Counter<'service' | 'consumer'>;
  readonly handlerDuration: Histogram<'service' | 'consumer'>;
  readonly batchSize: Histogram<'service' | 'consumer'>;
  readonly inFlightBytes: Gauge<'service' | 'consumer'>;
  readonly pending: Gauge<'service' | 'consumer'>;
  readonly ackPending: Gauge<'service' | 'consumer'>;
  readonly redelivered: Gauge<'service' | 'consumer'>;
  readonly state: Gauge<'service' | 'consumer'>;

  constructor(registry: Registry) {
    const labelNames = ['service', 'consumer'] as const;
    const registers = [registry];
    this.processed = new Counter({ name: METRICS.messagesProcessed, help: 'Messages acknowledged after processing', labelNames, registers });
    this.retried = new Counter({ name: METRICS.messagesRetried, help: 'Messages handed back for redelivery (nak with delay)', labelNames, registers });
    this.deadLettered = new Counter({ name: METRICS.messagesDeadLettered, help: 'Messages moved to the DLQ', labelNames: [...labelNames, 'error_class'], registers });
    this.failed = new Counter({ name: METRICS.messagesFailed, help: 'Batches whose handler threw', labelNames, registers });
    this.handlerDuration = new Histogram({
      name: METRICS.handlerDuration,
      help: 'Batch handler latency',
      labelNames,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.batchSize = new Histogram({ name: METRICS.batchSize, help: 'Messages per handled batch', labelNames, buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000], registers });
    this.inFlightBytes = new Gauge({ name: METRICS.inFlightBytes, help: 'Payload bytes held by the actor', labelNames, registers });
    this.pending = new Gauge({ name: METRICS.consumerPending, help: 'Messages in the stream not yet delivered to the consumer (lag)', labelNames, registers });
    this.ackPending = new Gauge({ name: METRICS.consumerAckPending, help: 'Delivered messages awaiting acknowledgement', labelNames, registers });
    this.redelivered = new Gauge({ name: METRICS.consumerRedelivered, help: 'Messages currently being redelivered', labelNames, registers });
    this.state = new Gauge({ name: METRICS.lifecycleState, help: '0 starting, 1 running, 2 draining, 3 stopped, 4 failed', labelNames, registers });
  }
}

import { DEDUPE_METRICS, METRICS } from '@sluice/observability';
import { Counter, Histogram, type Registry } from 'prom-client';

export { DEDUPE_METRICS };

/** What dedupe exports besides the actor metrics. */
export class DedupeMetrics {
  /** Claims that kept an event: `result` = `new` or `ours` (a redelivery). */
  readonly claims: Counter<'result'>;
  /** Events dropped: `reason` = `claimed` (another raw message owns it) or `in_message` (repeated in one message). */
  readonly duplicates: Counter<'reason'>;
  /** One observation per Redis round trip (a whole batch); `outcome` = `ok` or `error`. */
  readonly redisDuration: Histogram<'outcome'>;
  /** Events published unclaimed because Redis was down and DEDUPE_ON_REDIS_DOWN=pass. */
  readonly passThrough: Counter;
  /** Events per raw message (after removing repeats within it). */
  readonly messageEvents: Histogram;
  /** Events published to the clean stream. */
  readonly eventsPublished: Counter;
  /** Clean messages published (at most one per raw message). */
  readonly cleanMessages: Counter;
  /** Re-seeds of the claims from the clean stream: `reason` (missing, restarted, evicted), `outcome` (committed, changed, aborted, failed). */
  readonly reseeds: Counter<'reason' | 'outcome'>;
  /** Claims written by committed re-seeds. */
  readonly reseedClaims: Counter;
  /** Clean messages read by committed re-seeds. */
  readonly reseedMessages: Counter;
  /** Time spent in committed re-seeds (claims/s = reseed_claims_total / this). */
  readonly reseedSeconds: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.claims = new Counter({
      name: METRICS.dedupeClaims,
      help: 'Event claims that kept the event (new, or ours on a redelivery)',
      labelNames: ['result'],
      registers,
    });
    this.duplicates = new Counter({
      name: METRICS.dedupeDuplicates,
      help: 'Duplicate events dropped',
      labelNames: ['reason'],
      registers,
    });
    this.redisDuration = new Histogram({
      name: METRICS.dedupeRedisDuration,
      help: 'Latency of one Redis claim round trip (a whole batch)',
      labelNames: ['outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.passThrough = new Counter({
      name: METRICS.dedupePassThrough,
      help: 'Events published without a claim while Redis was down (DEDUPE_ON_REDIS_DOWN=pass)',
      registers,
    });
    this.messageEvents = new Histogram({
      name: DEDUPE_METRICS.batchEvents,
      help: 'Distinct events per raw message',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers,
    });
    this.eventsPublished = new Counter({
      name: METRICS.eventsPublished,
      help: 'Events published to the clean stream',
      registers,
    });
    this.cleanMessages = new Counter({
      name: DEDUPE_METRICS.cleanMessages,
      help: 'Clean batches published',
      registers,
    });
    this.reseeds = new Counter({
      name: DEDUPE_METRICS.reseeds,
      help: 'Re-seeds of the Redis claims from the clean stream',
      labelNames: ['reason', 'outcome'],
      registers,
    });
    this.reseedClaims = new Counter({
      name: DEDUPE_METRICS.reseedClaims,
      help: 'Claims written by committed re-seeds',
      registers,
    });
    this.reseedMessages = new Counter({
      name: DEDUPE_METRICS.reseedMessages,
      help: 'Clean messages read by committed re-seeds',
      registers,
    });
    this.reseedSeconds = new Counter({
      name: DEDUPE_METRICS.reseedSeconds,
      help: 'Seconds spent in committed re-seeds',
      registers,
    });
  }
}

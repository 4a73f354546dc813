import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DROP_REASONS, PRIORITIES } from './priority';

/** The device SDK's metric names (every one labelled `client`). */
export const DEVICE_SDK_METRICS = {
  queued: 'sluice_sdk_events_queued_total',
  sent: 'sluice_sdk_events_sent_total',
  acked: 'sluice_sdk_events_acked_total',
  dropped: 'sluice_sdk_events_dropped_total',
  retries: 'sluice_sdk_batch_retries_total',
  connects: 'sluice_sdk_stream_connects_total',
  batchAckDuration: 'sluice_sdk_batch_ack_duration_seconds',
  bufferEvents: 'sluice_sdk_buffer_events',
  bufferBytes: 'sluice_sdk_buffer_bytes',
  connected: 'sluice_sdk_connected',
} as const;

/** Why a batch was sent again. */
export const RETRY_CAUSES = ['retry_ack', 'stream_failed', 'ack_timeout'] as const;
export type RetryCause = (typeof RETRY_CAUSES)[number];

/** Plain counters of one client, read at scrape time (emit() only bumps numbers). */
export interface CounterSource {
  readonly name: string;
  /** Per class index (0 = safety): events accepted by emit(). */
  readonly queued: number[];
  /** Per class: event transmissions (a resend counts again). */
  readonly sent: number[];
  /** Per class: events the gateway stored (or had stored: duplicate acks). */
  readonly acked: number[];
  /** Per class, per drop reason (index into DROP_REASONS). */
  readonly dropped: number[][];
  readonly retries: Record<RetryCause, number>;
  readonly connects: number;
  bufferByClass(): number[];
  readonly bufferBytes: number;
  readonly connected: boolean;
}

const byRegistry = new WeakMap<Registry, SdkMetrics>();

/**
 * The SDK's metrics on one registry, shared by every client registered on it. Counters are copied
 * from each client's plain counters when the registry is scraped, so emit() pays nothing for them.
 */
export class SdkMetrics {
  static for(registry: Registry): SdkMetrics {
    let m = byRegistry.get(registry);
    if (!m) {
      m = new SdkMetrics(registry);
      byRegistry.set(registry, m);
    }
    return m;
  }

  private readonly sources = new Set<CounterSource>();
  readonly batchAckDuration: Histogram<'client'>;

  private constructor(registry: Registry) {
    const registers = [registry];
    const sources = this.sources;
    const perPriority = (
      name: string,
      help: string,
      pick: (s: CounterSource) => number[],
    ): Counter<'client' | 'priority'> =>
      new Counter({
        name,
        help,
        labelNames: ['client', 'priority'],
        registers,
        collect() {
          this.reset();
          for (const s of sources) {
            const v = pick(s);
            PRIORITIES.forEach((priority, i) => this.inc({ client: s.name, priority }, v[i]!));
          }
        },
      });
    perPriority(DEVICE_SDK_METRICS.queued, 'Events accepted by emit()', (s) => s.queued);
    perPriority(
      DEVICE_SDK_METRICS.sent,
      'Events written to the gateway (resends count again)',
      (s) => s.sent,
    );
    perPriority(DEVICE_SDK_METRICS.acked, 'Events the gateway acknowledged', (s) => s.acked);
    new Counter({
      name: DEVICE_SDK_METRICS.dropped,
      help: 'Events that left the buffer unacknowledged, by priority and reason',
      labelNames: ['client', 'priority', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const s of sources)
          PRIORITIES.forEach((priority, c) =>
            DROP_REASONS.forEach((reason, r) => {
              const n = s.dropped[c]![r]!;
              if (n > 0) this.inc({ client: s.name, priority, reason }, n);
            }),
          );
      },
    });
    new Counter({
      name: DEVICE_SDK_METRICS.retries,
      help: 'Batches sent again, by cause',
      labelNames: ['client', 'cause'],
      registers,
      collect() {
        this.reset();
        for (const s of sources)
          for (const cause of RETRY_CAUSES) this.inc({ client: s.name, cause }, s.retries[cause]);
      },
    });
    new Counter({
      name: DEVICE_SDK_METRICS.connects,
      help: 'Ingest streams opened',
      labelNames: ['client'],
      registers,
      collect() {
        this.reset();
        for (const s of sources) this.inc({ client: s.name }, s.connects);
      },
    });
    new Gauge({
      name: DEVICE_SDK_METRICS.bufferEvents,
      help: 'Events held (queued, awaiting a resend or in flight)',
      labelNames: ['client', 'priority'],
      registers,
      collect() {
        this.reset();
        for (const s of sources) {
          const v = s.bufferByClass();
          PRIORITIES.forEach((priority, i) => this.set({ client: s.name, priority }, v[i]!));
        }
      },
    });
    new Gauge({
      name: DEVICE_SDK_METRICS.bufferBytes,
      help: 'Estimated encoded bytes held',
      labelNames: ['client'],
      registers,
      collect() {
        this.reset();
        for (const s of sources) this.set({ client: s.name }, s.bufferBytes);
      },
    });
    new Gauge({
      name: DEVICE_SDK_METRICS.connected,
      help: '1 while an Ingest stream is open and has answered',
      labelNames: ['client'],
      registers,
      collect() {
        this.reset();
        for (const s of sources) this.set({ client: s.name }, s.connected ? 1 : 0);
      },
    });
    this.batchAckDuration = new Histogram({
      name: DEVICE_SDK_METRICS.batchAckDuration,
      help: 'From writing a batch to its ack',
      labelNames: ['client'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
  }

  attach(source: CounterSource): void {
    this.sources.add(source);
  }

  detach(source: CounterSource): void {
    this.sources.delete(source);
  }
}

/** A registry of its own for a client created without one. */
export function privateRegistry(): Registry {
  return new Registry();
}

// The matcher: consumes clean telemetry and roll-ups, applies every enabled subscription's filter
// and publishes one delivery message per (event, subscription) with Nats-Msg-Id = webhook-id, then
// acks the source message. A crash in between republishes the same ids, which the stream drops.
import type { NatsConnection } from '@nats-io/nats-core';
import type { Context } from '@opentelemetry/api';
import { Actor, Outcomes, type Delivery, type Outcome } from '@sluice/actor';
import { AsyncPublisher } from '@sluice/jetstream';
import {
  alertsTopology,
  decodeAlert,
  decodeBatch,
  decodeRollup,
  type Alert,
  type EventBatch,
  type Rollup,
  type Topology,
} from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import { Counter, type Registry } from 'prom-client';
import {
  CONTENT_TYPE_DELIVERY,
  deliveryMsgId,
  encodeDelivery,
  type DeliveryMessage,
} from './delivery';
import { ConsecutiveRuns, type RunObservation } from './consecutive';
import {
  ConsecutiveState,
  holds,
  inTelemetryScope,
  matchesAlert,
  matchesRollup,
  matchesTelemetry,
  matchingDetections,
} from './filters';
import { alertsDurable, CONSUMERS, SERVICE, WEBHOOK_METRICS, type WebhookTopology } from './names';
import {
  alertBody,
  detectionBody,
  rollupEventId,
  thresholdBody,
  windowClosedBody,
  type WebhookBody,
} from './payloads';
import { webhookId } from './signing';
import type { SubscriptionCache } from './subscription-cache';

export interface MatcherOptions {
  nc: NatsConnection;
  topology: Topology;
  webhooks: WebhookTopology;
  cache: SubscriptionCache;
  logger: Logger;
  registry: Registry;
  /** Where new matcher consumers start. Default `new`. */
  startFrom?: 'new' | 'all';
  /** (subscription, device, sensor) run counters kept in memory (without `runs`). Default 100 000. */
  consecutiveStateMax?: number;
  /** Counter of consecutive runs (shared by the replicas or not). Default: per process. */
  runs?: ConsecutiveRuns;
  /** Shared publisher (closed by its owner). Default: one of its own. */
  publisher?: DeliveryPublisher;
}

/**
 * Publishes deliveries; shared by the matcher, the test endpoint and DLQ redrive. Resolves once the
 * deliveries stream acknowledged the message (stored, or dropped as a duplicate of the same id).
 */
export class DeliveryPublisher {
  private readonly publisher: AsyncPublisher;

  constructor(
    nc: NatsConnection,
    private readonly webhooks: WebhookTopology,
  ) {
    this.publisher = new AsyncPublisher(nc);
  }

  publish(d: DeliveryMessage, context?: Context): Promise<void> {
    return this.publisher.publish(this.webhooks.delivery(d.subscriptionId), encodeDelivery(d), {
      msgId: deliveryMsgId(d),
      contentType: CONTENT_TYPE_DELIVERY,
      expectStream: this.webhooks.deliveriesStream.name,
      ...(context ? { context } : {}),
    });
  }

  /** Unsubscribes the ack inbox and fails what is still pending (the deliveries come back). */
  close(): void {
    this.publisher.close();
  }
}

export function newDelivery(
  subscriptionId: string,
  sourceEventId: string,
  body: WebhookBody,
): DeliveryMessage {
  return {
    v: 1,
    webhookId: webhookId(sourceEventId, subscriptionId),
    subscriptionId,
    type: body.type,
    body: JSON.stringify(body),
    generation: 0,
    createdAt: new Date().toISOString(),
  };
}

export function createMatchers(opts: MatcherOptions): {
  clean: Actor<EventBatch>;
  rollups: Actor<Rollup>;
  alerts: Actor<Alert>;
  runs: ConsecutiveRuns;
} {
  const publisher = opts.publisher ?? new DeliveryPublisher(opts.nc, opts.webhooks);
  const runs =
    opts.runs ??
    new ConsecutiveRuns({
      local: new ConsecutiveState(opts.consecutiveStateMax ?? 100_000),
      registry: opts.registry,
    });
  const matched = new Counter({
    name: WEBHOOK_METRICS.matched,
    help: 'Deliveries created by matching, by event type',
    labelNames: ['type'],
    registers: [opts.registry],
  });
  const dlq = { stream: opts.topology.streams.dlq, subject: opts.topology.dlq(SERVICE) };

  /** Publishes each message's deliveries; a message is acked only when all of its deliveries are durable. */
  async function settle<T>(
    batch: ReadonlyArray<Delivery<T>>,
    perMessage: DeliveryMessage[][],
  ): Promise<Outcome[]> {
    return Promise.all(
      perMessage.map(async (deliveries, i) => {
        try {
          await Promise.all(deliveries.map((d) => publisher.publish(d, batch[i]!.context)));
          for (const d of deliveries) matched.inc({ type: d.type });
          return Outcomes.ack();
        } catch (err) {
          return Outcomes.retry(err as Error);
        }
      }),
    );
  }

  const clean = new Actor<EventBatch>({
    service: SERVICE,
    nc: opts.nc,
    stream: opts.topology.streams.clean,
    consumer: {
      durable: CONSUMERS.clean,
      filterSubjects: [opts.topology.filters.clean],
      deliverPolicy: opts.startFrom ?? 'new',
    },
    dlq,
    decode: (m) => decodeBatch(m.data),
    batch: { maxMessages: 128 },
    logger: opts.logger,
    registry: opts.registry,
    handle: async (batch) => {
      const snap = opts.cache.snapshot;
      // Readings of `consecutive` subscriptions, counted for the whole batch in one call.
      const observed: RunObservation[] = [];
      const observedIn: number[] = [];
      const perMessage = batch.map((d, m) => {
        const out: DeliveryMessage[] = [];
        if (snap.telemetry.length === 0 && snap.detection.length === 0) return out;
        const events = d.value.events;
        for (let index = 0; index < events.length; index++) {
          const ev = events[index]!;
          if (ev.kind?.$case === 'telemetry') {
            const e = ev.kind.value;
            for (const sub of snap.telemetry) {
              if (sub.filter.consecutive <= 1) {
                if (matchesTelemetry(sub.filter, e))
                  out.push(newDelivery(sub.id, e.eventId, thresholdBody(sub.id, e, 1)));
              } else if (inTelemetryScope(sub.filter, e)) {
                observed.push({
                  subscriptionId: sub.id,
                  event: e,
                  matched: holds(sub.filter.value, e.value),
                  n: sub.filter.consecutive,
                  seq: d.seq,
                  index,
                });
                observedIn.push(m);
              }
            }
          } else if (ev.kind?.$case === 'detection') {
            const e = ev.kind.value;
            for (const sub of snap.detection) {
              const hits = matchingDetections(sub.filter, e);
              if (hits.length > 0)
                out.push(newDelivery(sub.id, e.eventId, detectionBody(sub.id, e, hits)));
            }
          }
        }
        return out;
      });
      if (observed.length > 0) {
        const fired = await runs.observe(observed);
        for (let k = 0; k < observed.length; k++) {
          const run = fired[k]!;
          if (run <= 0) continue;
          const { subscriptionId: id, event: e } = observed[k]!;
          perMessage[observedIn[k]!]!.push(newDelivery(id, e.eventId, thresholdBody(id, e, run)));
        }
      }
      return settle(batch, perMessage);
    },
  });

  const rollups = new Actor<Rollup>({
    service: SERVICE,
    nc: opts.nc,
    stream: opts.topology.streams.rollups,
    consumer: {
      durable: CONSUMERS.rollups,
      filterSubjects: [opts.topology.filters.rollup],
      deliverPolicy: opts.startFrom ?? 'new',
    },
    dlq,
    decode: (m) => decodeRollup(m.data),
    logger: opts.logger,
    registry: opts.registry,
    handle: async (batch) => {
      const snap = opts.cache.snapshot;
      const perMessage = batch.map((d) => {
        const r = d.value;
        return snap.rollup
          .filter((sub) => matchesRollup(sub.filter, r))
          .map((sub) => newDelivery(sub.id, rollupEventId(r), windowClosedBody(sub.id, r)));
      });
      return settle(batch, perMessage);
    },
  });

  // Alerts of the watch service: webhook-id from the alert id, so a re-raised alert is one delivery.
  const alertTopo = alertsTopology(opts.topology.namespace);
  const alerts = new Actor<Alert>({
    service: SERVICE,
    nc: opts.nc,
    stream: alertTopo.stream,
    consumer: {
      // ALERTS is one stream for every region: each regional deployment's dispatchers keep their own.
      durable: alertsDurable(opts.topology.region),
      filterSubjects: [alertTopo.filter(opts.topology.region)],
      deliverPolicy: opts.startFrom ?? 'new',
    },
    dlq,
    decode: (m) => decodeAlert(m.data),
    logger: opts.logger,
    registry: opts.registry,
    handle: async (batch) => {
      const snap = opts.cache.snapshot;
      const perMessage = batch.map((d) =>
        snap.alert
          .filter((sub) => matchesAlert(sub.filter, d.value))
          .map((sub) => newDelivery(sub.id, d.value.id, alertBody(sub.id, d.value))),
      );
      return settle(batch, perMessage);
    },
  });

  return { clean, rollups, alerts, runs };
}

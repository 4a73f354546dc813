// The matcher: consumes clean telemetry and roll-ups, applies every enabled subscription's filter
// and publishes one delivery message per (event, subscription) with Nats-Msg-Id = webhook-id, then
// acks the source message. A crash in between republishes the same ids, which the stream drops.
import { JetStreamApiError } from '@nats-io/jetstream';
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import type { Context } from '@opentelemetry/api';
import { Actor, messageHeaders, Outcomes, type Delivery, type Outcome } from '@sluice/actor';
import { decodeBatch, decodeRollup, type EventBatch, type Rollup, type Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import { Counter, type Registry } from 'prom-client';
import { CONTENT_TYPE_DELIVERY, deliveryMsgId, encodeDelivery, type DeliveryMessage } from './delivery';
import { ConsecutiveState, matchesRollup, matchesTelemetry, matchingDetections } from './filters';
import { CONSUMERS, SERVICE, WEBHOOK_METRICS, type WebhookTopology } from './names';
import { detectionBody, rollupEventId, thresholdBody, windowClosedBody, type WebhookBody } from './payloads';
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
  /** (subscription, device, sensor) run counters kept. Default 100 000. */
  consecutiveStateMax?: number;
  /** Shared publisher (closed by its owner). Default: one of its own. */
  publisher?: DeliveryPublisher;
}

const PUB_ACK_TIMEOUT_MS = 5_000;

interface PendingAck {
  resolve: () => void;
  reject: (err: Error) => void;
  deadline: number;
}

/**
 * Publishes deliveries; shared by the matcher, the test endpoint and DLQ redrive. Resolves once the
 * deliveries stream acknowledged the message (stored, or dropped as a duplicate of the same id).
 *
 * JetStream "async publish": a plain PUB with a reply subject under one inbox subscription, settled
 * when the PubAck arrives, with one timer for all timeouts. `js.publish` is a request per message,
 * and nats.js builds two Errors (async stack traces) and a timer for every request: about 15 % of the
 * dispatcher's CPU per delivery. Same headers and checks as `publishDurable` (msg id, content type,
 * trace context, expected stream).
 */
export class DeliveryPublisher {
  private readonly inbox = createInbox();
  private sub: Subscription | undefined;
  private readonly pending = new Map<string, PendingAck>();
  private seq = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly webhooks: WebhookTopology,
  ) {}

  publish(d: DeliveryMessage, context?: Context): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      try {
        const h = messageHeaders({ msgId: deliveryMsgId(d), contentType: CONTENT_TYPE_DELIVERY, ...(context ? { context } : {}) });
        h.set('Nats-Expected-Stream', this.webhooks.deliveriesStream.name);
        this.sub ??= this.nc.subscribe(`${this.inbox}.*`, { callback: (err, m) => this.onAck(err, m) });
        const token = (++this.seq).toString(36);
        this.pending.set(token, { resolve, reject, deadline: Date.now() + PUB_ACK_TIMEOUT_MS });
        if (!this.sweeper) {
          this.sweeper = setInterval(() => this.sweep(), 1_000);
          this.sweeper.unref();
        }
        try {
          this.nc.publish(this.webhooks.delivery(d.subscriptionId), encodeDelivery(d), { reply: `${this.inbox}.${token}`, headers: h });
        } catch (err) {
          this.pending.delete(token);
          throw err;
        }
      } catch (err) {
        reject(err as Error);
      }
    });
  }

  private onAck(err: Error | null, m: Msg): void {
    if (err) {
      // The inbox subscription itself failed (closed, permissions): nothing pending can settle.
      this.failAll(err);
      this.sub = undefined;
      return;
    }
    const token = m.subject.slice(this.inbox.length + 1);
    const p = this.pending.get(token);
    if (!p) return; // timed out already
    this.pending.delete(token);
    let ack: { stream?: unknown; error?: unknown };
    try {
      ack = JSON.parse(m.string()) as typeof ack;
    } catch {
      // e.g. a 503 "no responders" status message: no stream took the message.
      const status = m.headers?.code ? ` (status ${m.headers.code} ${m.headers.description})` : '';
      p.reject(new Error(`deliveries stream did not acknowledge the publish${status}`));
      return;
    }
    if (ack.error) p.reject(new JetStreamApiError(ack.error as ConstructorParameters<typeof JetStreamApiError>[0]));
    else if (typeof ack.stream !== 'string' || ack.stream === '') p.reject(new Error('invalid JetStream publish ack'));
    else p.resolve();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [token, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(token);
        p.reject(new Error(`no JetStream publish ack within ${PUB_ACK_TIMEOUT_MS} ms`));
      }
    }
    if (this.pending.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Unsubscribes the ack inbox and fails what is still pending (the deliveries come back). */
  close(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.failAll(new Error('delivery publisher closed'));
    this.sub?.unsubscribe();
    this.sub = undefined;
  }
}

export function newDelivery(subscriptionId: string, sourceEventId: string, body: WebhookBody): DeliveryMessage {
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

export function createMatchers(opts: MatcherOptions): { clean: Actor<EventBatch>; rollups: Actor<Rollup>; consecutive: ConsecutiveState } {
  const publisher = opts.publisher ?? new DeliveryPublisher(opts.nc, opts.webhooks);
  const consecutive = new ConsecutiveState(opts.consecutiveStateMax ?? 100_000);
  const matched = new Counter({ name: WEBHOOK_METRICS.matched, help: 'Deliveries created by matching, by event type', labelNames: ['type'], registers: [opts.registry] });
  const dlq = { stream: opts.topology.streams.dlq, subject: opts.topology.dlq(SERVICE) };

  /** Publishes each message's deliveries; a message is acked only when all of its deliveries are durable. */
  async function settle<T>(batch: ReadonlyArray<Delivery<T>>, perMessage: DeliveryMessage[][]): Promise<Outcome[]> {
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
    consumer: { durable: CONSUMERS.clean, filterSubjects: [opts.topology.filters.clean], deliverPolicy: opts.startFrom ?? 'new' },
    dlq,
    decode: (m) => decodeBatch(m.data),
    batch: { maxMessages: 128 },
    logger: opts.logger,
    registry: opts.registry,
    handle: async (batch) => {
      const snap = opts.cache.snapshot;
      const perMessage = batch.map((d) => {
        const out: DeliveryMessage[] = [];
        if (snap.telemetry.length === 0 && snap.detection.length === 0) return out;
        for (const ev of d.value.events) {
          if (ev.kind?.$case === 'telemetry') {
            const e = ev.kind.value;
            for (const sub of snap.telemetry) {
              const ok = matchesTelemetry(sub.filter, e);
              if (sub.filter.consecutive <= 1) {
                if (ok) out.push(newDelivery(sub.id, e.eventId, thresholdBody(sub.id, e, 1)));
                continue;
              }
              const run = consecutive.observe(sub.id, e, ok, sub.filter.consecutive);
              if (run > 0) out.push(newDelivery(sub.id, e.eventId, thresholdBody(sub.id, e, run)));
            }
          } else if (ev.kind?.$case === 'detection') {
            const e = ev.kind.value;
            for (const sub of snap.detection) {
              const hits = matchingDetections(sub.filter, e);
              if (hits.length > 0) out.push(newDelivery(sub.id, e.eventId, detectionBody(sub.id, e, hits)));
            }
          }
        }
        return out;
      });
      return settle(batch, perMessage);
    },
  });

  const rollups = new Actor<Rollup>({
    service: SERVICE,
    nc: opts.nc,
    stream: opts.topology.streams.rollups,
    consumer: { durable: CONSUMERS.rollups, filterSubjects: [opts.topology.filters.rollup], deliverPolicy: opts.startFrom ?? 'new' },
    dlq,
    decode: (m) => decodeRollup(m.data),
    logger: opts.logger,
    registry: opts.registry,
    handle: async (batch) => {
      const snap = opts.cache.snapshot;
      const perMessage = batch.map((d) => {
        const r = d.value;
        return snap.rollup.filter((sub) => matchesRollup(sub.filter, r)).map((sub) => newDelivery(sub.id, rollupEventId(r), windowClosedBody(sub.id, r)));
      });
      return settle(batch, perMessage);
    },
  });

  return { clean, rollups, consecutive };
}

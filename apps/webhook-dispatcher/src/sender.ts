// The sender: consumes the deliveries stream and POSTs each delivery. Not a batch actor: every
// message is dispatched on its own (bounded globally by maxInFlight and per endpoint by the gates)
// and settled on its own, so a hung endpoint only ever holds its own slots.
import {
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import type { StoreGate } from '@sluice/actor';
import { ensureConsumer, ensureStream, publishDeadLetter, publishDurable } from '@sluice/jetstream';
import { Lifecycle } from '@sluice/runtime';
import type { Topology } from '@sluice/contracts';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { ATTR, extractTraceContext, type Logger } from '@sluice/observability';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AttemptLog } from './attempt-log';
import { decodeDelivery, type DeliveryMessage } from './delivery';
import type { EndpointGates, GateLimits } from './endpoint-gate';
import type { PostResult, WebhookHttpClient } from './http-client';
import { CONSUMERS, SERVICE, WEBHOOK_METRICS, type WebhookTopology } from './names';
import { signatureHeader } from './signing';
import type { Store, Subscription } from './store';
import type { SubscriptionCache } from './subscription-cache';

export interface SenderOptions {
  nc: NatsConnection;
  topology: Topology;
  webhooks: WebhookTopology;
  store: Store;
  cache: SubscriptionCache;
  http: WebhookHttpClient;
  gates: EndpointGates;
  attemptLog: AttemptLog;
  logger: Logger;
  registry: Registry;
  /** Delay after the 1st, 2nd, ... failed attempt; exhausted after `length + 1` attempts. */
  retryScheduleMs: readonly number[];
  /** Random spread of each delay (fraction). Default 0.1. */
  jitter?: number;
  /** Cap on honoured `Retry-After`. */
  retryAfterMaxMs: number;
  defaultConcurrency: number;
  defaultRatePerS: number;
  /** Deliveries held at once (in flight + queued at gates). */
  maxInFlight: number;
  /** Continuous failure period after which an endpoint is disabled. */
  disableAfterMs: number;
  ackWaitMs: number;
  deliveriesMaxAgeMs: number;
  duplicateWindowMs: number;
  /** Response body bytes kept in logs and the attempt log. */
  logBodyBytes: number;
  /** PostgreSQL's gate: an outage is logged once there (not per delivery) and retried sooner. */
  storeGate?: StoreGate;
}

const truncate = (s: string | undefined, n: number) => (s === undefined ? null : s.length > n ? `${s.slice(0, n)}…` : s);

/** Creates the work-queue deliveries stream, or updates its mutable limits (retention is fixed at creation). */
export async function ensureDeliveriesStream(nc: NatsConnection, webhooks: WebhookTopology, maxAgeMs: number, duplicateWindowMs: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const { name, subjects } = webhooks.deliveriesStream;
  try {
    await jsm.streams.info(name);
    await jsm.streams.update(name, { subjects, max_age: nanos(maxAgeMs), duplicate_window: nanos(duplicateWindowMs) });
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    await jsm.streams
      .add({ name, subjects, retention: RetentionPolicy.Workqueue, storage: StorageType.File, max_age: nanos(maxAgeMs), duplicate_window: nanos(duplicateWindowMs) })
      .catch(async (addErr) => {
        await jsm.streams.info(name).catch(() => {
          throw addErr;
        });
      });
  }
}

export class Sender {
  readonly lifecycle = new Lifecycle();
  private readonly js: JetStreamClient;
  private readonly log: Logger;
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private readonly held = new Set<JsMsg>();
  /** `webhookId#generation` of held deliveries: a second copy (redelivered while the first is held) waits. */
  private readonly heldKeys = new Set<string>();
  private slotWaiters: Array<() => void> = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private stopping = false;
  /** Success acks of this event-loop turn, sent together (one socket write instead of one per ack). */
  private acks: JsMsg[] = [];
  private acksScheduled = false;
  /** Attempts made per `webhookId#generation` (the PostgreSQL attempt log answers after a restart). */
  private readonly attemptCounts = new Map<string, number>();
  /** In-process view of continuous failure per subscription; null = known healthy. */
  private readonly failing = new Map<string, Date | null>();
  private readonly m: {
    attempts: Counter<'outcome'>;
    duration: Histogram<'outcome'>;
    dead: Counter<'reason'>;
    deferred: Counter<'reason'>;
    dropped: Counter<'reason'>;
    disabled: Counter<'reason'>;
    inFlight: Gauge;
  };

  constructor(private readonly opts: SenderOptions) {
    this.js = jetstream(opts.nc);
    this.log = opts.logger.child({ component: 'sender' });
    const registers = [opts.registry];
    this.m = {
      attempts: new Counter({ name: WEBHOOK_METRICS.attempts, help: 'Webhook POST attempts by outcome', labelNames: ['outcome'], registers }),
      duration: new Histogram({
        name: WEBHOOK_METRICS.attemptDuration,
        help: 'Webhook POST latency',
        labelNames: ['outcome'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers,
      }),
      dead: new Counter({ name: WEBHOOK_METRICS.deadLettered, help: 'Deliveries moved to the webhook DLQ', labelNames: ['reason'], registers }),
      deferred: new Counter({ name: WEBHOOK_METRICS.deferred, help: 'Deliveries deferred because the endpoint was busy or paused', labelNames: ['reason'], registers }),
      dropped: new Counter({ name: WEBHOOK_METRICS.dropped, help: 'Deliveries dropped (subscription deleted)', labelNames: ['reason'], registers }),
      disabled: new Counter({ name: WEBHOOK_METRICS.disabled, help: 'Endpoints disabled by the dispatcher', labelNames: ['reason'], registers }),
      inFlight: new Gauge({ name: WEBHOOK_METRICS.inFlight, help: 'Deliveries held by the sender', registers }),
    };
  }

  get state() {
    return this.lifecycle.state;
  }

  isReady(): boolean {
    return this.lifecycle.state === 'running' && !this.opts.nc.isClosed();
  }

  async start(): Promise<void> {
    const o = this.opts;
    try {
      const jsm = await jetstreamManager(o.nc);
      await ensureDeliveriesStream(o.nc, o.webhooks, o.deliveriesMaxAgeMs, o.duplicateWindowMs);
      await ensureStream(jsm, { ...o.webhooks.opsStream, maxAgeMs: 7 * 86_400_000 });
      await ensureStream(jsm, o.topology.streams.dlq);
      await ensureConsumer(jsm, o.webhooks.deliveriesStream.name, { durable: CONSUMERS.sender, ackWaitMs: o.ackWaitMs, maxAckPending: Math.max(1000, o.maxInFlight * 4) });
      const consumer = await this.js.consumers.get(o.webhooks.deliveriesStream.name, CONSUMERS.sender);
      // A small prefetch: messages waiting in the client buffer are not kept alive with working().
      this.messages = await consumer.consume({ max_messages: Math.min(o.maxInFlight, 256) });
    } catch (err) {
      this.lifecycle.transition('failed', err);
      throw err;
    }
    this.lifecycle.transition('running');
    this.heartbeat = setInterval(() => {
      for (const msg of this.held) msg.working();
    }, Math.max(500, Math.floor(o.ackWaitMs / 3)));
    this.loop = this.pull(this.messages).catch((err) => {
      if (!this.lifecycle.terminal) this.lifecycle.transition('failed', err);
    });
  }

  /** Stops taking deliveries, lets in-flight requests finish (bounded), then stops. */
  async stop(deadlineMs = 20_000): Promise<void> {
    if (this.stopping || this.lifecycle.terminal) return;
    this.stopping = true;
    this.lifecycle.transition('draining');
    this.opts.gates.close();
    const deadline = Date.now() + deadlineMs;
    while (this.held.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    clearInterval(this.heartbeat);
    this.flushAcks();
    this.slotWaiters.splice(0).forEach((w) => w());
    await this.messages?.close().catch(() => undefined);
    await this.loop;
    if (this.held.size > 0) this.log.warn({ held: this.held.size }, 'drain deadline passed; unsettled deliveries will be redelivered');
    if (!this.lifecycle.terminal) this.lifecycle.transition('stopped');
  }

  private async pull(messages: ConsumerMessages): Promise<void> {
    for await (const msg of messages) {
      if (this.stopping) {
        msg.nak();
        continue;
      }
      this.held.add(msg);
      this.m.inFlight.set(this.held.size);
      void this.handle(msg).finally(() => {
        this.held.delete(msg);
        this.m.inFlight.set(this.held.size);
        this.slotWaiters.shift()?.();
      });
      while (this.held.size >= this.opts.maxInFlight && !this.stopping) await new Promise<void>((r) => this.slotWaiters.push(r));
    }
  }

  /**
   * Acks `msg` at the end of this event-loop turn. Each HTTP response arrives in its own I/O
   * callback, so an immediate ack() would cost one NATS socket write per delivery; batched, every
   * response read in one poll phase shares one write. The ack is still sent only after the outcome
   * it settles (and, for fire-and-forget ack(), was never awaited anyway).
   */
  private ackSoon(msg: JsMsg): void {
    this.acks.push(msg);
    if (this.acksScheduled) return;
    this.acksScheduled = true;
    setImmediate(() => this.flushAcks());
  }

  private flushAcks(): void {
    this.acksScheduled = false;
    const acks = this.acks;
    if (acks.length === 0) return;
    this.acks = [];
    for (const m of acks) m.ack();
  }

  private limits(sub: Subscription): GateLimits {
    return { maxConcurrency: sub.maxConcurrency ?? this.opts.defaultConcurrency, ratePerS: sub.rateLimitPerS ?? this.opts.defaultRatePerS };
  }

  private async handle(msg: JsMsg): Promise<void> {
    let d: DeliveryMessage;
    try {
      d = decodeDelivery(msg.data);
    } catch (err) {
      try {
        await publishDeadLetter(this.js, msg, { service: SERVICE, subject: this.opts.topology.dlq(SERVICE), error: err as Error });
        msg.term();
        this.log.warn({ err, seq: msg.seq }, 'malformed delivery dead-lettered');
      } catch (dlqErr) {
        this.log.error({ err: dlqErr }, 'dead-letter publish failed; delivery will be redelivered');
        msg.nak(5_000);
      }
      return;
    }
    const key = `${d.webhookId}#${d.generation}`;
    if (this.heldKeys.has(key)) {
      msg.nak(Math.floor(this.opts.ackWaitMs / 2));
      return;
    }
    this.heldKeys.add(key);
    try {
      await this.deliver(msg, d);
    } catch (err) {
      // PostgreSQL or NATS trouble while settling: nothing is acked, the delivery comes back.
      const gate = this.opts.storeGate;
      if (gate) gate.warnUnlessOutage(this.log, err, 'delivery handling failed; retrying later', { webhookId: d.webhookId });
      else this.log.warn({ err, webhookId: d.webhookId }, 'delivery handling failed; retrying later');
      // While PostgreSQL is down, come back about when its probe would notice it is up again.
      msg.nak(gate && !gate.isUp() ? 1_000 : 5_000);
    } finally {
      this.heldKeys.delete(key);
    }
  }

  private async deliver(msg: JsMsg, d: DeliveryMessage): Promise<void> {
    const sub = await this.opts.cache.get(d.subscriptionId);
    if (!sub) {
      this.m.dropped.inc({ reason: 'subscription_deleted' });
      this.log.info({ webhookId: d.webhookId, subscriptionId: d.subscriptionId }, 'subscription deleted; delivery dropped');
      msg.ack();
      return;
    }
    const key = `${d.webhookId}#${d.generation}`;
    if (!sub.enabled) {
      await this.deadLetter(d, await this.attemptsSoFar(key, d, msg), 'subscription_disabled', null, sub.disabledReason ?? 'subscription disabled');
      msg.ack();
      return;
    }
    if (sub.secrets.length === 0) {
      await this.deadLetter(d, 0, 'no_active_secret', null, 'the subscription has no unexpired secret');
      msg.ack();
      return;
    }
    const limits = this.limits(sub);
    const admission = await this.opts.gates.acquire(sub.id, limits);
    if (admission.type === 'defer') {
      this.m.deferred.inc({ reason: admission.reason });
      msg.nak(admission.delayMs);
      return;
    }
    let attempt: number;
    let r: PostResult;
    try {
      attempt = (await this.attemptsSoFar(key, d, msg)) + 1;
      const ts = Math.floor(Date.now() / 1000);
      const headers = {
        'webhook-id': d.webhookId,
        'webhook-timestamp': String(ts),
        'webhook-signature': signatureHeader(sub.secrets, d.webhookId, ts, d.body),
      };
      // Each attempt is a CLIENT span continuing the trace the delivery carries (the matcher
      // published it in the context of the event that matched); the receiver gets its traceparent.
      r = await this.opts.http.post(sub.id, sub.url, headers, d.body, limits.maxConcurrency, {
        parent: extractTraceContext(msg.headers, ROOT_CONTEXT),
        attributes: { [ATTR.webhookId]: d.webhookId, [ATTR.subscriptionId]: sub.id, ...(attempt > 1 ? { [ATTR.httpResendCount]: attempt - 1 } : {}) },
      });
    } finally {
      this.opts.gates.release(sub.id);
    }
    await this.conclude(msg, d, sub, limits, key, attempt, r);
  }

  private async attemptsSoFar(key: string, d: DeliveryMessage, msg: JsMsg): Promise<number> {
    const known = this.attemptCounts.get(key);
    if (known !== undefined) return known;
    if (msg.info.deliveryCount === 1) return 0;
    return this.opts.store.lastAttempt(d.webhookId, d.generation);
  }

  private rememberAttempts(key: string, n: number): void {
    this.attemptCounts.delete(key);
    this.attemptCounts.set(key, n);
    while (this.attemptCounts.size > 100_000) this.attemptCounts.delete(this.attemptCounts.keys().next().value!);
  }

  private async conclude(msg: JsMsg, d: DeliveryMessage, sub: Subscription, limits: GateLimits, key: string, attempt: number, r: PostResult): Promise<void> {
    const o = this.opts;
    const status = r.status ?? null;
    const error = r.error ? `${r.error.name}: ${r.error.message}` : status !== null && (status < 200 || status >= 300) ? `HTTP ${status}` : null;
    const row = (outcome: string) => ({
      subscriptionId: sub.id,
      webhookId: d.webhookId,
      generation: d.generation,
      attempt,
      eventType: d.type,
      outcome,
      status,
      latencyMs: Math.round(r.latencyMs * 100) / 100,
      error,
      responseBody: truncate(r.bodyPrefix || undefined, o.logBodyBytes),
    });
    const observe = (outcome: string) => {
      this.m.attempts.inc({ outcome });
      this.m.duration.observe({ outcome }, r.latencyMs / 1000);
    };

    if (status !== null && status >= 200 && status < 300) {
      this.ackSoon(msg);
      observe('success');
      this.attemptCounts.delete(key);
      o.attemptLog.add(row('success'));
      this.markHealthy(sub);
      return;
    }

    this.log.info(
      { webhookId: d.webhookId, subscriptionId: sub.id, attempt, status, err: r.error?.message, body: truncate(r.bodyPrefix || undefined, o.logBodyBytes) },
      'webhook attempt failed',
    );
    if (status === 410) {
      observe('gone');
      await o.attemptLog.write(row('gone'));
      await this.disable(sub, 'endpoint answered 410 Gone');
      await this.deadLetter(d, attempt, 'gone', status, error);
      this.attemptCounts.delete(key);
      msg.ack();
      return;
    }

    const since = this.markFailing(sub);
    if (Date.now() - since.getTime() >= o.disableAfterMs) {
      observe('disabled');
      await o.attemptLog.write(row('disabled'));
      await this.disable(sub, `failing continuously since ${since.toISOString()}`);
      await this.deadLetter(d, attempt, 'endpoint_disabled', status, error);
      this.attemptCounts.delete(key);
      msg.ack();
      return;
    }
    if (attempt > o.retryScheduleMs.length) {
      observe('dead');
      await o.attemptLog.write(row('dead'));
      await this.deadLetter(d, attempt, 'exhausted', status, error);
      this.attemptCounts.delete(key);
      msg.ack();
      return;
    }
    observe('retry');
    const base = o.retryScheduleMs[attempt - 1]!;
    const jitter = o.jitter ?? 0.1;
    let delay = Math.round(base * (1 - jitter + 2 * jitter * Math.random()));
    if ((status === 429 || status === 503) && r.retryAfterMs !== undefined) {
      const ra = Math.min(r.retryAfterMs, o.retryAfterMaxMs);
      delay = Math.max(delay, ra);
      o.gates.pause(sub.id, limits, Date.now() + ra);
    }
    await o.attemptLog.write(row('retry')).catch((err) =>
      o.storeGate ? o.storeGate.warnUnlessOutage(this.log, err, 'attempt log write failed; retry count may restart after a crash') : this.log.warn({ err }, 'attempt log write failed; retry count may restart after a crash'),
    );
    this.rememberAttempts(key, attempt);
    msg.nak(delay);
  }

  private markHealthy(sub: Subscription): void {
    const cur = this.failing.get(sub.id);
    if (cur === null || (cur === undefined && !sub.failingSince)) {
      this.failing.set(sub.id, null);
      return;
    }
    this.failing.set(sub.id, null);
    this.opts.store.setFailingSince(sub.id, null).catch((err) => this.log.warn({ err }, 'could not clear failing_since'));
  }

  private markFailing(sub: Subscription): Date {
    const cur = this.failing.get(sub.id);
    if (cur) return cur;
    const since = (cur === undefined ? sub.failingSince : null) ?? new Date();
    this.failing.set(sub.id, since);
    if (!sub.failingSince || cur === null) this.opts.store.setFailingSince(sub.id, since).catch((err) => this.log.warn({ err }, 'could not record failing_since'));
    return since;
  }

  private async disable(sub: Subscription, reason: string): Promise<void> {
    const changed = await this.opts.store.disable(sub.id, reason);
    this.opts.cache.put({ ...sub, enabled: false, disabledReason: reason });
    this.opts.http.forget(sub.id);
    this.failing.delete(sub.id);
    if (!changed) return;
    this.m.disabled.inc({ reason: reason.startsWith('endpoint answered 410') ? 'gone' : 'failing' });
    const host = (() => {
      try {
        return new URL(sub.url).host;
      } catch {
        return '';
      }
    })();
    this.log.warn({ subscriptionId: sub.id, host, reason }, 'webhook endpoint disabled');
    const event = { type: 'webhook.endpoint_disabled.v1', subscription_id: sub.id, host, reason, at: new Date().toISOString() };
    await publishDurable(this.js, this.opts.webhooks.ops('endpoint_disabled'), Buffer.from(JSON.stringify(event)), {
      msgId: `endpoint_disabled:${sub.id}:${Date.now()}`,
      contentType: 'application/json',
    }).catch((err) => this.log.error({ err, subscriptionId: sub.id }, 'could not publish the endpoint_disabled event'));
  }

  private async deadLetter(d: DeliveryMessage, attempts: number, reason: string, lastStatus: number | null, lastError: string | null): Promise<void> {
    await this.opts.store.deadLetter({
      webhookId: d.webhookId,
      subscriptionId: d.subscriptionId,
      eventType: d.type,
      generation: d.generation,
      delivery: d,
      attempts,
      reason,
      lastStatus,
      lastError: truncate(lastError ?? undefined, 2048),
    });
    this.m.dead.inc({ reason });
    this.log.warn({ webhookId: d.webhookId, subscriptionId: d.subscriptionId, reason, attempts, lastStatus }, 'webhook delivery dead-lettered');
  }
}

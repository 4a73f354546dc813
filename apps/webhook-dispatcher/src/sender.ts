// The sender: consumes the deliveries stream and POSTs each delivery. An Actor in per-message mode:
// every message is dispatched on its own (bounded globally by maxInFlight and per endpoint by the
// gates) and settled on its own, so a hung endpoint only ever holds its own slots. What happens after
// a POST is decided by the pure `decide()` (decide.ts); this file carries the decisions out.
import {
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import { Actor, Outcomes, type Delivery, type Outcome, type StoreGate } from '@sluice/actor';
import type { Topology } from '@sluice/contracts';
import {
  ensureConsumer,
  ensureStream,
  isBindOnly,
  NotProvisionedError,
  publishDurable,
} from '@sluice/jetstream';
import { ATTR, extractTraceContext, type Logger } from '@sluice/observability';
import type { Lifecycle, LifecycleState } from '@sluice/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AttemptLog } from './attempt-log';
import { decide, type Decision, type RetryPolicy } from './decide';
import { decodeDelivery, type DeliveryMessage } from './delivery';
import type { GateLimits, Gates } from './endpoint-gate';
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
  /** Per-endpoint admission: per process, or shared by the replicas (SharedEndpointGates). */
  gates: Gates;
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
  /** Unacknowledged deliveries of the consumer, retries included (WEBHOOK_MAX_ACK_PENDING). */
  maxAckPending: number;
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

/** Delay of a delivery whose subscription has a secret this process cannot decrypt. */
const UNREADABLE_SECRET_DELAY_MS = 10_000;

const truncate = (s: string | undefined, n: number) =>
  s === undefined ? null : s.length > n ? `${s.slice(0, n)}…` : s;

/** Creates the work-queue deliveries stream, or updates its mutable limits (retention is fixed at creation). */
export async function ensureDeliveriesStream(
  nc: NatsConnection,
  webhooks: WebhookTopology,
  maxAgeMs: number,
  duplicateWindowMs: number,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const { name, subjects } = webhooks.deliveriesStream;
  if (isBindOnly(nc)) {
    // Provisioned by the admin user (`sluice nats-auth provision`): only check it is there.
    await jsm.streams.info(name).catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)
        throw new NotProvisionedError(name);
      throw err;
    });
    return;
  }
  try {
    await jsm.streams.info(name);
    await jsm.streams.update(name, {
      subjects,
      max_age: nanos(maxAgeMs),
      duplicate_window: nanos(duplicateWindowMs),
    });
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound))
      throw err;
    await jsm.streams
      .add({
        name,
        subjects,
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        max_age: nanos(maxAgeMs),
        duplicate_window: nanos(duplicateWindowMs),
      })
      .catch(async (addErr) => {
        await jsm.streams.info(name).catch(() => {
          throw addErr;
        });
      });
  }
}

export class Sender {
  private readonly actor: Actor<DeliveryMessage>;
  private readonly js: JetStreamClient;
  private readonly log: Logger;
  private readonly policy: RetryPolicy;
  /** `webhookId#generation` of held deliveries: a second copy (redelivered while the first is held) waits. */
  private readonly heldKeys = new Set<string>();
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
    this.policy = {
      retryScheduleMs: opts.retryScheduleMs,
      jitter: opts.jitter ?? 0.1,
      retryAfterMaxMs: opts.retryAfterMaxMs,
      disableAfterMs: opts.disableAfterMs,
    };
    this.actor = new Actor<DeliveryMessage>({
      service: SERVICE,
      nc: opts.nc,
      stream: opts.webhooks.deliveriesStream,
      consumer: {
        durable: CONSUMERS.sender,
        ackWaitMs: opts.ackWaitMs,
        maxAckPending: opts.maxAckPending,
      },
      // Provisioned by start(): the deliveries stream is a work queue the actor would not create as such.
      provision: false,
      topology: opts.topology,
      decode: (msg) => decodeDelivery(msg.data),
      handleMessage: (d) => this.handle(d),
      perMessage: { maxInFlight: opts.maxInFlight, coalesceAcks: true },
      // A small prefetch: messages waiting in the client buffer are not kept alive with working().
      prefetch: { maxMessages: Math.min(opts.maxInFlight, 256) },
      // Attempts are counted by the sender (deferrals are redeliveries, not attempts) and bounded by the schedule.
      maxDeliver: Number.POSITIVE_INFINITY,
      logger: this.log,
      registry: opts.registry,
    });
    const actor = this.actor;
    const registers = [opts.registry];
    this.m = {
      attempts: new Counter({
        name: WEBHOOK_METRICS.attempts,
        help: 'Webhook POST attempts by outcome',
        labelNames: ['outcome'],
        registers,
      }),
      duration: new Histogram({
        name: WEBHOOK_METRICS.attemptDuration,
        help: 'Webhook POST latency',
        labelNames: ['outcome'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers,
      }),
      dead: new Counter({
        name: WEBHOOK_METRICS.deadLettered,
        help: 'Deliveries moved to the webhook DLQ',
        labelNames: ['reason'],
        registers,
      }),
      deferred: new Counter({
        name: WEBHOOK_METRICS.deferred,
        help: 'Deliveries deferred because the endpoint was busy or paused, or a secret of the subscription cannot be decrypted here',
        labelNames: ['reason'],
        registers,
      }),
      dropped: new Counter({
        name: WEBHOOK_METRICS.dropped,
        help: 'Deliveries dropped (subscription deleted)',
        labelNames: ['reason'],
        registers,
      }),
      disabled: new Counter({
        name: WEBHOOK_METRICS.disabled,
        help: 'Endpoints disabled by the dispatcher',
        labelNames: ['reason'],
        registers,
      }),
      inFlight: new Gauge({
        name: WEBHOOK_METRICS.inFlight,
        help: 'Deliveries held by the sender',
        registers,
        collect() {
          this.set(actor.inFlight);
        },
      }),
    };
  }

  get lifecycle(): Lifecycle {
    return this.actor.lifecycle;
  }

  get state(): LifecycleState {
    return this.actor.state;
  }

  isReady(): boolean {
    return this.actor.isReady();
  }

  async start(): Promise<void> {
    const o = this.opts;
    try {
      const jsm = await jetstreamManager(o.nc);
      await ensureDeliveriesStream(o.nc, o.webhooks, o.deliveriesMaxAgeMs, o.duplicateWindowMs);
      await ensureStream(jsm, { ...o.webhooks.opsStream, maxAgeMs: 7 * 86_400_000 });
      await ensureStream(jsm, o.topology.streams.dlq);
      await ensureConsumer(jsm, o.webhooks.deliveriesStream.name, {
        durable: CONSUMERS.sender,
        ackWaitMs: o.ackWaitMs,
        maxAckPending: o.maxAckPending,
      });
    } catch (err) {
      this.actor.lifecycle.transition('failed', err);
      throw err;
    }
    await this.actor.start();
  }

  /**
   * Stops taking deliveries, lets in-flight requests finish (bounded), then stops. Deliveries queued
   * at an endpoint gate are deferred at once; prefetched ones never handed out come back after the
   * ack wait (docs/DECISIONS.md #4).
   */
  async stop(deadlineMs = 20_000): Promise<void> {
    const stopped = this.actor.stop(deadlineMs);
    this.opts.gates.close();
    await stopped;
  }

  private limits(sub: Subscription): GateLimits {
    return {
      maxConcurrency: sub.maxConcurrency ?? this.opts.defaultConcurrency,
      ratePerS: sub.rateLimitPerS ?? this.opts.defaultRatePerS,
    };
  }

  /**
   * One delivery, run outside the actor's `process` span: the trace of a delivery holds the POSTs as
   * CLIENT spans of the matcher's context it carries, not the sender's PostgreSQL queries.
   */
  private handle(delivery: Delivery<DeliveryMessage>): Promise<Outcome> {
    return context.with(ROOT_CONTEXT, () => this.handleDelivery(delivery.msg, delivery.value));
  }

  private async handleDelivery(msg: JsMsg, d: DeliveryMessage): Promise<Outcome> {
    const key = `${d.webhookId}#${d.generation}`;
    if (this.heldKeys.has(key))
      return Outcomes.retry(undefined, Math.floor(this.opts.ackWaitMs / 2));
    this.heldKeys.add(key);
    try {
      return await this.deliver(msg, d, key);
    } catch (err) {
      // PostgreSQL or NATS trouble while settling: nothing is acked, the delivery comes back.
      const gate = this.opts.storeGate;
      if (gate)
        gate.warnUnlessOutage(this.log, err, 'delivery handling failed; retrying later', {
          webhookId: d.webhookId,
        });
      else
        this.log.warn({ err, webhookId: d.webhookId }, 'delivery handling failed; retrying later');
      // While PostgreSQL is down, come back about when its probe would notice it is up again.
      return Outcomes.retry(
        err instanceof Error ? err : undefined,
        gate && !gate.isUp() ? 1_000 : 5_000,
      );
    } finally {
      this.heldKeys.delete(key);
    }
  }

  private async deliver(msg: JsMsg, d: DeliveryMessage, key: string): Promise<Outcome> {
    const sub = await this.opts.cache.get(d.subscriptionId);
    if (!sub) {
      this.m.dropped.inc({ reason: 'subscription_deleted' });
      this.log.info(
        { webhookId: d.webhookId, subscriptionId: d.subscriptionId },
        'subscription deleted; delivery dropped',
      );
      return Outcomes.ack();
    }
    if (!sub.enabled) {
      await this.deadLetter(
        d,
        await this.attemptsSoFar(key, d, msg),
        'subscription_disabled',
        null,
        sub.disabledReason ?? 'subscription disabled',
      );
      return Outcomes.ack();
    }
    if (sub.unreadableSecrets > 0) {
      // Logged once by the store; another replica may have the key (or this one, restarted with it).
      this.m.deferred.inc({ reason: 'secret_unreadable' });
      return Outcomes.retry(undefined, UNREADABLE_SECRET_DELAY_MS);
    }
    if (sub.secrets.length === 0) {
      await this.deadLetter(
        d,
        0,
        'no_active_secret',
        null,
        'the subscription has no unexpired secret',
      );
      return Outcomes.ack();
    }
    const limits = this.limits(sub);
    const admission = await this.opts.gates.acquire(sub.id, limits);
    if (admission.type === 'defer') {
      // Not an attempt: the endpoint is busy or paused.
      this.m.deferred.inc({ reason: admission.reason });
      return Outcomes.retry(undefined, admission.delayMs);
    }
    let attempt: number;
    let r: PostResult;
    let decision: Decision;
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
        attributes: {
          [ATTR.webhookId]: d.webhookId,
          [ATTR.subscriptionId]: sub.id,
          ...(attempt > 1 ? { [ATTR.httpResendCount]: attempt - 1 } : {}),
        },
      });
      decision = decide(r, attempt, { failingSince: this.failingSince(sub) }, this.policy);
      // The pause is recorded before the slot is given back: no replica can take the slot and send
      // to an endpoint that has just asked to wait.
      if (decision.type === 'retry' && decision.pauseUntilMs !== undefined)
        await this.opts.gates.pause(sub.id, limits, decision.pauseUntilMs);
    } finally {
      this.opts.gates.release(sub.id, admission);
    }
    return this.carryOut(decision, d, sub, key, attempt, r);
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
    while (this.attemptCounts.size > 100_000)
      this.attemptCounts.delete(this.attemptCounts.keys().next().value!);
  }

  /** Records the attempt (metrics, attempt log, logs, endpoint state) and turns the decision into the message's outcome. */
  private async carryOut(
    decision: Decision,
    d: DeliveryMessage,
    sub: Subscription,
    key: string,
    attempt: number,
    r: PostResult,
  ): Promise<Outcome> {
    const o = this.opts;
    const status = r.status ?? null;
    const error = r.error
      ? `${r.error.name}: ${r.error.message}`
      : status !== null && (status < 200 || status >= 300)
        ? `HTTP ${status}`
        : null;
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

    if (decision.type === 'ack') {
      observe('success');
      this.attemptCounts.delete(key);
      o.attemptLog.add(row('success'));
      this.markHealthy(sub);
      return Outcomes.ack();
    }

    this.log.info(
      {
        webhookId: d.webhookId,
        subscriptionId: sub.id,
        attempt,
        status,
        err: r.error?.message,
        body: truncate(r.bodyPrefix || undefined, o.logBodyBytes),
      },
      'webhook attempt failed',
    );
    if (decision.type === 'disable' && decision.reason === 'gone') {
      observe('gone');
      await o.attemptLog.write(row('gone'));
      await this.disable(sub, 'endpoint answered 410 Gone');
      await this.deadLetter(d, attempt, 'gone', status, error);
      this.attemptCounts.delete(key);
      return Outcomes.ack();
    }

    // Any other failure continues (or starts) the endpoint's run of failures.
    this.markFailing(sub);
    switch (decision.type) {
      case 'disable':
        observe('disabled');
        await o.attemptLog.write(row('disabled'));
        await this.disable(sub, `failing continuously since ${decision.since!.toISOString()}`);
        await this.deadLetter(d, attempt, 'endpoint_disabled', status, error);
        this.attemptCounts.delete(key);
        return Outcomes.ack();
      case 'dead':
        observe('dead');
        await o.attemptLog.write(row('dead'));
        await this.deadLetter(d, attempt, 'exhausted', status, error);
        this.attemptCounts.delete(key);
        return Outcomes.ack();
      case 'retry':
        observe('retry');
        await o.attemptLog
          .write(row('retry'))
          .catch((err) =>
            o.storeGate
              ? o.storeGate.warnUnlessOutage(
                  this.log,
                  err,
                  'attempt log write failed; retry count may restart after a crash',
                )
              : this.log.warn(
                  { err },
                  'attempt log write failed; retry count may restart after a crash',
                ),
          );
        this.rememberAttempts(key, attempt);
        return Outcomes.retry(undefined, decision.delayMs);
    }
  }

  /** When the endpoint's current run of failures began, as known before this attempt (null: healthy). */
  private failingSince(sub: Subscription): Date | null {
    const cur = this.failing.get(sub.id);
    if (cur !== undefined) return cur;
    return sub.failingSince ?? null;
  }

  private markHealthy(sub: Subscription): void {
    const cur = this.failing.get(sub.id);
    if (cur === null || (cur === undefined && !sub.failingSince)) {
      this.failing.set(sub.id, null);
      return;
    }
    this.failing.set(sub.id, null);
    this.opts.store
      .setFailingSince(sub.id, null)
      .catch((err) => this.log.warn({ err }, 'could not clear failing_since'));
  }

  private markFailing(sub: Subscription): Date {
    const cur = this.failing.get(sub.id);
    if (cur) return cur;
    const since = (cur === undefined ? sub.failingSince : null) ?? new Date();
    this.failing.set(sub.id, since);
    if (!sub.failingSince || cur === null)
      this.opts.store
        .setFailingSince(sub.id, since)
        .catch((err) => this.log.warn({ err }, 'could not record failing_since'));
    return since;
  }

  private async disable(sub: Subscription, reason: string): Promise<void> {
    const changed = await this.opts.store.disable(sub.id, reason);
    this.opts.cache.put({ ...sub, enabled: false, disabledReason: reason });
    this.opts.http.forget(sub.id);
    this.failing.delete(sub.id);
    if (!changed) return;
    this.m.disabled.inc({
      reason: reason.startsWith('endpoint answered 410') ? 'gone' : 'failing',
    });
    const host = (() => {
      try {
        return new URL(sub.url).host;
      } catch {
        return '';
      }
    })();
    this.log.warn({ subscriptionId: sub.id, host, reason }, 'webhook endpoint disabled');
    const event = {
      type: 'webhook.endpoint_disabled.v1',
      subscription_id: sub.id,
      host,
      reason,
      at: new Date().toISOString(),
    };
    await publishDurable(
      this.js,
      this.opts.webhooks.ops('endpoint_disabled'),
      Buffer.from(JSON.stringify(event)),
      {
        msgId: `endpoint_disabled:${sub.id}:${Date.now()}`,
        contentType: 'application/json',
      },
    ).catch((err) =>
      this.log.error(
        { err, subscriptionId: sub.id },
        'could not publish the endpoint_disabled event',
      ),
    );
  }

  private async deadLetter(
    d: DeliveryMessage,
    attempts: number,
    reason: string,
    lastStatus: number | null,
    lastError: string | null,
  ): Promise<void> {
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
    this.log.warn(
      { webhookId: d.webhookId, subscriptionId: d.subscriptionId, reason, attempts, lastStatus },
      'webhook delivery dead-lettered',
    );
  }
}

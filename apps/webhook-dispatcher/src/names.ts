// Webhook subjects, streams, consumers and metric names. The contracts lib has no webhook subjects,
// so they are spelled here, once, following the namespace rules of `topology()` in @sluice/contracts.
import { assertNameToken, assertSubjectToken } from '@sluice/contracts';
import { WEBHOOK_METRICS } from '@sluice/observability';

export { WEBHOOK_METRICS };

/** Metrics of the state shared by the replicas in Redis (shared-state.ts). */
export const SHARED_STATE_METRICS = {
  /** Gauge: 1 while Redis answers (limits and runs are global), 0 while they are per process. */
  up: 'sluice_webhook_shared_state_up',
  /** Counter: times Redis stopped answering (each starts per-process decisions). */
  outages: 'sluice_webhook_shared_state_outages_total',
  /** Counter by `state` (`endpoint_limits`, `consecutive`): decisions made per process because Redis could not answer. */
  fallbacks: 'sluice_webhook_shared_state_fallbacks_total',
  /** Counter: readings not counted in a run because a newer (or the same) reading of the series was counted already. */
  consecutiveSkipped: 'sluice_webhook_consecutive_skipped_total',
} as const;

/** Metrics of the signing secrets at rest (secret-rotation.ts). */
export const SECRET_METRICS = {
  /** Gauge by `key_id`: secrets (expired ones too) encrypted under each key, 0 for a configured key none uses; the same on every replica. */
  rows: 'sluice_webhook_secret_rows',
  /** Gauge: secrets not under the active key yet (under an older key, or plaintext from before encryption at rest). */
  pending: 'sluice_webhook_secret_rewrap_pending',
  /** Counter by `key_id`: stored secrets this process could not decrypt (a key it lacks, or an altered row). */
  unreadable: 'sluice_webhook_secret_unreadable_total',
} as const;

export const SERVICE = 'webhook-dispatcher';

/** Durable consumer names. */
export const CONSUMERS = {
  clean: 'webhook-dispatcher-clean',
  rollups: 'webhook-dispatcher-rollups',
  sender: 'webhook-dispatcher-sender',
  alerts: 'webhook-dispatcher-alerts',
} as const;

/** Streams and subjects the dispatcher owns, for one namespace (`''` = canonical names). */
export interface WebhookTopology {
  /** Stream `WEBHOOK_DELIVERIES` (work queue), subjects `webhook.deliveries.>`. */
  deliveriesStream: { name: string; subjects: string[] };
  /** Stream `WEBHOOK_OPS`, subjects `webhook.ops.>`: operational events (endpoint disabled, ...). */
  opsStream: { name: string; subjects: string[] };
  /** `webhook.deliveries.<subscription_id>`. */
  delivery(subscriptionId: string): string;
  /** `webhook.ops.<kind>`, e.g. `webhook.ops.endpoint_disabled`. */
  ops(kind: string): string;
}

export function webhookTopology(namespace = ''): WebhookTopology {
  if (namespace !== '') assertNameToken(namespace, 'token');
  const subj = (s: string) => (namespace ? `${namespace}.${s}` : s);
  const stream = (s: string) =>
    namespace ? `${namespace.toUpperCase().replace(/-/g, '_')}_${s}` : s;
  return {
    deliveriesStream: {
      name: stream('WEBHOOK_DELIVERIES'),
      subjects: [subj('webhook.deliveries.>')],
    },
    opsStream: { name: stream('WEBHOOK_OPS'), subjects: [subj('webhook.ops.>')] },
    delivery(subscriptionId) {
      assertSubjectToken(subscriptionId, 'token');
      return subj(`webhook.deliveries.${subscriptionId}`);
    },
    ops(kind) {
      assertSubjectToken(kind, 'token');
      return subj(`webhook.ops.${kind}`);
    },
  };
}

/** Standard Webhooks event types carried in the JSON body's `type`. */
export const EVENT_TYPES = {
  threshold: 'telemetry.threshold.v1',
  windowClosed: 'rollup.window_closed.v1',
  detection: 'detection.matched.v1',
  test: 'sluice.test.v1',
  /** Alerts of the watch service: a series went silent, came back, or had an anomalous window. */
  alertSilence: 'alert.silence.v1',
  alertRecovery: 'alert.recovery.v1',
  alertAnomaly: 'alert.anomaly.v1',
} as const;
export type EventType = (typeof EVENT_TYPES)[keyof typeof EVENT_TYPES];

/** The alerts consumer's durable: `webhook-dispatcher-alerts`, `-<region>` in a regional deployment. */
export function alertsDurable(region: string | undefined): string {
  return region ? `${CONSUMERS.alerts}-${region}` : CONSUMERS.alerts;
}

// Alert ids and messages. An id is a hash of what identifies the episode, so whichever replica raises
// it, and however often after a crash, it is the same: the ALERTS stream drops the repeat
// (Nats-Msg-Id) and the dispatcher derives the same webhook-id from it.
import { createHash } from 'node:crypto';
import type { Context } from '@opentelemetry/api';
import type { NatsConnection } from '@nats-io/nats-core';
import { AsyncPublisher } from '@sluice/jetstream';
import {
  alertsTopology,
  CONTENT_TYPE_ALERT,
  encodeAlert,
  type Alert,
  type AlertKind,
  type AlertsTopology,
} from '@sluice/contracts';

export function alertId(
  kind: AlertKind,
  deviceId: string,
  sensorType: string,
  rule: string,
  episodeStart: string,
): string {
  const digest = createHash('sha256')
    .update([kind, deviceId, sensorType, rule, episodeStart].join('\n'))
    .digest('base64url');
  return `alert_${digest.slice(0, 32)}`;
}

export function newAlert(a: Omit<Alert, 'v' | 'id' | 'raisedAt'>, raisedAt = new Date()): Alert {
  return {
    v: 1,
    id: alertId(a.kind, a.deviceId, a.sensorType, a.rule, a.episodeStart),
    ...a,
    raisedAt: raisedAt.toISOString(),
  };
}

/** Publishes alerts to the ALERTS stream with `Nats-Msg-Id` = alert id; resolves once stored (or dropped as a repeat). */
export class AlertPublisher {
  readonly topology: AlertsTopology;
  private readonly publisher: AsyncPublisher;

  constructor(nc: NatsConnection, namespace: string) {
    this.topology = alertsTopology(namespace);
    this.publisher = new AsyncPublisher(nc);
  }

  publish(a: Alert, context?: Context): Promise<void> {
    return this.publisher.publish(this.topology.subject(a.region, a.kind), encodeAlert(a), {
      msgId: a.id,
      contentType: CONTENT_TYPE_ALERT,
      expectStream: this.topology.stream.name,
      ...(context ? { context } : {}),
    });
  }

  close(): void {
    this.publisher.close();
  }
}

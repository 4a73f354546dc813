// The JSON bodies receivers get: `{type, timestamp, data}` as Standard Webhooks recommends. The body
// is built once when the event is matched, so every retry sends the same bytes.
import type { Alert, Detection, DetectionEvent, Rollup, TelemetryEvent } from '@sluice/contracts';
import { rollupScopeToJSON } from '@sluice/contracts';
import { isRevision } from './filters';
import { EVENT_TYPES, type EventType } from './names';

export interface WebhookBody {
  type: EventType;
  /** When the webhook event was created (ISO 8601). */
  timestamp: string;
  data: Record<string, unknown>;
}

const iso = (d: Date | undefined) => (d ? d.toISOString() : null);

export function thresholdBody(
  subscriptionId: string,
  e: TelemetryEvent,
  consecutive: number,
  now = new Date(),
): WebhookBody {
  return {
    type: EVENT_TYPES.threshold,
    timestamp: now.toISOString(),
    data: {
      subscription_id: subscriptionId,
      consecutive,
      event: {
        event_id: e.eventId,
        device_id: e.deviceId,
        event_time: iso(e.eventTime),
        sensor_type: e.sensorType,
        value: e.value,
        unit: e.unit,
        region: e.region,
        firmware_version: e.firmwareVersion,
        attributes: e.attributes,
      },
    },
  };
}

/** Source id of a roll-up publication (one per window and revision). */
export function rollupEventId(r: Rollup): string {
  return [
    'rollup',
    r.scope,
    r.region,
    r.deviceId,
    r.sensorType,
    r.resolution,
    r.windowStart?.toISOString() ?? '',
    r.revision,
  ].join('|');
}

export function windowClosedBody(subscriptionId: string, r: Rollup, now = new Date()): WebhookBody {
  return {
    type: EVENT_TYPES.windowClosed,
    timestamp: now.toISOString(),
    data: {
      subscription_id: subscriptionId,
      rollup: {
        scope: rollupScopeToJSON(r.scope),
        device_id: r.deviceId || null,
        region: r.region,
        sensor_type: r.sensorType,
        resolution: r.resolution,
        window_start: iso(r.windowStart),
        window_end: iso(r.windowEnd),
        count: r.count,
        sum: r.sum,
        min: r.min,
        max: r.max,
        avg: r.avg,
        revision: r.revision,
        is_revision: isRevision(r),
        late_count: r.lateCount,
      },
    },
  };
}

export function detectionBody(
  subscriptionId: string,
  e: DetectionEvent,
  matched: Detection[],
  now = new Date(),
): WebhookBody {
  return {
    type: EVENT_TYPES.detection,
    timestamp: now.toISOString(),
    data: {
      subscription_id: subscriptionId,
      event: {
        event_id: e.eventId,
        device_id: e.deviceId,
        stream_id: e.streamId,
        frame_time: iso(e.frameTime),
        region: e.region,
        attributes: e.attributes,
      },
      detections: matched.map((d) => ({
        object_id: d.objectId,
        class_id: d.classId,
        label: d.label,
        confidence: d.confidence,
        tracker_id: d.trackerId || null,
        bbox: d.bbox ?? null,
      })),
    },
  };
}

const ALERT_TYPES = {
  silence: EVENT_TYPES.alertSilence,
  recovery: EVENT_TYPES.alertRecovery,
  anomaly: EVENT_TYPES.alertAnomaly,
} as const;

/** An alert of the watch service; `timestamp` is when it was raised, so a re-raise has the same body. */
export function alertBody(subscriptionId: string, a: Alert): WebhookBody {
  return {
    type: ALERT_TYPES[a.kind],
    timestamp: a.raisedAt,
    data: {
      subscription_id: subscriptionId,
      alert: {
        id: a.id,
        kind: a.kind,
        rule: a.rule,
        region: a.region,
        device_id: a.deviceId,
        sensor_type: a.sensorType || null,
        episode_start: a.episodeStart,
        raised_at: a.raisedAt,
        ...a.details,
      },
    },
  };
}

export function testBody(subscriptionId: string, now = new Date()): WebhookBody {
  return {
    type: EVENT_TYPES.test,
    timestamp: now.toISOString(),
    data: { subscription_id: subscriptionId, message: 'test event from Sluice' },
  };
}

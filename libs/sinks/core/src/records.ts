import type { Delivery } from '@sluice/actor';
import { parseReplaySource, type Detection, type EventBatch } from '@sluice/contracts';
import { RecordRejectedError } from './errors';
import type { SinkRecord } from './sink';

/** The records of a set of deliveries, and the rejections found before any sink saw them. */
export interface Flattened {
  records: SinkRecord[];
  /** Delivery index of each record (same order as `records`). */
  owner: number[];
  /**
   * Position of each record's event in its delivery's batch (same order as `records`); differs from
   * `source.index` for a replayed subset of a batch.
   */
  position: number[];
  /** Events no sink can store (no kind, no id), by delivery index. */
  invalid: Array<{ delivery: number; index: number; error: Error }>;
}

function publishedAt(d: Delivery<EventBatch>): Date {
  const nanos = d.msg.info.timestampNanos;
  return new Date(Math.floor(nanos / 1e6));
}

/**
 * Where a delivery's events were first stored: the message itself, or for a replayed batch the
 * original clean batch its `Sluice-Source-*` headers name (throws {@link ReplayHeaderError} when they
 * are malformed).
 */
export function deliverySource(d: Delivery<EventBatch>): {
  stream: string;
  seq: number;
  subject: string;
  publishedAt: Date;
  index: (position: number) => number;
} {
  const replay = parseReplaySource(
    (name) => d.msg.headers?.get(name) || undefined,
    d.value.events.length,
  );
  if (!replay)
    return {
      stream: d.msg.info.stream,
      seq: d.seq,
      subject: d.subject,
      publishedAt: publishedAt(d),
      index: (i) => i,
    };
  const indexes = replay.indexes;
  return {
    stream: replay.stream,
    seq: replay.seq,
    subject: replay.subject,
    publishedAt: replay.storedAt !== undefined ? new Date(replay.storedAt) : publishedAt(d),
    index: indexes ? (i) => indexes[i]! : (i) => i,
  };
}

/** Flattens the EventBatch of every delivery into records, in delivery then event order. */
export function flatten(deliveries: ReadonlyArray<Delivery<EventBatch>>): Flattened {
  const out: Flattened = { records: [], owner: [], position: [], invalid: [] };
  deliveries.forEach((d, delivery) => {
    const src = deliverySource(d);
    d.value.events.forEach((event, index) => {
      const kind = event.kind;
      if (kind === undefined) {
        out.invalid.push({
          delivery,
          index,
          error: new RecordRejectedError(
            'event has no kind: exactly one of "telemetry" or "detection" must be set',
          ),
        });
        return;
      }
      const id = kind.value.eventId;
      if (!id) {
        out.invalid.push({
          delivery,
          index,
          error: new RecordRejectedError('event has an empty event_id'),
        });
        return;
      }
      out.records.push({
        id,
        event,
        source: {
          stream: src.stream,
          seq: src.seq,
          subject: src.subject,
          index: src.index(index),
          batchId: d.value.batchId,
          publishedAt: src.publishedAt,
          deliveryCount: d.deliveryCount,
        },
      });
      out.owner.push(delivery);
      out.position.push(index);
    });
  });
  return out;
}

/** One detection of a frame as every destination stores it: snake_case, the box or null. */
export interface DetectionRecord {
  object_id: string;
  class_id: number;
  label: string;
  confidence: number;
  tracker_id: string;
  bbox: { left: number; top: number; width: number; height: number } | null;
}

/** The stored form of a frame's detections (documents, archive rows, exported rows alike). */
export function detectionRecords(detections: readonly Detection[]): DetectionRecord[] {
  return detections.map((d) => ({
    object_id: d.objectId,
    class_id: d.classId,
    label: d.label,
    confidence: d.confidence,
    tracker_id: d.trackerId,
    bbox: d.bbox
      ? { left: d.bbox.left, top: d.bbox.top, width: d.bbox.width, height: d.bbox.height }
      : null,
  }));
}

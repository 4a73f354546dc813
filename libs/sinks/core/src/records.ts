import type { Delivery } from '@sluice/actor';
import type { EventBatch } from '@sluice/contracts';
import { RecordRejectedError } from './errors';
import type { SinkRecord } from './sink';

/** The records of a set of deliveries, and the rejections found before any sink saw them. */
export interface Flattened {
  records: SinkRecord[];
  /** Delivery index of each record (same order as `records`). */
  owner: number[];
  /** Events no sink can store (no kind, no id), by delivery index. */
  invalid: Array<{ delivery: number; index: number; error: Error }>;
}

function publishedAt(d: Delivery<EventBatch>): Date {
  const nanos = d.msg.info.timestampNanos;
  return new Date(Math.floor(nanos / 1e6));
}

/** Flattens the EventBatch of every delivery into records, in delivery then event order. */
export function flatten(deliveries: ReadonlyArray<Delivery<EventBatch>>): Flattened {
  const out: Flattened = { records: [], owner: [], invalid: [] };
  deliveries.forEach((d, delivery) => {
    const at = publishedAt(d);
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
          stream: d.msg.info.stream,
          seq: d.seq,
          subject: d.subject,
          index,
          batchId: d.value.batchId,
          publishedAt: at,
          deliveryCount: d.deliveryCount,
        },
      });
      out.owner.push(delivery);
    });
  });
  return out;
}

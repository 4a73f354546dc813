import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { originalHeaders, publishDurable } from '@sluice/jetstream';
import {
  CONTENT_TYPES,
  DeadLetter,
  encodeBatch,
  HEADERS,
  type EventBatch,
} from '@sluice/contracts';

/** Extra provenance headers of a per-event dead letter (besides the standard `Sluice-Dlq-*`). */
export const EVENT_DLQ_HEADERS = {
  /** `event_id` of the one dead-lettered event. */
  EVENT_ID: 'Sluice-Dlq-Event-Id',
  /** Its position in the original message's EventBatch (decimal, 0-based). */
  EVENT_INDEX: 'Sluice-Dlq-Event-Index',
} as const;

export interface EventDeadLetter {
  service: string;
  /** DLQ subject, normally `dlq.<service>`. */
  subject: string;
  /** The message that carried the event. */
  msg: JsMsg;
  batch: EventBatch;
  /** Index of the event in `batch.events`. */
  index: number;
  /** `event_id`, when the event has one. */
  eventId: string;
  error: Error;
}

/**
 * Dead-letters ONE event of a message: a DeadLetter whose payload is a one-event EventBatch (same
 * batch id), so a replay tool handles it like any clean batch. The msg id names the service, stream,
 * sequence and event index, so a redelivered message whose event is rejected again adds no second
 * dead letter within the DLQ stream's duplicate window, while two services (or two destinations)
 * refusing the same event each keep theirs. Resolves once the DLQ stream acked it.
 */
export async function publishEventDeadLetter(
  js: JetStreamClient,
  l: EventDeadLetter,
): Promise<void> {
  const info = l.msg.info;
  const payload = encodeBatch({ batchId: l.batch.batchId, events: [l.batch.events[l.index]!] });
  const letter: DeadLetter = {
    service: l.service,
    errorClass: l.error.name,
    errorMessage: l.error.message.slice(0, 4096),
    deliveryCount: info.deliveryCount,
    originalSubject: l.msg.subject,
    originalStream: info.stream,
    originalStreamSequence: info.streamSequence,
    payload: Buffer.from(payload),
    originalHeaders: originalHeaders(l.msg),
    failedAt: new Date(),
  };
  await publishDurable(js, l.subject, DeadLetter.encode(letter).finish(), {
    msgId: `dlq:${l.service}:${info.stream}:${info.streamSequence}:${l.index}`,
    contentType: CONTENT_TYPES.DEAD_LETTER,
    headers: {
      [HEADERS.DLQ_SERVICE]: l.service,
      [HEADERS.DLQ_ERROR_CLASS]: l.error.name,
      [HEADERS.DLQ_ERROR]: l.error.message.replace(/[\r\n]+/g, ' ').slice(0, 512),
      [HEADERS.DLQ_DELIVERY_COUNT]: String(info.deliveryCount),
      [HEADERS.DLQ_ORIGINAL_SUBJECT]: l.msg.subject,
      [HEADERS.DLQ_ORIGINAL_STREAM]: info.stream,
      [HEADERS.DLQ_ORIGINAL_SEQUENCE]: String(info.streamSequence),
      [EVENT_DLQ_HEADERS.EVENT_INDEX]: String(l.index),
      ...(l.eventId
        ? { [EVENT_DLQ_HEADERS.EVENT_ID]: l.eventId.replace(/[\r\n]+/g, ' ').slice(0, 256) }
        : {}),
    },
  });
}

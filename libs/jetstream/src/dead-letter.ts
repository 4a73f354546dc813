import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { CONTENT_TYPES, DeadLetter, HEADERS } from '@sluice/contracts';
import { publishDurable } from './publish';

/** Who dead-lettered a message and why. */
export interface DeadLetterContext {
  service: string;
  /** DLQ subject, normally `dlq.<service>`. */
  subject: string;
  error: Error;
}

/** A message's headers as a plain map (multi-valued headers joined by `,`), as a DeadLetter keeps them. */
export function originalHeaders(msg: JsMsg): Record<string, string> {
  const out: Record<string, string> = {};
  if (!msg.headers) return out;
  for (const [k, values] of msg.headers) out[k] = values.join(',');
  return out;
}

/**
 * Publishes `msg` with its provenance to `dlq.<service>` and waits for the server ack; the caller
 * may `term()` the original only after this resolves. The DLQ msg id is the service and the original
 * stream and sequence, so a crash between publish and term cannot produce two dead letters, and two
 * services giving up on the same message keep one each.
 */
export async function publishDeadLetter(
  js: JetStreamClient,
  msg: JsMsg,
  ctx: DeadLetterContext,
): Promise<void> {
  const info = msg.info;
  const letter: DeadLetter = {
    service: ctx.service,
    errorClass: ctx.error.name,
    errorMessage: ctx.error.message.slice(0, 4096),
    deliveryCount: info.deliveryCount,
    originalSubject: msg.subject,
    originalStream: info.stream,
    originalStreamSequence: info.streamSequence,
    payload: Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength),
    originalHeaders: originalHeaders(msg),
    failedAt: new Date(),
  };
  await publishDurable(js, ctx.subject, DeadLetter.encode(letter).finish(), {
    msgId: `dlq:${ctx.service}:${info.stream}:${info.streamSequence}`,
    contentType: CONTENT_TYPES.DEAD_LETTER,
    headers: {
      [HEADERS.DLQ_SERVICE]: ctx.service,
      [HEADERS.DLQ_ERROR_CLASS]: ctx.error.name,
      [HEADERS.DLQ_ERROR]: ctx.error.message.replace(/[\r\n]+/g, ' ').slice(0, 512),
      [HEADERS.DLQ_DELIVERY_COUNT]: String(info.deliveryCount),
      [HEADERS.DLQ_ORIGINAL_SUBJECT]: msg.subject,
      [HEADERS.DLQ_ORIGINAL_STREAM]: info.stream,
      [HEADERS.DLQ_ORIGINAL_SEQUENCE]: String(info.streamSequence),
    },
  });
}

import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import { HEADERS } from '@sluice/contracts';
import { injectTraceHeaders } from '@sluice/observability';
import type { Context } from '@opentelemetry/api';

export interface PublishOptions {
  /** `Nats-Msg-Id`: the server drops a repeat within the stream's duplicate window. */
  msgId: string;
  /** `content-type` of the payload. */
  contentType: string;
  /** Trace context to carry. Default: the active context. */
  context?: Context;
  /** Further headers. */
  headers?: Record<string, string>;
  /** Fail unless the subject is bound to this stream. Default: not checked. */
  expectStream?: string;
  /** Time to wait for the JetStream ack. Default 5 s. */
  timeoutMs?: number;
}

/** Builds the headers every Sluice message carries: msg id, content type, trace context. */
export function messageHeaders(opts: Omit<PublishOptions, 'expectStream' | 'timeoutMs'>): MsgHdrs {
  const h = natsHeaders();
  h.set(HEADERS.MSG_ID, opts.msgId);
  h.set(HEADERS.CONTENT_TYPE, opts.contentType);
  for (const [k, v] of Object.entries(opts.headers ?? {})) h.set(k, v);
  injectTraceHeaders(h, opts.context);
  return h;
}

/** Publishes to JetStream and resolves with the server's ack (the message is then durable). */
export function publishDurable(
  js: JetStreamClient,
  subject: string,
  payload: Uint8Array,
  opts: PublishOptions,
): Promise<PubAck> {
  return js.publish(subject, payload, {
    msgID: opts.msgId,
    headers: messageHeaders(opts),
    timeout: opts.timeoutMs ?? 5_000,
    ...(opts.expectStream ? { expect: { streamName: opts.expectStream } } : {}),
  });
}

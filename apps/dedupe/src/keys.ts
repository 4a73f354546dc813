import { createHash } from 'node:crypto';

/** Event ids longer than this (in UTF-8 bytes) are hashed so a key stays small. */
export const MAX_PLAIN_ID_BYTES = 200;

/**
 * The Redis key of an event id's claim: `<prefix>dedupe:<event_id>`, or `<prefix>dedupe-h:<sha256>`
 * for an id longer than {@link MAX_PLAIN_ID_BYTES} (a separate family, so a hashed key can never
 * equal a plain one). Claims are global by event id, not per device (DESIGN.md §3; the contract
 * makes event ids globally unique).
 */
export function claimKey(prefix: string, eventId: string): string {
  if (Buffer.byteLength(eventId, 'utf8') <= MAX_PLAIN_ID_BYTES) return `${prefix}dedupe:${eventId}`;
  return `${prefix}dedupe-h:${createHash('sha256').update(eventId, 'utf8').digest('hex')}`;
}

/** Owner written into a claim: the raw message's stream and sequence, stable across redeliveries. */
export function claimOwner(stream: string, seq: number): string {
  return `${stream}:${seq}`;
}

/** `Nats-Msg-Id` and `batch_id` of the clean batch published for one raw message. */
export function cleanMessageId(stream: string, seq: number): string {
  return `raw:${stream}:${seq}`;
}

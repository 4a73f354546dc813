import { createHash } from 'node:crypto';

/** Event ids longer than this (in UTF-8 bytes) are hashed so a field stays small. */
export const MAX_PLAIN_ID_BYTES = 200;

/** How claims are laid out in Redis; see {@link claimSlot}. */
export interface ClaimLayout {
  /** Prepended to every key. */
  prefix: string;
  /** Width of an event-time bucket in ms. */
  bucketMs: number;
  /** Hashes per bucket, chosen by a hash of the event id. */
  shards: number;
}

/** Where one event id's claim lives: field `field` of the Redis hash `key`. */
export interface ClaimSlot {
  key: string;
  field: string;
  /** End of the event-time bucket: the hash lives at least the claim TTL past this (and past its last claim). */
  bucketEndMs: number;
}

/** FNV-1a over UTF-16 code units: cheap, stable across processes and versions. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * The claim of an event: a field of the hash `<prefix>dedupe:<bucket start ms>:<shard>` named by the
 * event id, or of `<prefix>dedupe-h:<bucket>:<shard>` named by the id's sha256 when the id is longer
 * than {@link MAX_PLAIN_ID_BYTES} (a separate family, so a digest can never equal a plain id).
 *
 * Hash fields instead of one key per claim: Redis spends half the CPU per claim (no expires entry, no
 * key object) and a third less memory. The price is that the bucket comes from the event time: a
 * resend is a duplicate when it repeats the event id AND the event-time bucket, which every resend of
 * the same reading does. Claims stay global by event id otherwise (DESIGN.md §3), not per device.
 */
export function claimSlot(layout: ClaimLayout, eventId: string, eventTimeMs: number): ClaimSlot {
  const time = Number.isFinite(eventTimeMs) ? eventTimeMs : 0;
  const bucket = Math.floor(time / layout.bucketMs) * layout.bucketMs;
  const shard = fnv1a(eventId) % layout.shards;
  const bucketEndMs = bucket + layout.bucketMs;
  if (eventId.length * 3 <= MAX_PLAIN_ID_BYTES || Buffer.byteLength(eventId, 'utf8') <= MAX_PLAIN_ID_BYTES) {
    return { key: `${layout.prefix}dedupe:${bucket}:${shard}`, field: eventId, bucketEndMs };
  }
  return { key: `${layout.prefix}dedupe-h:${bucket}:${shard}`, field: createHash('sha256').update(eventId, 'utf8').digest('hex'), bucketEndMs };
}

/** Owner written into a claim: the raw message's stream and sequence, stable across redeliveries. */
export function claimOwner(stream: string, seq: number): string {
  return `${stream}:${seq}`;
}

/** `Nats-Msg-Id` and `batch_id` of the clean batch published for one raw message. */
export function cleanMessageId(stream: string, seq: number): string {
  return `raw:${stream}:${seq}`;
}

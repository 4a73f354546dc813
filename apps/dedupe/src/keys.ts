import { createHash } from 'node:crypto';

/** Event ids longer than this (in UTF-8 bytes) are hashed so a field stays small. */
export const MAX_PLAIN_ID_BYTES = 200;

/** Event times are clamped into [epoch, year 9999] so a slot number stays an exact integer. */
const MAX_TIME_MS = 253_402_300_799_999;

/** How claims are laid out in Redis; see {@link ClaimBatch}. */
export interface ClaimLayout {
  /** Prepended to every key. */
  prefix: string;
  /** Width of an event-time bucket in ms (at least 1000). */
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

/**
 * FNV-1a over the last 16 UTF-16 code units and the length: stable across processes and versions, and
 * cheap. Ids that differ only before their last 16 characters share a shard, which costs balance,
 * never correctness.
 */
function shardHash(s: string): number {
  let h = Math.imul(0x811c9dc5 ^ s.length, 0x01000193);
  for (let i = Math.max(0, s.length - 16); i < s.length; i++)
    h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Whether an id is its own field: short, and free of the newline that separates packed fields. */
function isPlain(eventId: string): boolean {
  return (
    (eventId.length * 3 <= MAX_PLAIN_ID_BYTES ||
      Buffer.byteLength(eventId, 'utf8') <= MAX_PLAIN_ID_BYTES) &&
    !eventId.includes('\n')
  );
}

/**
 * The claims of one handler batch, column-wise (no object per claim: a batch holds ~30,000).
 *
 * A claim is a field of the hash `<prefix>claims:<bucket start ms>:<shard>` named by the event id,
 * or of `<prefix>claims-h:<bucket>:<shard>` named by the id's sha256 when the id is longer than
 * {@link MAX_PLAIN_ID_BYTES} or holds a newline (a separate family, so a digest never equals a plain
 * id). The bucket is the event time's, the shard a hash of the id. (The key-per-claim layout before
 * used `<prefix>dedupe:<event_id>`: a new family, so an old key can never be taken for a hash.)
 *
 * Hash fields instead of one key per claim: Redis spends half the CPU per claim (no expires entry, no
 * key object) and less memory. The price is that the bucket comes from the event time: a resend is a
 * duplicate when it repeats the event id AND the event-time bucket, which every resend of the same
 * reading does. Claims stay global by event id otherwise (DESIGN.md §3), not per device.
 */
export class ClaimBatch {
  /** Field of each claim. */
  readonly fields: string[] = [];
  /** Slot of each claim: (bucket index × shards + shard) × 2, + 1 in the digest family. */
  readonly slots: number[] = [];
  /** Owner of each claim, an index into {@link owners}. */
  readonly ownerOf: number[] = [];
  readonly owners: string[] = [];

  constructor(readonly layout: ClaimLayout) {
    // Slot numbers stay exact integers only within these bounds (DEDUPE_CLAIM_* checks them too).
    if (
      !(layout.bucketMs >= 1000) ||
      !Number.isInteger(layout.shards) ||
      layout.shards < 1 ||
      layout.shards > 4096
    ) {
      throw new RangeError(
        `claim layout needs a bucket of at least 1000 ms and 1–4096 shards, got ${layout.bucketMs} ms and ${layout.shards}`,
      );
    }
  }

  get length(): number {
    return this.fields.length;
  }

  /** Registers an owner (see `claimOwner`); returns the index {@link add} takes. */
  owner(name: string): number {
    return this.owners.push(name) - 1;
  }

  add(eventId: string, eventTimeMs: number, owner: number): void {
    const { bucketMs, shards } = this.layout;
    const time = Number.isFinite(eventTimeMs) ? Math.min(Math.max(eventTimeMs, 0), MAX_TIME_MS) : 0;
    const bucket = Math.floor(time / bucketMs);
    const plain = isPlain(eventId);
    this.fields.push(plain ? eventId : createHash('sha256').update(eventId, 'utf8').digest('hex'));
    this.slots.push((bucket * shards + (shardHash(eventId) % shards)) * 2 + (plain ? 0 : 1));
    this.ownerOf.push(owner);
  }

  /** The Redis hash of a slot. */
  key(slot: number): string {
    const { prefix, bucketMs, shards } = this.layout;
    const cell = Math.floor(slot / 2);
    return `${prefix}${slot % 2 ? 'claims-h' : 'claims'}:${Math.floor(cell / shards) * bucketMs}:${cell % shards}`;
  }

  /** End of a slot's event-time bucket (ms). */
  bucketEndMs(slot: number): number {
    return (Math.floor(slot / 2 / this.layout.shards) + 1) * this.layout.bucketMs;
  }

  /** Where claim `i` lives. */
  slot(i: number): ClaimSlot {
    const slot = this.slots[i]!;
    return { key: this.key(slot), field: this.fields[i]!, bucketEndMs: this.bucketEndMs(slot) };
  }
}

/** Owner written into a claim: the raw message's stream and sequence, stable across redeliveries. */
export function claimOwner(stream: string, seq: number): string {
  return `${stream}:${seq}`;
}

/** `Nats-Msg-Id` and `batch_id` of the clean batch published for one raw message. */
export function cleanMessageId(stream: string, seq: number): string {
  return `raw:${stream}:${seq}`;
}

/**
 * The guard hash (the Redis run id and eviction count the claims were seeded under) and the re-seed
 * lease of a prefix. Neither name can be a claim hash (those are `claims:` and `claims-h:`).
 */
export function guardKeys(prefix: string): { guard: string; lease: string } {
  return { guard: `${prefix}claims-epoch`, lease: `${prefix}claims-seeding` };
}

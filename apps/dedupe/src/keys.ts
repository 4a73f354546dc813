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
  /**
   * Redis Cluster names: every key of a shard carries the shard's hash tag (`{c<n>}`), so all its
   * buckets, its guard and its seed lease live in one cluster slot. Default false (single Redis: the
   * names carry no tag and are unchanged).
   */
  cluster?: boolean;
}

/** Hash slots of a Redis Cluster. */
export const CLUSTER_SLOTS = 16_384;

const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/**
 * The Redis Cluster hash slot of a key: CRC16 (XMODEM) of its hash tag (the text between the first
 * `{` and the next `}`, when not empty) or of the whole key, modulo 16384 (the Redis Cluster spec).
 */
export function clusterKeySlot(key: string): number {
  let s = key;
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) s = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const b of Buffer.from(s, 'utf8'))
    crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc % CLUSTER_SLOTS;
}

const TAGS = new Map<number, readonly string[]>();

/**
 * The hash tag of each shard in a cluster layout: `c<n>` for the smallest n whose slot falls in the
 * shard's 1/shards of the slot space, so the shards spread evenly over the slots (and over masters
 * that hold even slot ranges, as `redis-cli --cluster create` assigns them) instead of landing where
 * CRC16 of `0`..`63` happens to fall. Deterministic: every replica and version names the same keys.
 */
export function clusterTags(shards: number): readonly string[] {
  let tags = TAGS.get(shards);
  if (tags) return tags;
  const found: Array<string | undefined> = new Array(shards);
  let missing = shards;
  for (let n = 0; missing > 0; n++) {
    const tag = `c${n}`;
    const range = Math.floor((clusterKeySlot(tag) * shards) / CLUSTER_SLOTS);
    if (found[range] === undefined) {
      found[range] = tag;
      missing--;
    }
  }
  tags = found as string[];
  TAGS.set(shards, tags);
  return tags;
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
 * id). The bucket is the event time's, the shard a hash of the id. In a cluster layout every name ends
 * in its shard's hash tag (`…:<shard>{c<n>}`, {@link clusterTags}). (The key-per-claim layout before
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

  /** Per shard, the `{tag}` suffix of its keys in a cluster layout; empty strings otherwise. */
  private readonly tagSuffix: readonly string[] | undefined;

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
    if (layout.cluster && /[{}]/.test(layout.prefix))
      throw new RangeError(
        'a cluster claim layout needs a key prefix without { or } (a brace would change the hash tag)',
      );
    this.tagSuffix = layout.cluster ? clusterTags(layout.shards).map((t) => `{${t}}`) : undefined;
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

  /** The Redis hash of a slot (`…:<shard>{<tag>}` in a cluster layout). */
  key(slot: number): string {
    const { prefix, bucketMs, shards } = this.layout;
    const cell = Math.floor(slot / 2);
    const shard = cell % shards;
    const key = `${prefix}${slot % 2 ? 'claims-h' : 'claims'}:${Math.floor(cell / shards) * bucketMs}:${shard}`;
    return this.tagSuffix ? key + this.tagSuffix[shard]! : key;
  }

  /** The shard of a slot: in a cluster layout, the slot group its claims share (one hash tag). */
  shardOf(slot: number): number {
    return Math.floor(slot / 2) % this.layout.shards;
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

/**
 * In a cluster layout, the guard and the re-seed lease of one shard's slot group: the same names
 * followed by the shard's hash tag, so a claim call checks the guard of the slot it claims in. The
 * seed's overall lease stays {@link guardKeys}'s `lease` (any slot).
 */
export function groupGuardKeys(
  prefix: string,
  shards: number,
  shard: number,
): { guard: string; lease: string } {
  const tag = `{${clusterTags(shards)[shard]!}}`;
  return { guard: `${prefix}claims-epoch${tag}`, lease: `${prefix}claims-seeding${tag}` };
}

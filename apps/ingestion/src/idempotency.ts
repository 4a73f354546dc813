// Idempotency records shared by every gateway replica: one JetStream message per (credential, batch
// id) used within the duplicate window, holding a digest of the batch's content. The raw stream's
// Nats-Msg-Id dedupe drops a resend; this record tells a resend (same content) from a reuse of the
// id for different content, which the duplicate window alone would drop silently.
import { createHash } from 'node:crypto';
import { DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Topology } from '@sluice/contracts';
import { RetryableError } from './errors';

/** Options of {@link IdempotencyStore}. */
export interface IdempotencyOptions {
  /** How long a record lives: the raw stream's duplicate window (`INGEST_DUPLICATE_WINDOW`). */
  windowMs: number;
  /** Replicas of the records stream. Default 1. */
  replicas?: number;
  /** Timeout of one record write or read. */
  timeoutMs: number;
  /** Back-off advised when the records cannot be reached. */
  retryAfterMs: number;
}

/** `new`: first use of the key; `same`: used before with the same digest; `conflict`: with another. */
export type ClaimOutcome = 'new' | 'same' | 'conflict';

const WRONG_LAST_SEQUENCE = 10071;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Digest of a batch's content (hex sha256). */
export function contentDigest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class IdempotencyStore {
  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly topology: Topology,
    private readonly opts: IdempotencyOptions,
  ) {}

  /** Provisions the records stream (idempotent: an existing one is updated to these limits). */
  static async open(js: JetStreamClient, jsm: JetStreamManager, topology: Topology, opts: IdempotencyOptions): Promise<IdempotencyStore> {
    const spec = topology.idempotency.stream;
    const config = {
      name: spec.name,
      subjects: [...spec.subjects],
      description: 'Ingestion gateway: content digest per (credential, batch id) within the duplicate window',
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: opts.replicas ?? 1,
      max_age: opts.windowMs * 1_000_000,
      max_msgs_per_subject: 1,
      discard: DiscardPolicy.Old,
      // Records are written with an expected last subject sequence; the msg-id window is not needed.
      duplicate_window: Math.min(opts.windowMs, 120_000) * 1_000_000,
    };
    try {
      await jsm.streams.info(spec.name);
      await jsm.streams.update(spec.name, config);
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.status !== 404) throw err;
      await jsm.streams.add(config);
    }
    return new IdempotencyStore(js, jsm, topology, opts);
  }

  get streamName(): string {
    return this.topology.idempotency.stream.name;
  }

  /**
   * Records `digest` for (`scope`, `batchId`) unless a record exists, and says how the request
   * relates to it. Throws {@link RetryableError} when the records cannot be reached.
   */
  async claim(scope: string, batchId: string, digest: string): Promise<ClaimOutcome> {
    const key = createHash('sha256').update(scope).update('\n').update(batchId).digest('hex');
    const subject = this.topology.idempotency.subject(key);
    // Two rounds at most: a record may expire between a failed create and the read.
    for (let round = 0; round < 2; round++) {
      try {
        await this.js.publish(subject, encoder.encode(digest), { expect: { lastSubjectSequence: 0 }, timeout: this.opts.timeoutMs });
        return 'new';
      } catch (err) {
        if (!(err instanceof JetStreamApiError) || err.code !== WRONG_LAST_SEQUENCE) throw this.unavailable(err);
      }
      let stored;
      try {
        stored = await this.jsm.streams.getMessage(this.streamName, { last_by_subj: subject });
      } catch (err) {
        throw this.unavailable(err);
      }
      if (stored) return decoder.decode(stored.data) === digest ? 'same' : 'conflict';
    }
    throw this.unavailable(new Error('the idempotency record changed twice while being read'));
  }

  private unavailable(err: unknown): RetryableError {
    return new RetryableError('unavailable', 'the idempotency records (NATS) cannot be reached; nothing was stored, resend this batch', this.opts.retryAfterMs, { cause: err });
  }
}

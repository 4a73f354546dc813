import type { Event } from '@sluice/contracts';

/** Where one record came from: the JetStream message that carried it and its place in that batch. */
export interface RecordSource {
  /** Stream name of the message. */
  stream: string;
  /** Stream sequence: stable across redeliveries. */
  seq: number;
  subject: string;
  /** Position of the event in the message's EventBatch (0-based). */
  index: number;
  /** `EventBatch.batch_id` of the message. */
  batchId: string;
  /** When JetStream stored the message (the publish time of the clean batch). */
  publishedAt: Date;
  /** 1 on the first delivery of the message. */
  deliveryCount: number;
}

/** One event handed to a sink, with its identity and provenance. */
export interface SinkRecord {
  /** `event_id`: the idempotency key every sink stores the event under. */
  readonly id: string;
  readonly event: Event;
  readonly source: RecordSource;
}

/** A record the destination can never accept (bad shape, refused by the store): it goes to the DLQ. */
export interface RejectedRecord {
  /** Index of the record in the array passed to {@link Sink.write}. */
  index: number;
  /** Why; its name is the DLQ error class and its message the reason. */
  error: Error;
}

/**
 * What a write did. Every record not listed in `rejected` is durably stored (or was already: a
 * redelivery must count as success). A transient failure of the write as a whole is a throw instead.
 */
export interface WriteResult {
  rejected: RejectedRecord[];
}

export interface SinkHealth {
  ok: boolean;
  /** Why not, for `/readyz` and logs. */
  detail?: string;
}

/**
 * The contract every destination implements (DESIGN.md §6). Configuration is parsed and validated in
 * the constructor (or a factory) so a bad setting fails before anything connects.
 */
export interface Sink {
  /** Short name: metrics label, default durable consumer name. A NATS name token. */
  readonly name: string;
  /** Opens connections and prepares the destination. Idempotent; callable again after `close`. */
  connect(): Promise<void>;
  /**
   * Stores `records` idempotently by `record.id`: writing the same records again changes nothing.
   * Returns per-record rejections; throws when the write as a whole failed (see `isRetriable`).
   */
  write(records: ReadonlyArray<SinkRecord>): Promise<WriteResult>;
  /** True when a thrown write error is transient (store down, timeout): the batch is retried. */
  isRetriable(error: unknown): boolean;
  /** Flushes and closes, giving up at `deadline` (epoch ms). Idempotent. */
  close(deadline: number): Promise<void>;
  /** A cheap round trip to the destination. Never throws. */
  health(): Promise<SinkHealth>;
}

import type { StorageType } from '@nats-io/jetstream';

/** A stream Sluice owns; provisioning creates it or brings an existing one up to this spec. */
export interface StreamSpec {
  name: string;
  subjects: readonly string[];
  /** Default `file`. */
  storage?: StorageType;
  /**
   * Replicas (1 on a single server, 3 in production clusters). Default 1 for a new stream; an
   * existing one keeps its replicas.
   */
  replicas?: number;
  /** Maximum age of a message. Default 0 (unlimited). */
  maxAgeMs?: number;
  /** Maximum size of the stream in bytes. Default -1 (unlimited). */
  maxBytes?: number;
  /** Window in which `Nats-Msg-Id` duplicates are dropped by the server. Default 2 minutes. */
  duplicateWindowMs?: number;
  /** Largest accepted message. Default -1 (server limit). */
  maxMsgSize?: number;
  /**
   * Server placement tags (e.g. `region:eu-west`): the stream's replicas go only to servers with
   * every tag. Default none for a new stream; an existing one keeps its placement.
   */
  placementTags?: readonly string[];
  /** Placement cluster. Default none (an existing stream keeps its placement). */
  placementCluster?: string;
  description?: string;
}

/** A durable pull consumer with explicit ack; every replica of a service shares it. */
export interface ConsumerSpec {
  durable: string;
  /** Subjects within the stream. Default: all. */
  filterSubjects?: readonly string[];
  /** Time the server waits for an ack before redelivering. Default 30 s. */
  ackWaitMs?: number;
  /**
   * Server-side delivery limit. Default -1: the actor enforces its own limit and dead-letters, so
   * the server never silently stops delivering a message nobody has settled.
   */
  maxDeliver?: number;
  /** Server redelivery delays after ack-wait timeouts (needs `maxDeliver` > its length). Default none. */
  backoffMs?: number[];
  /** Unacknowledged messages outstanding across all replicas. Default 10 000. */
  maxAckPending?: number;
  /** Where a new consumer starts. Default `all`. */
  deliverPolicy?: 'all' | 'new';
  description?: string;
}

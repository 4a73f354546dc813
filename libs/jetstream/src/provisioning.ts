import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { SluiceError } from '@sluice/errors';
import { isBindOnly } from './connect';
import type { ConsumerSpec, StreamSpec } from './specs';

const STREAM_NOT_FOUND = JetStreamApiCodes.StreamNotFound;
const CONSUMER_NOT_FOUND = JetStreamApiCodes.ConsumerNotFound;
/** JSClusterNoPeersErrF: no set of servers satisfies the replicas and placement tags. */
const NO_SUITABLE_PEERS = 10005;
/** JSStreamReplicasNotSupportedErr: replicas > 1 asked of a server that is not clustered. */
const REPLICAS_NOT_CLUSTERED = 10074;

function streamConfig(spec: StreamSpec): Partial<StreamConfig> & { name: string } {
  return {
    name: spec.name,
    subjects: [...spec.subjects],
    storage: spec.storage ?? StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: spec.replicas ?? 1,
    max_age: nanos(spec.maxAgeMs ?? 0),
    max_bytes: spec.maxBytes ?? -1,
    max_msg_size: spec.maxMsgSize ?? -1,
    duplicate_window: nanos(spec.duplicateWindowMs ?? 120_000),
    description: spec.description ?? '',
    ...(spec.placementTags?.length || spec.placementCluster
      ? {
          placement: {
            cluster: spec.placementCluster ?? '',
            tags: [...(spec.placementTags ?? [])],
          },
        }
      : {}),
  };
}

function consumerConfig(spec: ConsumerSpec): Partial<ConsumerConfig> {
  const filters = spec.filterSubjects ?? [];
  return {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: spec.deliverPolicy === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
    ack_wait: nanos(spec.ackWaitMs ?? 30_000),
    max_deliver: spec.maxDeliver ?? -1,
    max_ack_pending: spec.maxAckPending ?? 10_000,
    description: spec.description ?? '',
    ...(filters.length === 1 ? { filter_subject: filters[0] } : {}),
    ...(filters.length > 1 ? { filter_subjects: [...filters] } : {}),
    ...(spec.backoffMs?.length ? { backoff: spec.backoffMs.map((ms) => nanos(ms)) } : {}),
  };
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

/**
 * A stream or consumer a bind-only connection (`NATS_PROVISION=false`) needs does not exist. Retriable:
 * the service starts once an admin created it.
 */
export class NotProvisionedError extends SluiceError {
  override readonly name = 'NotProvisionedError';
  readonly code = 'not_provisioned';

  constructor(
    readonly stream: string,
    /** The missing durable consumer; undefined when the stream itself is missing. */
    readonly consumer?: string,
  ) {
    super(
      `${consumer === undefined ? `stream ${stream}` : `consumer ${consumer} of stream ${stream}`} does not exist, ` +
        'and this connection only binds (NATS_PROVISION=false): provision it with the admin user ' +
        '(sluice nats-auth provision), or start the service once with NATS_PROVISION=true and a user allowed to create it',
      { retriable: true },
    );
  }
}

/** The connection behind a JetStreamManager of nats.js 3 (its `nc` field; no public accessor). */
function bindsOnly(jsm: JetStreamManager): boolean {
  const nc = (jsm as unknown as { nc?: NatsConnection }).nc;
  return nc !== undefined && isBindOnly(nc);
}

/**
 * NATS cannot place a stream as its spec asks: fewer running servers carry its placement tags (e.g.
 * `region:us-east`) than it has replicas, or more replicas than servers. Retriable: the servers may be
 * down, or an operator may tag more; otherwise lower the replicas or change the placement.
 */
export class StreamPlacementError extends SluiceError {
  override readonly name = 'StreamPlacementError';
  readonly code = 'stream_placement_unsatisfiable';
  readonly replicas: number;
  readonly tags: readonly string[];

  constructor(
    readonly stream: string,
    spec: Pick<StreamSpec, 'replicas' | 'placementTags' | 'placementCluster'>,
    cause: JetStreamApiError,
  ) {
    const replicas = spec.replicas ?? 1;
    const tags = spec.placementTags ?? [];
    const where = [
      tags.length ? `on servers tagged ${tags.join(' and ')}` : '',
      spec.placementCluster ? `in cluster ${spec.placementCluster}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    const fix = tags.length
      ? `give enough running servers the server_tags ${tags.join(', ')}, or lower the stream's replicas or change its placement`
      : "run enough clustered servers, or lower the stream's replicas";
    super(
      `stream ${stream} cannot be placed: it needs ${replicas} replica${replicas === 1 ? '' : 's'}` +
        `${where ? ` ${where}` : ''} and NATS has no such set of servers (${cause.message}); ${fix}`,
      { retriable: true, cause },
    );
    this.replicas = replicas;
    this.tags = tags;
  }
}

/** `err` as a {@link StreamPlacementError} when NATS refused `spec`'s replicas or placement. */
function placementFailure(spec: StreamSpec, err: unknown): unknown {
  return err instanceof JetStreamApiError &&
    (err.code === NO_SUITABLE_PEERS || err.code === REPLICAS_NOT_CLUSTERED)
    ? new StreamPlacementError(spec.name, spec, err)
    : err;
}

export interface EnsureStreamOptions {
  /**
   * Bring an existing stream's settings to `spec`. Only the stream's owner should (the service that
   * publishes to it); a consumer that merely needs the stream to exist must not reset the owner's
   * retention or duplicate window. Default `true`.
   */
  update?: boolean;
}

/**
 * Creates the stream, or (with `update`) brings an existing one to `spec`. Idempotent and safe from
 * every replica at once: a concurrent create that loses the race falls back to the existing stream.
 * Through a bind-only connection (`provision: false`) it only checks that the stream exists, and
 * throws {@link NotProvisionedError} when it does not. Throws {@link StreamPlacementError} when the
 * cluster cannot hold the spec's replicas where its placement asks. An update keeps the stream's
 * replicas and placement where the spec leaves them unset.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  spec: StreamSpec,
  opts: EnsureStreamOptions = {},
): Promise<void> {
  if (bindsOnly(jsm)) {
    try {
      await jsm.streams.info(spec.name);
      return;
    } catch (err) {
      if (isApiError(err, STREAM_NOT_FOUND)) throw new NotProvisionedError(spec.name);
      throw err;
    }
  }
  const config = streamConfig(spec);
  let current: StreamConfig;
  try {
    current = (await jsm.streams.info(spec.name)).config;
  } catch (err) {
    if (!isApiError(err, STREAM_NOT_FOUND)) throw err;
    try {
      await jsm.streams.add(config);
      return;
    } catch (addErr) {
      // Another replica may have created it between our info and add.
      current = (
        await jsm.streams.info(spec.name).catch(() => {
          throw placementFailure(spec, addErr);
        })
      ).config;
    }
  }
  if (opts.update === false) return;
  const { name: _name, ...update } = config;
  // What the spec leaves open stays as the operator set it: a service without a replicas setting
  // must not shrink an R3 stream to R1 on start, nor move a placed stream out of its region.
  if (spec.replicas === undefined) update.num_replicas = current.num_replicas;
  if (!config.placement && current.placement) update.placement = current.placement;
  await jsm.streams.update(spec.name, update).catch((err: unknown) => {
    throw placementFailure(spec, err);
  });
}

/**
 * Creates the durable consumer or updates its mutable settings (idempotent). Through a bind-only
 * connection it only checks that the consumer exists ({@link NotProvisionedError} when it does not).
 */
export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  spec: ConsumerSpec,
): Promise<void> {
  const config = consumerConfig(spec);
  try {
    await jsm.consumers.info(stream, spec.durable);
  } catch (err) {
    if (bindsOnly(jsm)) {
      if (isApiError(err, CONSUMER_NOT_FOUND)) throw new NotProvisionedError(stream, spec.durable);
      if (isApiError(err, STREAM_NOT_FOUND)) throw new NotProvisionedError(stream);
      throw err;
    }
    if (!isApiError(err, CONSUMER_NOT_FOUND)) throw err;
    await jsm.consumers.add(stream, config);
    return;
  }
  if (bindsOnly(jsm)) return;
  const { durable_name: _d, ack_policy: _a, deliver_policy: _p, ...update } = config;
  await jsm.consumers.update(stream, spec.durable, update);
}

import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Actor, StoreGate } from '@sluice/actor';
import { AsyncPublisher, type ConsumerSpec } from '@sluice/jetstream';
import type { Stoppable } from '@sluice/runtime';
import type { Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import type { Registry } from 'prom-client';
import type { ClaimStore } from './claims';
import type { CrashPoint, Config } from './config';
import { crashPoints } from './fault-injection';
import { ClaimsLostError, RedisUnavailableError } from './errors';
import { createDedupeHandler } from './handler';
import type { ClaimLayout } from './keys';
import { DedupeMetrics } from './metrics';
import { provisionDedupe } from './provision';
import { decodeRawMessage, type RawMessage } from './raw-message';
import { ClaimReseeder, type ReseedResult } from './reseed';

export const SERVICE = 'dedupe';

/** How the pipeline runs; {@link dedupeOptions} derives it from the service config. */
export interface DedupeOptions {
  /** Raw streams, one actor each. Default: the topology's raw stream. */
  streams?: string[];
  /** Durable consumer shared by all replicas. Default `dedupe`. */
  durable?: string;
  /** Claim key prefix. Default none. */
  keyPrefix?: string;
  /** Event-time bucket of the claim hashes. Default 10 min. */
  claimBucketMs?: number;
  /** Claim hashes per bucket. Default 64. */
  claimShards?: number;
  /** Cluster key names (a hash tag per shard); the claim store must be a cluster one. Default false. */
  redisCluster?: boolean;
  /** Default `retry`. */
  onRedisDown?: 'retry' | 'pass';
  /** Raw messages per handler call (one Redis round trip). Default 64. */
  batchMessages?: number;
  /**
   * Actors per raw stream in this process, sharing the durable like replicas do: while one waits for
   * Redis another encodes and publishes. Default 2.
   */
  concurrency?: number;
  /** Default 30 s. */
  ackWaitMs?: number;
  /** Default 50. */
  maxDeliver?: number;
  /** Default the actor's backoff. */
  backoffMs?: number[];
  /** Duplicate window of the clean stream. Default 10 min. */
  cleanDuplicateWindowMs?: number;
  /** Provision streams and consumers. Default true. */
  provision?: boolean;
  /** Test-only fault injection. */
  crashAt?: CrashPoint | undefined;
  /** How far back a re-seed reads the clean stream (with a guarded claim store). Default 7 days. */
  reseedHorizonMs?: number;
  /** A re-seed's wait for in-flight clean publishes; the handler publishes within half of it. Default 3 s. */
  reseedFenceMs?: number;
  /** Bytes one re-seed fetch of the clean stream may bring. Default 4 MiB. */
  reseedFetchBytes?: number;
  /** How often a store outage is probed. Default 500 ms. */
  probeIntervalMs?: number;
  /** After an outage, ready again once at most this many raw messages wait. Default 1000. */
  readyMaxPending?: number;
}

export interface DedupeDeps {
  nc: NatsConnection;
  topology: Topology;
  claims: ClaimStore;
  log: Logger;
  registry: Registry;
}

export interface Dedupe {
  actors: Array<Actor<RawMessage>>;
  metrics: DedupeMetrics;
  /** Closes the clean publisher: stop it after the actors. */
  publisher: Stoppable;
  /** Redis as the actors see it: down during an outage and while the claims are being re-seeded. */
  gate: StoreGate;
  /** Ends a re-seed in progress and the gate's probing: stop it after the actors. */
  recovery: Stoppable;
  /**
   * Re-seeds the claims now unless the guard is valid (`valid`) or another replica holds the lease
   * (`busy`); undefined for a store without the guard. Optional before start: the first claim call
   * finds a missing guard and starts one anyway.
   */
  reseed(reason?: string): Promise<ReseedResult | undefined>;
}

export function dedupeOptions(cfg: Config): DedupeOptions {
  return {
    ...(cfg.DEDUPE_STREAMS.length ? { streams: cfg.DEDUPE_STREAMS } : {}),
    durable: cfg.DEDUPE_DURABLE,
    keyPrefix: cfg.DEDUPE_KEY_PREFIX,
    claimBucketMs: cfg.DEDUPE_CLAIM_BUCKET,
    claimShards: cfg.DEDUPE_CLAIM_SHARDS,
    redisCluster: cfg.DEDUPE_REDIS_CLUSTER,
    onRedisDown: cfg.DEDUPE_ON_REDIS_DOWN,
    batchMessages: cfg.DEDUPE_BATCH_MESSAGES,
    concurrency: cfg.DEDUPE_CONCURRENCY,
    ackWaitMs: cfg.DEDUPE_ACK_WAIT,
    maxDeliver: cfg.DEDUPE_MAX_DELIVER,
    backoffMs: cfg.DEDUPE_BACKOFF,
    cleanDuplicateWindowMs: cfg.DEDUPE_CLEAN_DUPLICATE_WINDOW,
    provision: cfg.DEDUPE_PROVISION,
    crashAt: cfg.DEDUPE_CRASH_AT,
    reseedHorizonMs: cfg.DEDUPE_RESEED_HORIZON || cfg.DEDUPE_TTL,
    reseedFenceMs: cfg.DEDUPE_RESEED_FENCE,
    readyMaxPending: cfg.DEDUPE_READY_MAX_PENDING,
  };
}

/**
 * Provisions the clean stream, the DLQ stream and the durable consumer on every raw stream, and
 * builds `concurrency` actors per raw stream (not started). The service's main.ts and the benchmark both run
 * exactly this.
 */
export async function buildDedupe(deps: DedupeDeps, opts: DedupeOptions = {}): Promise<Dedupe> {
  const { topology } = deps;
  const streams = opts.streams?.length ? opts.streams : [topology.streams.raw.name];
  const ackWaitMs = opts.ackWaitMs ?? 30_000;
  const consumer: ConsumerSpec = {
    durable: opts.durable ?? 'dedupe',
    ackWaitMs,
    description: 'dedupe: claims event ids in Redis, publishes unique events to the clean stream',
  };
  const clean = {
    ...topology.streams.clean,
    duplicateWindowMs: opts.cleanDuplicateWindowMs ?? 600_000,
  };
  if (opts.provision !== false) {
    await provisionDedupe(await jetstreamManager(deps.nc), {
      rawStreams: streams,
      defaultRaw: topology.streams.raw,
      clean,
      dlq: topology.streams.dlq,
      consumer,
    });
  }
  const metrics = new DedupeMetrics(deps.registry);
  const publisher = new AsyncPublisher(deps.nc);
  const crashPoint = crashPoints(opts.crashAt);
  const layout: ClaimLayout = {
    prefix: opts.keyPrefix ?? '',
    bucketMs: opts.claimBucketMs ?? 600_000,
    shards: opts.claimShards ?? 64,
    ...(opts.redisCluster ? { cluster: true } : {}),
  };
  const fenceMs = opts.reseedFenceMs ?? 3_000;
  const log = deps.log;
  const reseeder = deps.claims.guarded
    ? new ClaimReseeder({
        nc: deps.nc,
        topology,
        claims: deps.claims,
        layout,
        horizonMs: opts.reseedHorizonMs ?? 7 * 86_400_000,
        fenceMs,
        ...(opts.reseedFetchBytes !== undefined ? { fetchBytes: opts.reseedFetchBytes } : {}),
        metrics,
        log,
      })
    : undefined;
  const onClaimsLost = (err: ClaimsLostError) => reseeder?.ensure(err.reason);
  const gate = new StoreGate({
    store: 'redis',
    probe: async () => {
      try {
        await deps.claims.probe(layout.prefix);
      } catch (err) {
        if (err instanceof ClaimsLostError) onClaimsLost(err);
        throw err;
      }
    },
    isOutage: (err) => err instanceof RedisUnavailableError,
    ...(opts.probeIntervalMs !== undefined ? { probeIntervalMs: opts.probeIntervalMs } : {}),
    log,
    registry: deps.registry,
  });
  const onRedisDown = opts.onRedisDown ?? 'retry';
  const batchMessages = opts.batchMessages ?? 64;
  const concurrency = opts.concurrency ?? 3;
  const bindings = streams.flatMap((name) => Array.from({ length: concurrency }, () => name));
  const actors = bindings.map(
    (name) =>
      new Actor<RawMessage>({
        service: SERVICE,
        nc: deps.nc,
        // Only the name is used: provisioning above never lets the actor update ingestion's stream.
        stream: { name, subjects: [] },
        consumer,
        provision: false,
        dlq: { stream: topology.streams.dlq, subject: topology.dlq(SERVICE) },
        decode: (msg) => decodeRawMessage(msg, topology),
        handle: createDedupeHandler({
          stream: name,
          topology,
          publisher,
          claims: deps.claims,
          layout,
          onRedisDown,
          metrics,
          log: deps.log.child({ stream: name }),
          crashPoint,
          onClaimsLost,
          ...(reseeder ? { publishWithinMs: Math.floor(fenceMs / 2) } : {}),
        }),
        // In `pass` mode a Redis outage publishes unclaimed instead of holding the batch.
        ...(onRedisDown === 'retry' ? { gates: [gate] } : {}),
        ...(opts.readyMaxPending !== undefined ? { readyMaxPending: opts.readyMaxPending } : {}),
        batch: { maxMessages: batchMessages },
        maxDeliver: opts.maxDeliver ?? 50,
        ...(opts.backoffMs?.length ? { backoff: { scheduleMs: opts.backoffMs } } : {}),
        logger: deps.log,
        registry: deps.registry,
      }),
  );
  return {
    actors,
    metrics,
    publisher: { name: 'clean publisher', stop: async () => publisher.close() },
    gate,
    reseed: async (reason = 'requested') => reseeder?.reseed(reason),
    recovery: {
      name: 'redis recovery',
      stop: async () => {
        gate.close();
        await reseeder?.stop();
      },
    },
  };
}

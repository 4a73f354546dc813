import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Actor, AsyncPublisher, type ConsumerSpec, type Stoppable } from '@sluice/actor';
import type { Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import type { Registry } from 'prom-client';
import type { ClaimStore } from './claims';
import type { CrashPoint, DedupeConfig } from './config';
import { crashPoints } from './fault-injection';
import { createDedupeHandler } from './handler';
import { DedupeMetrics } from './metrics';
import { provisionDedupe } from './provision';
import { decodeRawMessage, type RawMessage } from './raw-message';

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
}

export function dedupeOptions(cfg: DedupeConfig): DedupeOptions {
  return {
    ...(cfg.DEDUPE_STREAMS.length ? { streams: cfg.DEDUPE_STREAMS } : {}),
    durable: cfg.DEDUPE_DURABLE,
    keyPrefix: cfg.DEDUPE_KEY_PREFIX,
    claimBucketMs: cfg.DEDUPE_CLAIM_BUCKET,
    claimShards: cfg.DEDUPE_CLAIM_SHARDS,
    onRedisDown: cfg.DEDUPE_ON_REDIS_DOWN,
    batchMessages: cfg.DEDUPE_BATCH_MESSAGES,
    concurrency: cfg.DEDUPE_CONCURRENCY,
    ackWaitMs: cfg.DEDUPE_ACK_WAIT,
    maxDeliver: cfg.DEDUPE_MAX_DELIVER,
    backoffMs: cfg.DEDUPE_BACKOFF,
    cleanDuplicateWindowMs: cfg.DEDUPE_CLEAN_DUPLICATE_WINDOW,
    provision: cfg.DEDUPE_PROVISION,
    crashAt: cfg.DEDUPE_CRASH_AT,
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
  const clean = { ...topology.streams.clean, duplicateWindowMs: opts.cleanDuplicateWindowMs ?? 600_000 };
  if (opts.provision !== false) {
    await provisionDedupe(await jetstreamManager(deps.nc), { rawStreams: streams, defaultRaw: topology.streams.raw, clean, dlq: topology.streams.dlq, consumer });
  }
  const metrics = new DedupeMetrics(deps.registry);
  const publisher = new AsyncPublisher(deps.nc);
  const crashPoint = crashPoints(opts.crashAt);
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
          layout: { prefix: opts.keyPrefix ?? '', bucketMs: opts.claimBucketMs ?? 600_000, shards: opts.claimShards ?? 64 },
          onRedisDown: opts.onRedisDown ?? 'retry',
          metrics,
          log: deps.log.child({ stream: name }),
          crashPoint,
        }),
        batch: { maxMessages: batchMessages },
        maxDeliver: opts.maxDeliver ?? 50,
        ...(opts.backoffMs?.length ? { backoff: { scheduleMs: opts.backoffMs } } : {}),
        logger: deps.log,
        registry: deps.registry,
      }),
  );
  return { actors, metrics, publisher: { name: 'clean publisher', stop: async () => publisher.close() } };
}

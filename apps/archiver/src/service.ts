// Archiver: consumes clean telemetry and detections (`<ns>.telemetry.clean.>`, or one region's) and
// keeps them as Parquet (optionally also JSONL.gz) in Hive partitions on the local filesystem or in
// S3, exactly once per event; runs retention and compaction in the background. Of the replicas on one
// durable only the holder of its lease (NATS KV) consumes and writes; the others are hot standbys.
// Serves only the ops endpoints.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Actor, PoisonMessageError, StoreGate } from '@sluice/actor';
import { ConfigError } from '@sluice/errors';
import { ensureStream, isBindOnly } from '@sluice/jetstream';
import type { Runtime, Service } from '@sluice/runtime';
import { Archiver } from './archiver';
import { compactAll } from './compaction';
import type { Config } from './config';
import {
  ArchiveStoreUnavailableError,
  streamTag,
  createStore,
  type StoreSettings,
  type FailpointHook,
} from '@sluice/archive';
import { Journal } from './journal';
import { fencedStore, Lease, leaseBucket, type LeaseGuard } from './lease';
import { Leadership } from './leadership';
import { ArchiverMetrics } from './metrics';
import { expirePartitions } from './retention';
import { scanBatch, type ScannedBatch } from './wire';

export const SERVICE = 'archiver';

/**
 * A periodic pass (retention, compaction): one at a time, errors logged, stopped with the service.
 * Started once (again on later elections it keeps running).
 */
function periodic(
  name: string,
  intervalMs: number,
  run: () => Promise<unknown>,
  log: Runtime<Config>['log'],
) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  return {
    name,
    start() {
      if (intervalMs <= 0 || timer) return;
      const tick = () => {
        running = run().catch((err: unknown) =>
          log.error({ err }, `${name} pass failed; the next one retries`),
        );
      };
      tick();
      timer = setInterval(() => void running.then(tick), intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

/** The archive store the settings describe. Throws {@link ConfigError} when `s3` lacks a bucket. */
export function storeSettings(c: Config): StoreSettings {
  if (c.ARCHIVER_STORE === 'fs') return { kind: 'fs', dir: c.ARCHIVER_DIR };
  if (!c.ARCHIVER_S3_BUCKET)
    throw new ConfigError('ARCHIVER_S3_BUCKET', 'is required when ARCHIVER_STORE=s3');
  return {
    kind: 's3',
    bucket: c.ARCHIVER_S3_BUCKET,
    prefix: c.ARCHIVER_S3_PREFIX,
    ...(c.ARCHIVER_S3_ENDPOINT ? { endpoint: c.ARCHIVER_S3_ENDPOINT } : {}),
    region: c.ARCHIVER_S3_REGION,
    forcePathStyle: c.ARCHIVER_S3_FORCE_PATH_STYLE,
    createBucket: c.ARCHIVER_S3_CREATE_BUCKET,
    multipartThresholdBytes: c.ARCHIVER_S3_MULTIPART_THRESHOLD,
    partSizeBytes: c.ARCHIVER_S3_PART_SIZE,
    requestTimeoutMs: c.ARCHIVER_S3_REQUEST_TIMEOUT,
  };
}

export async function createService(rt: Runtime<Config>): Promise<Service> {
  const c = rt.config;
  const log = rt.log;
  if (c.ARCHIVER_BATCH_CONCURRENCY * c.ARCHIVER_BATCH_MESSAGES > 100_000) {
    throw new ConfigError(
      'ARCHIVER_BATCH_CONCURRENCY',
      `times ARCHIVER_BATCH_MESSAGES is ${c.ARCHIVER_BATCH_CONCURRENCY * c.ARCHIVER_BATCH_MESSAGES} unacknowledged messages; keep it at most 100000`,
    );
  }
  let hook: FailpointHook | undefined;
  const rawStore = createStore(
    storeSettings(c),
    c.ARCHIVER_FAILPOINT ? (p) => hook?.(p) ?? Promise.resolve() : undefined,
  );
  const metrics = new ArchiverMetrics(rt.registry);
  const stream = rt.topology.streams.clean;
  const durable = c.ARCHIVER_DURABLE;
  const lease = new Lease({
    nc: rt.nc,
    bucket: leaseBucket(rt.topology.namespace, durable, rt.topology.region),
    ttlMs: c.ARCHIVER_LEASE_TTL,
    bindOnly: isBindOnly(rt.nc),
    log,
  });
  metrics.watchLeader(stream.name, durable, () => lease.isFresh());
  /**
   * The store of the current term of leadership: every write (commits, journal, retention,
   * compaction) needs the lease in that term, so a deposed term's late writes stay refused even once
   * this replica leads again.
   */
  let term: { guard: LeaseGuard; store: typeof rawStore } | undefined;
  const js = jetstream(rt.nc);
  const gate = new StoreGate({
    store: `archive-${rawStore.kind}`,
    probe: () => rawStore.probe(),
    isOutage: (err) => err instanceof ArchiveStoreUnavailableError,
    log,
    registry: rt.registry,
  });
  let archiver: Archiver | undefined;

  // One per term of leadership (an actor does not start again once stopped), built after the
  // term's archiver: a deposed term's batches still reach its own (aborted) archiver.
  const actor = () => {
    const termArchiver = archiver!;
    return new Actor<ScannedBatch>({
      service: SERVICE,
      nc: rt.nc,
      topology: rt.topology,
      stream,
      consumer: {
        durable,
        filterSubjects: [
          c.ARCHIVER_REGION ? rt.topology.clean(c.ARCHIVER_REGION) : rt.topology.filters.clean,
        ],
        ackWaitMs: c.ARCHIVER_ACK_WAIT,
        // Every message of the open segment and those committing stay unacknowledged until durable.
        maxAckPending: c.ARCHIVER_BATCH_CONCURRENCY * c.ARCHIVER_BATCH_MESSAGES + 1_000,
      },
      decode: (m) => {
        try {
          // Checked as the generated decoder would, without building its objects.
          return scanBatch(m.data);
        } catch (err) {
          throw new PoisonMessageError(`not an EventBatch: ${(err as Error).message}`, {
            cause: err,
          });
        }
      },
      handle: (deliveries) => termArchiver.handle(deliveries),
      batch: {
        maxMessages: c.ARCHIVER_BATCH_MESSAGES,
        maxBytes: c.ARCHIVER_BATCH_BYTES,
        concurrency: c.ARCHIVER_BATCH_CONCURRENCY,
      },
      prefetch: { maxBytes: c.ARCHIVER_PREFETCH_BYTES },
      maxDeliver: c.ARCHIVER_MAX_DELIVER,
      gates: [gate],
      holdOnOutageMs: c.ARCHIVER_HOLD_ON_OUTAGE,
      logger: log,
      registry: rt.registry,
    });
  };

  // Started by the leader once it leads: a standby's store refuses writes anyway.
  const passes = [
    periodic(
      'archive-retention',
      c.ARCHIVER_RETENTION_INTERVAL,
      async () => {
        const t = term;
        if (t?.guard.isFresh())
          await expirePartitions(t.store, { retentionMs: c.ARCHIVER_RETENTION, log, metrics });
      },
      log,
    ),
    periodic(
      'archive-compaction',
      c.ARCHIVER_COMPACTION_INTERVAL,
      async () => {
        const t = term;
        if (t?.guard.isFresh())
          await compactAll(t.store, {
            smallFileBytes: c.ARCHIVER_COMPACTION_SMALL_FILE_BYTES,
            targetBytes: c.ARCHIVER_COMPACTION_TARGET_BYTES,
            orphanAgeMs: c.ARCHIVER_ORPHAN_AGE,
            rowGroupRows: c.ARCHIVER_ROW_GROUP_ROWS,
            log,
            metrics,
          });
      },
      log,
    ),
  ];
  let streamCreated = '';
  const leadership = new Leadership({
    lease,
    actor,
    log,
    // As a restart did before the lease: claim and recover the journal, then consume.
    onElected: async () => {
      const guard = lease.termGuard();
      const leaseTerm = lease.term;
      const store = fencedStore(rawStore, guard);
      term = { guard, store };
      const jsm = await jetstreamManager(rt.nc);
      const journal = await Journal.load(store, durable, stream.name, streamCreated, {
        holder: lease.holder,
        onReset: (old) =>
          log.warn(
            { stream: stream.name, previous: old.streamCreated, now: streamCreated },
            'the stream was created again since the journal was written; starting a new journal (the old one is kept beside it)',
          ),
        onTakenOver: (err) => lease.lose(err, leaseTerm),
      });
      if (journal.hasPending) {
        const removed = await journal.recover();
        metrics.segmentsRecovered.inc();
        log.warn(
          { objects: removed },
          'undid a segment commit interrupted by a crash; its messages will be archived again',
        );
      }
      archiver = new Archiver({
        store,
        journal,
        tag: streamTag(stream.name, streamCreated),
        formats: c.ARCHIVER_FORMATS,
        maxRows: c.ARCHIVER_FILE_MAX_ROWS,
        maxBytes: c.ARCHIVER_FILE_MAX_BYTES,
        maxAgeMs: c.ARCHIVER_FILE_MAX_AGE,
        maxWaitingBatches: c.ARCHIVER_BATCH_CONCURRENCY,
        rowGroupRows: c.ARCHIVER_ROW_GROUP_ROWS,
        encodeThread: c.ARCHIVER_ENCODE_THREAD,
        holdOnOutageMs: c.ARCHIVER_HOLD_ON_OUTAGE,
        gate,
        ackFloor: async () => (await jsm.consumers.info(stream.name, durable)).ack_floor.stream_seq,
        dlq: { js, service: SERVICE, subject: rt.topology.dlq(SERVICE) },
        ...(c.ARCHIVER_FAILPOINT ? { failpoint: c.ARCHIVER_FAILPOINT } : {}),
        log,
        metrics,
      });
      hook = archiver.storeFailpoint;
      await archiver.start();
      for (const p of passes) p.start();
      log.info(
        {
          archive: store.location,
          formats: c.ARCHIVER_FORMATS,
          retentionMs: c.ARCHIVER_RETENTION,
          region: c.ARCHIVER_REGION ?? '*',
        },
        `archiving ${stream.name} to ${store.location}`,
      );
    },
    onDeposed: async (err) => {
      const a = archiver;
      archiver = undefined;
      hook = undefined;
      await a?.abort(err);
    },
    onRenewal: (r) =>
      metrics.leaseRenewalDuration.observe(
        { outcome: r.outcome, late: String(r.late) },
        r.ms / 1000,
      ),
    onTickDelay: (ms) => metrics.leaseTickDelay.observe(ms / 1000),
    onStepDown: () => metrics.leaseStepDowns.inc(),
  });

  return {
    async prepare() {
      await rawStore.probe();
      const jsm = await jetstreamManager(rt.nc);
      await ensureStream(jsm, stream, { update: false });
      streamCreated = (await jsm.streams.info(stream.name)).created;
      await lease.open();
    },
    actors: [leadership],
    ready: { archive_store: () => gate.isUp() },
    background: [
      // Stopped before the actor drains: the open segment is committed so its batches can settle.
      {
        name: 'archive-flush',
        start: () => undefined,
        stop: async () => archiver?.flushAndClose(),
      },
      ...passes.map((p) => ({ name: p.name, start: () => undefined, stop: () => p.stop() })),
    ],
    close: [
      { name: 'archive-gate', stop: async () => gate.close() },
      { name: 'archive-store', stop: () => rawStore.close() },
    ],
  };
}

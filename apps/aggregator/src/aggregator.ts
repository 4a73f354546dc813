import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Actor, Outcomes, StoreGate, type Delivery, type Outcome } from '@sluice/actor';
import { AsyncPublisher, ensureStream } from '@sluice/jetstream';
import { replayConsumerDescription, type Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import { createPool } from '@sluice/pg';
import type { Pool } from 'pg';
import type { Registry } from 'prom-client';
import { deviceDigest, WindowCloser } from './closer';
import type { Config } from './config';
import { DerivedBackfills } from './derived-backfill';
import { isStoreContention, isTransientStoreError, StoreUnavailableError } from './errors';
import { AggregatorMetrics } from './metrics';
import { checkMigrated, migrate, migrationsDir } from './migrate';
import { decodeCleanMessage, type CleanMessage } from './partial';
import { Rebuilds, RebuildIncompleteError } from './rebuild';
import { decodeReplay, type ReplayItem } from './replay';
import { Partitions } from './partitions';
import { RollupQueries } from './query';
import {
  compilePipeline,
  documentFromEnvironment,
  LivePipeline,
  PipelineConfigStore,
  type PipelineDocument,
  type PipelineSnapshot,
} from './pipeline-config';
import type { Resolution } from './resolutions';
import { RollupWriter, type FlushStats } from './writer';

export const SERVICE = 'aggregator';

export interface AggregatorDeps {
  nc: NatsConnection;
  topology: Topology;
  config: Config;
  log: Logger;
  registry: Registry;
  /** Wall clock (tests). Default `Date.now`. */
  now?: () => number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The aggregator's parts: the clean-telemetry actor whose handler is one flush transaction per batch
 * (the actor collects a batch for the flush interval, so a batch is a flush), the window closer, and
 * the periodic partition upkeep. `main.ts` wires it with the query API; tests run it in-process.
 */
export class Aggregator {
  readonly pool: Pool;
  readonly metrics: AggregatorMetrics;
  /** Resolutions served now, finest first. */
  get resolutions(): readonly Resolution[] {
    return this.pipeline.resolutions;
  }

  /** The live pipeline configuration (resolutions, retention, derived series) this replica serves. */
  readonly pipeline: LivePipeline;
  readonly configStore: PipelineConfigStore;
  readonly backfills: DerivedBackfills;
  readonly partitions: Partitions;
  readonly writer: RollupWriter;
  readonly closer: WindowCloser;
  readonly queries: RollupQueries;
  readonly actor: Actor<CleanMessage>;
  /** Consumer of `replay.<target>.>`: range rebuilds and DLQ redrives (unless the target is `off`). */
  readonly replayActor: Actor<ReplayItem> | undefined;
  readonly rebuilds: Rebuilds;
  /** PostgreSQL as the actor sees it: while down, nothing is pulled and the flush in hand is held. */
  readonly gate: StoreGate;
  private readonly publisher: AsyncPublisher;
  private readonly envDocument: PipelineDocument;
  private readonly log: Logger;
  private readonly now: () => number;
  private commits = 0;
  private readonly killAfter: number | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private maintaining: Promise<void> | undefined;

  constructor(private readonly deps: AggregatorDeps) {
    const { config, log } = deps;
    this.log = log;
    this.now = deps.now ?? Date.now;
    this.envDocument = documentFromEnvironment(config);
    this.metrics = new AggregatorMetrics(deps.registry);
    this.pool = createPool({
      service: SERVICE,
      url: config.PG_URL,
      max: config.AGGREGATOR_PG_POOL,
      connectionTimeoutMs: 5_000,
      log,
    });
    this.configStore = new PipelineConfigStore(this.pool);
    // Until prepare() has read the stored configuration, the environment's (version 0) is served.
    this.pipeline = new LivePipeline({
      store: this.configStore,
      initial: compilePipeline(0, this.envDocument),
      prepare: (next) => this.prepareResolutions(next),
      log,
      onApplied: (next) => this.metrics.configVersion.set(next.version),
    });
    this.partitions = new Partitions(this.pool, this.pipeline);
    this.writer = new RollupWriter(this.pool, this.partitions, this.pipeline, {
      maxFutureSkewMs: config.AGGREGATOR_MAX_FUTURE_SKEW,
      allowedLatenessMs: config.AGGREGATOR_ALLOWED_LATENESS,
      idleTimeoutMs: config.AGGREGATOR_IDLE_TIMEOUT,
      now: this.now,
    });
    this.publisher = new AsyncPublisher(deps.nc);
    this.closer = new WindowCloser({
      pool: this.pool,
      publisher: this.publisher,
      topology: deps.topology,
      pipeline: this.pipeline,
      publish:
        config.AGGREGATOR_PUBLISH_RESOLUTIONS.length > 0
          ? new Set(config.AGGREGATOR_PUBLISH_RESOLUTIONS)
          : undefined,
      allowedLatenessMs: config.AGGREGATOR_ALLOWED_LATENESS,
      idleTimeoutMs: config.AGGREGATOR_IDLE_TIMEOUT,
      fullPassEveryMs: config.AGGREGATOR_CLOSE_FULL_INTERVAL,
      log,
      metrics: this.metrics,
      deviceDigest: deviceDigest(config.DEVICE_ID_HASH_KEY),
    });
    this.queries = new RollupQueries(this.pool);
    this.backfills = new DerivedBackfills({
      pool: this.pool,
      pipeline: this.pipeline,
      writer: this.writer,
      store: this.configStore,
      log,
    });
    this.rebuilds = new Rebuilds(this.pool, this.partitions, this.pipeline, this.writer, {
      maxFutureSkewMs: config.AGGREGATOR_MAX_FUTURE_SKEW,
      now: this.now,
    });
    const fault = config.AGGREGATOR_FAULT
      ? /^kill-after-commit:(\d+)$/.exec(config.AGGREGATOR_FAULT)
      : null;
    this.killAfter = fault ? Number(fault[1]) : undefined;
    this.gate = new StoreGate({
      store: 'postgres',
      probe: async () => {
        await this.pool.query('SELECT 1');
      },
      isOutage: (err) => err instanceof StoreUnavailableError,
      log,
      registry: deps.registry,
    });
    // The two consumers differ in stream, durable, decoding and handler; flushes, bounds, the store
    // gate and the DLQ are the same.
    const common = {
      service: SERVICE,
      nc: deps.nc,
      dlq: { stream: deps.topology.streams.dlq, subject: deps.topology.dlq(SERVICE) },
      prefetch: { maxBytes: config.AGGREGATOR_PREFETCH_BYTES },
      maxDeliver: config.AGGREGATOR_MAX_DELIVER,
      gates: [this.gate],
      holdOnOutageMs: config.AGGREGATOR_STORE_RETRY,
      logger: log,
      registry: deps.registry,
    };
    const batch = {
      maxMessages: config.AGGREGATOR_FLUSH_MAX_MESSAGES,
      maxBytes: config.AGGREGATOR_PREFETCH_BYTES,
      lingerMs: config.AGGREGATOR_FLUSH_INTERVAL,
    };
    this.actor = new Actor<CleanMessage>({
      ...common,
      stream: deps.topology.streams.clean,
      consumer: {
        durable: config.AGGREGATOR_DURABLE,
        filterSubjects: [deps.topology.filters.clean],
        ackWaitMs: config.AGGREGATOR_ACK_WAIT,
        maxAckPending: Math.max(10_000, config.AGGREGATOR_FLUSH_MAX_MESSAGES * 4),
      },
      decode: decodeCleanMessage,
      handle: (b) => this.handle(b),
      batch: { ...batch, concurrency: config.AGGREGATOR_FLUSH_CONCURRENCY },
    });
    // Replays in order, one batch at a time: a rebuild's commit comes after its batches.
    this.replayActor =
      config.AGGREGATOR_REPLAY_TARGET === 'off'
        ? undefined
        : new Actor<ReplayItem>({
            ...common,
            stream: deps.topology.streams.replay,
            consumer: {
              durable: `${config.AGGREGATOR_DURABLE}-replay`,
              filterSubjects: [deps.topology.replayFilter(config.AGGREGATOR_REPLAY_TARGET)],
              ackWaitMs: config.AGGREGATOR_ACK_WAIT,
              maxAckPending: Math.max(1_000, config.AGGREGATOR_FLUSH_MAX_MESSAGES * 4),
              description: replayConsumerDescription('rebuild'),
            },
            decode: decodeReplay,
            handle: (b) => this.handleReplay(b),
            batch,
          });
  }

  /** Migrations (or, with `AGGREGATOR_MIGRATE_ON_START=false`, the check that they ran), resolution tables, current partitions and the ROLLUPS stream. */
  async prepare(): Promise<void> {
    const dir = migrationsDir(this.deps.config.AGGREGATOR_MIGRATIONS_DIR);
    if (this.deps.config.AGGREGATOR_MIGRATE_ON_START) await migrate(this.pool, dir, this.log);
    else await checkMigrated(this.pool, dir);
    const { version, overridden } = await this.configStore.seed(this.envDocument);
    if (overridden)
      this.log.warn(
        { version: version.version, actor: version.actor },
        'the pipeline configuration was changed through the admin API: AGGREGATOR_RESOLUTIONS, _RETENTION and _DERIVED are ignored',
      );
    const stored = compilePipeline(version.version, version.document);
    await this.prepareResolutions(stored);
    this.pipeline.serve(stored);
    await ensureStream(await jetstreamManager(this.deps.nc), this.deps.topology.streams.rollups);
  }

  /** Resolution tables and current partitions of a configuration, before it is served. */
  private async prepareResolutions(next: PipelineSnapshot): Promise<void> {
    await this.partitions.ensureResolutionTables(next.resolutions);
    await this.partitions.createAhead(this.now(), next.resolutions);
  }

  /** Starts the closer, upkeep and configuration timers (the actor is started by `serve` or {@link start}). */
  startTimers(): void {
    const { config } = this.deps;
    const close = setInterval(() => void this.closer.trigger(), config.AGGREGATOR_CLOSE_INTERVAL);
    const upkeep = setInterval(() => void this.maintain(), config.AGGREGATOR_MAINTENANCE_INTERVAL);
    const live = setInterval(() => {
      if (this.stopping) return;
      void this.pipeline.refresh().then(() => this.backfills.advance());
    }, config.AGGREGATOR_CONFIG_POLL);
    close.unref();
    upkeep.unref();
    live.unref();
    this.timers.push(close, upkeep, live);
  }

  /** prepare + actor + timers: everything but the API (tests). */
  async start(): Promise<void> {
    await this.prepare();
    await this.actor.start();
    await this.replayActor?.start();
    this.startTimers();
  }

  /** Stops timers, lets a flush in progress finish, drains the actor and closes PostgreSQL. */
  async stop(): Promise<void> {
    this.stopTimers();
    await Promise.all([this.actor.stop(), this.replayActor?.stop()]);
    await this.closePool();
  }

  /** First half of shutdown: no new closer/upkeep passes, and a flush waiting on the store gives up. */
  stopTimers(): void {
    this.stopping = true;
    this.gate.close();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  async closePool(): Promise<void> {
    await this.closer.idle();
    await this.pipeline.idle();
    await this.backfills.idle();
    this.publisher.close();
    await this.maintaining;
    await this.pool.end();
  }

  /** Creates partitions ahead, drops expired ones and prunes expired applied-message ids. */
  maintain(now = this.now()): Promise<void> {
    if (this.maintaining) return this.maintaining;
    this.maintaining = (async () => {
      try {
        await this.partitions.createAhead(now);
        const dropped = await this.partitions.dropExpired(now);
        if (dropped.length > 0) {
          this.metrics.partitionsDropped.inc(dropped.length);
          this.log.info({ partitions: dropped }, 'dropped expired roll-up partitions');
        }
        await this.rebuilds.prune(now - this.deps.config.AGGREGATOR_REBUILD_RETENTION);
        const cutoff = now - this.deps.config.AGGREGATOR_APPLIED_RETENTION;
        for (let i = 0; i < 200; i++) {
          const r = await this.pool.query(
            `DELETE FROM applied_messages WHERE msg_id IN (SELECT msg_id FROM applied_messages WHERE applied_at < 'epoch'::timestamptz + $1::float8 * interval '1 millisecond' LIMIT 5000)`,
            [cutoff],
          );
          if ((r.rowCount ?? 0) < 5000) break;
        }
      } catch (err) {
        this.log.warn({ err }, 'partition upkeep failed; will retry');
      } finally {
        this.maintaining = undefined;
      }
    })();
    return this.maintaining;
  }

  private async handle(batch: ReadonlyArray<Delivery<CleanMessage>>) {
    const messages = batch.map((d) => d.value);
    const stats = await this.flushWithRetry(messages);
    this.commits++;
    if (this.killAfter !== undefined && this.commits >= this.killAfter) {
      // Test fault point: committed, not acked.
      this.log.warn(
        { commits: this.commits },
        'fault injection: killing the process after commit, before ack',
      );
      this.log.flush?.();
      process.kill(process.pid, 'SIGKILL');
      await sleep(10_000);
    }
    this.record(messages, stats);
    this.observeVisible(batch, stats);
    // Late readings may have made new rows or dirty ones below where bounded closer passes look.
    void this.closer.trigger({ full: stats.late.size > 0 });
    return batch.map(() => Outcomes.ack());
  }

  /**
   * Replayed batches: DLQ redrives merge into the live roll-ups like clean messages (exactly once by
   * their original message id); rebuild batches are staged; commits replace their range once every
   * batch is staged (before that they are retried with a delay) and announce the result.
   */
  private async handleReplay(batch: ReadonlyArray<Delivery<ReplayItem>>): Promise<Outcome[]> {
    const live = batch.flatMap((d) => (d.value.kind === 'redrive' ? [d.value.msg] : []));
    if (live.length > 0) {
      const stats = await this.retryContention(() => this.writer.flush(live));
      this.record(live, stats);
    }
    const staged = new Map<string, CleanMessage[]>();
    for (const d of batch) {
      if (d.value.kind !== 'rebuild') continue;
      const list = staged.get(d.value.rebuild) ?? [];
      list.push(d.value.msg);
      staged.set(d.value.rebuild, list);
    }
    for (const [rebuild, messages] of staged) {
      const s = await this.retryContention(() => this.rebuilds.stage(rebuild, messages));
      if (s.late)
        this.log.warn(
          { rebuild, messages: messages.length },
          'replayed batches of a committed rebuild ignored',
        );
    }
    const outcomes: Outcome[] = [];
    for (const d of batch) {
      if (d.value.kind !== 'commit') {
        outcomes.push(Outcomes.ack());
        continue;
      }
      const commit = d.value.commit;
      try {
        const status = await this.retryContention(() => this.rebuilds.commit(commit));
        this.log.info({ ...status }, 'rebuild committed');
        this.deps.nc.publish(
          this.deps.topology.replayStatus(commit.rebuild),
          JSON.stringify(status),
        );
        void this.closer.trigger({ full: true });
        outcomes.push(Outcomes.ack());
      } catch (err) {
        if (!(err instanceof RebuildIncompleteError)) throw err;
        this.log.info(
          { rebuild: err.rebuild, staged: err.staged, expected: err.expected },
          'rebuild commit waits for its batches',
        );
        outcomes.push(Outcomes.retry(err, 1_000));
      }
    }
    return outcomes;
  }

  /**
   * One flush, retried in place only on contention (deadlock, serialization, lock timeout). A store
   * outage is thrown at once as {@link StoreUnavailableError}: the actor's gate then holds the batch,
   * probes PostgreSQL and runs it again as soon as it answers (logged once, not per batch).
   */
  private flushWithRetry(messages: CleanMessage[]): Promise<FlushStats> {
    return this.retryContention(() => this.writer.flush(messages));
  }

  private async retryContention<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const end = this.metrics.flushDuration.startTimer();
      try {
        const result = await fn();
        end();
        return result;
      } catch (err) {
        if (!isTransientStoreError(err)) throw err;
        if (!isStoreContention(err) || attempt >= 9 || this.stopping) {
          throw new StoreUnavailableError(`PostgreSQL unavailable: ${(err as Error).message}`, {
            cause: err,
          });
        }
        this.metrics.flushRetries.inc();
        await sleep(Math.min(1_000, 20 * 2 ** attempt));
      }
    }
  }

  /**
   * Roll-up freshness (the SLI of "99 % of telemetry visible within 30 s"): from each newly applied
   * clean message's JetStream publish to the commit that made its readings visible in the query API.
   */
  private observeVisible(batch: ReadonlyArray<Delivery<CleanMessage>>, stats: FlushStats): void {
    const now = Date.now();
    for (const d of batch) {
      if (d.value.readings.length === 0 || stats.alreadyApplied?.has(d.value.id)) continue;
      const publishedMs = Math.floor(d.msg.info.timestampNanos / 1e6);
      this.metrics.visible.observe(Math.max(0, now - publishedMs) / 1000);
    }
  }

  private record(messages: CleanMessage[], stats: FlushStats): void {
    this.metrics.messages.inc({ outcome: 'applied' }, stats.applied);
    if (stats.messages > stats.applied)
      this.metrics.messages.inc({ outcome: 'already_applied' }, stats.messages - stats.applied);
    this.metrics.events.inc({ kind: 'aggregated' }, stats.readings);
    let detections = 0;
    let invalid = 0;
    for (const m of messages) {
      detections += m.detections;
      invalid += m.invalid;
    }
    if (detections) this.metrics.events.inc({ kind: 'detection' }, detections);
    if (invalid) this.metrics.events.inc({ kind: 'invalid' }, invalid);
    if (stats.expired) this.metrics.events.inc({ kind: 'expired' }, stats.expired);
    for (const [resolution, n] of stats.late) this.metrics.lateEvents.inc({ resolution }, n);
  }
}

import { jetstream, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  Actor,
  Outcomes,
  PoisonMessageError,
  StoreGate,
  type BackoffOptions,
  type BatchOptions,
  type Delivery,
  type Outcome,
  type PrefetchOptions,
} from '@sluice/actor';
import type { StreamSpec } from '@sluice/jetstream';
import type { Service } from '@sluice/runtime';
import {
  decodeBatch,
  dlqSubject,
  parseReplaySource,
  replayConsumerDescription,
  STREAMS,
  type EventBatch,
} from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import type { Registry } from 'prom-client';
import { publishEventDeadLetter } from './dead-letter';
import { SinkContractError, SinkUnavailableError, SinkWriteTimeoutError } from './errors';
import { SinkMetrics } from './metrics';
import { flatten } from './records';
import { retryDelay, sleepUnlessAborted, withTimeout, type RetryOptions } from './retry';
import type { Sink, SinkHealth, WriteResult } from './sink';

export interface SinkRunnerOptions {
  sink: Sink;
  /** Service name: DLQ subject `dlq.<service>` and the actor's metric label. */
  service: string;
  nc: NatsConnection;
  /** The stream of clean batches (name + subjects; provisioned idempotently). */
  stream: StreamSpec;
  /** Subjects of the stream to consume. Default: all. */
  filterSubjects?: string[];
  /** Durable consumer name, one per sink so a slow sink never holds back another. Default `sink.name`. */
  durable?: string;
  /** Server redelivery after this long without ack (the runner heartbeats while writing). Default 30 s. */
  ackWaitMs?: number;
  /** Unacknowledged messages across replicas. Default 1 000. */
  maxAckPending?: number;
  /**
   * Also consume this sink's replay subject (`replay.<service>.>` on the REPLAY stream): batches
   * re-published from the archive or re-driven from the DLQ, stored like clean ones under their
   * original provenance (`Sluice-Source-*` headers), on a durable of their own so a backfill never
   * delays live data. Default none.
   */
  replay?: {
    stream: StreamSpec;
    /** Subject filter, normally `topology.replayFilter(service)`. */
    filterSubject: string;
    /** Durable name. Default `<durable>-replay`. */
    durable?: string;
  };
  /** Where dead letters go. Default the shared DLQ stream, `dlq.<service>`. */
  dlq?: { stream: StreamSpec; subject: string };
  /** Messages per write: count, bytes, linger. Default 64 messages, 4 MiB, linger 20 ms. */
  batch?: BatchOptions;
  /** Bytes (or messages) pulled ahead of the writer: the buffer bound. Default 2 × batch bytes. */
  prefetch?: PrefetchOptions;
  /**
   * Deliveries of a message before it is dead-lettered as a whole. Each delivery already spends the
   * in-process retry budget, so the default 50 rides out an outage of roughly an hour. Default 50.
   */
  maxDeliver?: number;
  /** Redelivery delays once the in-process budget is spent. Default the actor's schedule. */
  backoff?: BackoffOptions;
  retry?: RetryOptions;
  /** Bound on one `write()` call; a timeout counts as transient. Default 60 s. */
  writeTimeoutMs?: number;
  /** How often the sink's health check runs. Default 5 s. */
  healthIntervalMs?: number;
  /** Longest a batch is held through an outage of the destination before it is nak'ed with backoff. Default 10 min. */
  holdOnOutageMs?: number;
  /** Create/update stream, consumer and DLQ stream on start. Default true. */
  provision?: boolean;
  logger: Logger;
  /** Registry for the sink metrics and the actor's; several runners may share one. */
  registry: Registry;
}

type Attempt = { ok: WriteResult } | { retry: Error } | { fatal: Error };

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function decodeOrPoison(m: JsMsg): EventBatch {
  try {
    return decodeBatch(m.data);
  } catch (err) {
    throw new PoisonMessageError(asError(err).message, { cause: err });
  }
}

/**
 * Binds one sink to its own durable consumer through an {@link Actor}: decodes clean batches, writes
 * their events in one call per batch, retries transient failures (in-process, then nak with backoff),
 * dead-letters rejected events one by one and acks a message only once all of its events are stored
 * or safely in the DLQ.
 */
export class SinkRunner {
  readonly actor: Actor<EventBatch>;
  /** The consumer of the replay subject, when {@link SinkRunnerOptions.replay} is set. */
  readonly replayActor: Actor<EventBatch> | undefined;
  readonly sink: Sink;
  /** The destination as the actor sees it: down after a write failed through the in-process retries. */
  readonly gate: StoreGate;
  private readonly metrics: SinkMetrics;
  private readonly labels: { sink: string };
  private readonly js: JetStreamClient;
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private readonly dlq: { subject: string };
  private readonly maxBatchBytes: number;
  private healthTimer: NodeJS.Timeout | undefined;
  private lastHealth: SinkHealth = { ok: false, detail: 'not checked yet' };

  constructor(private readonly opts: SinkRunnerOptions) {
    this.sink = opts.sink;
    this.labels = { sink: opts.sink.name };
    this.metrics = new SinkMetrics(opts.registry);
    this.js = jetstream(opts.nc);
    this.log = opts.logger.child({ sink: opts.sink.name });
    this.dlq = { subject: opts.dlq?.subject ?? dlqSubject(opts.service) };
    const batch = { maxMessages: 64, maxBytes: 4 * 1024 * 1024, lingerMs: 20, ...opts.batch };
    this.maxBatchBytes = batch.maxBytes;
    this.gate = new StoreGate({
      store: opts.sink.name,
      probe: async () => {
        await this.sink.connect();
        const health = await this.sink.health();
        if (!health.ok)
          throw new SinkUnavailableError(this.sink.name, {
            cause: new Error(health.detail ?? 'health check failed'),
          });
      },
      isOutage: (err) => err instanceof SinkUnavailableError,
      log: this.log,
      registry: opts.registry,
    });
    const durable = opts.durable ?? opts.sink.name;
    const actor = (
      stream: StreamSpec,
      consumer: { durable: string; filterSubjects?: string[]; description?: string },
      decode: (m: JsMsg) => EventBatch,
    ) =>
      new Actor<EventBatch>({
        service: opts.service,
        nc: opts.nc,
        stream,
        consumer: {
          ackWaitMs: opts.ackWaitMs ?? 30_000,
          maxAckPending: opts.maxAckPending ?? 1_000,
          ...consumer,
        },
        dlq: opts.dlq ?? { stream: STREAMS.DLQ, subject: this.dlq.subject },
        decode,
        handle: (batch) => this.handle(batch),
        batch,
        prefetch: opts.prefetch ?? { maxBytes: 2 * batch.maxBytes },
        maxDeliver: opts.maxDeliver ?? 50,
        gates: [this.gate],
        ...(opts.holdOnOutageMs !== undefined ? { holdOnOutageMs: opts.holdOnOutageMs } : {}),
        ...(opts.backoff ? { backoff: opts.backoff } : {}),
        ...(opts.provision === false ? { provision: false } : {}),
        logger: opts.logger,
        registry: opts.registry,
      });
    this.actor = actor(
      opts.stream,
      { durable, ...(opts.filterSubjects?.length ? { filterSubjects: opts.filterSubjects } : {}) },
      decodeOrPoison,
    );
    this.replayActor = opts.replay
      ? actor(
          opts.replay.stream,
          {
            durable: opts.replay.durable ?? `${durable}-replay`,
            filterSubjects: [opts.replay.filterSubject],
            description: replayConsumerDescription('store'),
          },
          (m) => {
            const batch = decodeOrPoison(m);
            try {
              parseReplaySource((name) => m.headers?.get(name) || undefined, batch.events.length);
            } catch (err) {
              throw new PoisonMessageError(asError(err).message, { cause: err });
            }
            return batch;
          },
        )
      : undefined;
  }

  /**
   * Connects the sink and starts its health checks. A transient connect failure (store down) is
   * logged and the runner goes on: writes retry until the store is back. A permanent one throws.
   * {@link toService} runs it as the service's `prepare`.
   */
  async prepare(): Promise<void> {
    try {
      await this.sink.connect();
    } catch (err) {
      if (!this.sink.isRetriable(err)) throw err;
      this.log.warn({ err }, 'sink not reachable at start; writes will retry');
    }
    await this.checkHealth();
    clearInterval(this.healthTimer);
    this.healthTimer = setInterval(
      () => void this.checkHealth(),
      this.opts.healthIntervalMs ?? 5_000,
    );
    this.healthTimer.unref();
  }

  /** {@link prepare}, then the actor: for use without `serve()` (tests, embedding). */
  async start(): Promise<void> {
    await this.prepare();
    await this.actor.start();
    await this.replayActor?.start();
  }

  /** An in-process retry gives up now: its messages are nak'ed (redelivered), never lost. */
  abortRetries(): void {
    clearInterval(this.healthTimer);
    this.abort.abort();
    this.gate.close();
  }

  /** Closes the sink, giving up after `deadlineMs`. */
  async closeSink(deadlineMs = 5_000): Promise<void> {
    clearInterval(this.healthTimer);
    await this.sink.close(Date.now() + deadlineMs);
  }

  /**
   * The runner as a runtime {@link Service}: `prepare` connects the sink, the actor drains on
   * shutdown after in-process retries give up, and the sink closes last. Readiness includes the
   * destination's last health check.
   */
  toService(): Service {
    return {
      prepare: () => this.prepare(),
      actors: this.replayActor ? [this.actor, this.replayActor] : [this.actor],
      // Stopped before the actor drains, so a batch waiting on a retry hands its messages back.
      background: [
        {
          name: `${this.sink.name}-retries`,
          start: () => undefined,
          stop: async () => this.abortRetries(),
        },
      ],
      close: [{ name: `${this.sink.name}-sink`, stop: () => this.closeSink() }],
      ready: { sink: async () => (await this.sink.health()).ok },
    };
  }

  /** Finishes the batch in hand (bounded), stops pulling, then closes the sink. */
  async stop(deadlineMs = 25_000): Promise<void> {
    const started = Date.now();
    this.abortRetries();
    await Promise.all([this.actor.stop(deadlineMs), this.replayActor?.stop(deadlineMs)]);
    await this.closeSink(Math.max(1_000, deadlineMs - (Date.now() - started)));
  }

  /** Pulling, and the last health check of the destination passed. */
  isReady(): boolean {
    return this.actor.isReady() && (this.replayActor?.isReady() ?? true) && this.lastHealth.ok;
  }

  get health(): SinkHealth {
    return this.lastHealth;
  }

  private async checkHealth(): Promise<void> {
    this.lastHealth = await this.sink
      .health()
      .catch((err) => ({ ok: false, detail: asError(err).message }));
    this.metrics.healthy.set(this.labels, this.lastHealth.ok ? 1 : 0);
  }

  private async handle(deliveries: ReadonlyArray<Delivery<EventBatch>>): Promise<Outcome[]> {
    const flat = flatten(deliveries);
    const bytes = deliveries.reduce((n, d) => n + d.msg.data.length, 0);
    this.metrics.bufferRecords.set(this.labels, flat.records.length);
    this.metrics.bufferFill.set(this.labels, Math.min(1, bytes / this.maxBatchBytes));
    try {
      const rejected = flat.invalid.map((r) => ({ ...r, eventId: '' }));
      if (flat.records.length > 0) {
        const attempt = await this.writeWithRetry(flat);
        if ('retry' in attempt) return deliveries.map(() => Outcomes.retry(attempt.retry));
        if ('fatal' in attempt) return deliveries.map(() => Outcomes.dead(attempt.fatal));
        const seen = new Set<number>();
        for (const r of attempt.ok.rejected) {
          if (
            !Number.isInteger(r.index) ||
            r.index < 0 ||
            r.index >= flat.records.length ||
            seen.has(r.index)
          ) {
            throw new SinkContractError(
              `sink ${this.sink.name} rejected record index ${r.index} of ${flat.records.length}`,
            );
          }
          seen.add(r.index);
          const rec = flat.records[r.index]!;
          rejected.push({
            delivery: flat.owner[r.index]!,
            index: flat.position[r.index]!,
            error: r.error,
            eventId: rec.id,
          });
        }
        const now = Date.now();
        flat.records.forEach((rec, i) => {
          if (!seen.has(i))
            this.metrics.eventLag.observe(
              this.labels,
              Math.max(0, now - rec.source.publishedAt.getTime()) / 1000,
            );
        });
        this.metrics.recordsWritten.inc(this.labels, flat.records.length - seen.size);
      }
      return await Promise.all(
        deliveries.map((d, i) =>
          this.settleRejected(
            d,
            rejected.filter((r) => r.delivery === i),
          ),
        ),
      );
    } finally {
      this.metrics.bufferRecords.set(this.labels, 0);
      this.metrics.bufferFill.set(this.labels, 0);
    }
  }

  /** Dead-letters the rejected events of one message; ack only when every one is in the DLQ. */
  private async settleRejected(
    d: Delivery<EventBatch>,
    rejected: Array<{ index: number; error: Error; eventId: string }>,
  ): Promise<Outcome> {
    if (rejected.length === 0) return Outcomes.ack();
    try {
      await Promise.all(
        rejected.map((r) =>
          publishEventDeadLetter(this.js, {
            service: this.opts.service,
            subject: this.dlq.subject,
            msg: d.msg,
            batch: d.value,
            index: r.index,
            eventId: r.eventId,
            error: r.error,
          }),
        ),
      );
    } catch (err) {
      this.log.error(
        { err, seq: d.seq },
        'per-event dead-letter publish failed; message will be redelivered',
      );
      return Outcomes.retry(asError(err));
    }
    for (const r of rejected) {
      this.metrics.recordsRejected.inc({ ...this.labels, error_class: r.error.name });
      this.log.warn({ seq: d.seq, index: r.index, err: r.error }, 'event dead-lettered');
    }
    return Outcomes.ack();
  }

  private async writeWithRetry(flat: ReturnType<typeof flatten>): Promise<Attempt> {
    const budget = this.opts.retry?.budgetMs ?? 2_000;
    const timeoutMs = this.opts.writeTimeoutMs ?? 60_000;
    const giveUpAt = Date.now() + budget;
    for (let attempt = 1; ; attempt++) {
      const end = this.metrics.writeDuration.startTimer(this.labels);
      try {
        if (attempt > 1)
          await withTimeout(
            this.sink.connect(),
            timeoutMs,
            () => new SinkWriteTimeoutError(timeoutMs),
          );
        const result = await withTimeout(
          this.sink.write(flat.records),
          timeoutMs,
          () => new SinkWriteTimeoutError(timeoutMs),
        );
        end();
        return { ok: result };
      } catch (err) {
        end();
        const e = asError(err);
        const retriable = e instanceof SinkWriteTimeoutError || this.sink.isRetriable(e);
        this.metrics.writeErrors.inc({ ...this.labels, retriable: String(retriable) });
        if (!retriable) {
          this.log.error({ err: e }, 'sink write failed permanently; dead-lettering the batch');
          return { fatal: e };
        }
        // Counted in metrics; an outage is logged once, by the gate, when the retries run out.
        const delay = retryDelay(attempt, this.opts.retry);
        if (
          Date.now() + delay > giveUpAt ||
          !(await sleepUnlessAborted(delay, this.abort.signal))
        ) {
          // An outage only when the destination itself does not answer: an error of this batch alone
          // takes the nak-with-backoff path and lets other batches through.
          const health = await this.sink
            .health()
            .catch((err: unknown) => ({ ok: false, detail: asError(err).message }));
          return { retry: health.ok ? e : new SinkUnavailableError(this.sink.name, { cause: e }) };
        }
      }
    }
  }
}

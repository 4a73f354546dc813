// One destination of the exporter: its sink (behind its filters) and the SinkRunner that feeds it from a
// durable consumer of its own, `exporter-<name>`. Started, drained and stopped as a unit; restarted
// with back-off when it fails, so a destination that breaks never takes the others with it.
import type { NatsConnection } from '@nats-io/nats-core';
import type { Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import { SinkMetrics, SinkRunner, withTimeout } from '@sluice/sinks-core';
import type { Registry } from 'prom-client';
import type { DestinationSpec } from './config';
import { DestinationStartError, ExporterTimeoutError } from './errors';
import { consumerSubjects, FilteredSink, RecordFilter } from './filter';
import type { ExporterMetrics } from './metrics';
import { SINK_TYPES } from './sink-types';

/** What every destination of one exporter shares. */
export interface DestinationDeps {
  /** The exporter's service name: the DLQ subject is `dlq.<service>`. */
  service: string;
  nc: NatsConnection;
  topology: Topology;
  log: Logger;
  registry: Registry;
  metrics: ExporterMetrics;
  /** Bound on one start (first connect, consumers). */
  startTimeoutMs: number;
  /** Bound on one drain (remove, change, shutdown). */
  drainTimeoutMs: number;
  /** Restart back-off after a failure: doubling from `initialMs` to `maxMs`. Default 1 s to 60 s. */
  restart?: { initialMs: number; maxMs: number };
}

export type DestinationState = 'starting' | 'running' | 'failed' | 'stopped';

/**
 * The name a destination is known by outside the exporter: its durable consumer, its replay target
 * (`sluice replay --target exporter-<name>`) and the service of its dead letters.
 */
export function destinationTarget(name: string): string {
  return `exporter-${name}`;
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

export class Destination {
  readonly name: string;
  private runner: SinkRunner | undefined;
  private current: DestinationState = 'stopped';
  private error: Error | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  /** Start, restart and stop run one at a time. */
  private op: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;

  constructor(
    readonly spec: DestinationSpec,
    private readonly deps: DestinationDeps,
  ) {
    this.name = spec.name;
    this.log = deps.log.child({ destination: spec.name, type: spec.type });
  }

  get state(): DestinationState {
    return this.current;
  }

  /** Why it failed last, while {@link state} is `failed`. */
  get lastError(): Error | undefined {
    return this.error;
  }

  /** Running: its consumers pull. Its destination may be down (degraded): the runner holds the batch. */
  isRunning(): boolean {
    const r = this.runner;
    return (
      this.current === 'running' &&
      r !== undefined &&
      r.actor.state === 'running' &&
      (r.replayActor?.state ?? 'running') === 'running'
    );
  }

  /** Whether the destination answered its last health check (false while down or not running). */
  isHealthy(): boolean {
    return this.isRunning() && this.runner!.health.ok;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.op.then(fn, fn);
    this.op = run.catch(() => undefined);
    return run;
  }

  private build(): SinkRunner {
    const { spec, deps } = this;
    const target = destinationTarget(spec.name);
    const sink = new FilteredSink(
      SINK_TYPES[spec.type]!.create(spec.options, this.log),
      new RecordFilter(spec.filters, deps.topology),
      (n) => deps.metrics.filtered.inc({ destination: spec.name }, n),
    );
    return new SinkRunner({
      sink,
      // The service of its dead letters: `sluice dlq redrive` sends them back to replay.<target>.
      service: target,
      nc: deps.nc,
      stream: deps.topology.streams.clean,
      filterSubjects: consumerSubjects(spec.filters, deps.topology),
      durable: target,
      dlq: { stream: deps.topology.streams.dlq, subject: deps.topology.dlq(deps.service) },
      ...(spec.replay
        ? {
            replay: {
              stream: deps.topology.streams.replay,
              filterSubject: deps.topology.replayFilter(target),
            },
          }
        : {}),
      ackWaitMs: spec.retry.ackWaitMs,
      batch: spec.batch,
      prefetch: { maxBytes: spec.bufferBytes },
      maxDeliver: spec.retry.maxDeliver,
      ...(spec.retry.backoffMs ? { backoff: { scheduleMs: spec.retry.backoffMs } } : {}),
      retry: {
        budgetMs: spec.retry.budgetMs,
        initialMs: spec.retry.initialMs,
        maxMs: spec.retry.maxMs,
      },
      writeTimeoutMs: spec.retry.writeTimeoutMs,
      holdOnOutageMs: spec.retry.holdOnOutageMs,
      logger: this.log,
      registry: deps.registry,
    });
  }

  /** Stops a runner within the drain bound (the batch in hand is finished; the rest is redelivered). */
  private async stopRunner(runner: SinkRunner): Promise<void> {
    const ms = this.deps.drainTimeoutMs;
    await withTimeout(
      runner.stop(ms),
      ms + 5_000,
      () => new ExporterTimeoutError(`draining destination ${this.name}`, ms + 5_000),
    ).catch((err: unknown) => this.log.error({ err }, 'destination did not stop cleanly'));
  }

  private async attempt(): Promise<void> {
    this.current = 'starting';
    const runner = this.build();
    this.runner = runner;
    const starting = runner.start();
    try {
      await withTimeout(
        starting,
        this.deps.startTimeoutMs,
        () =>
          new ExporterTimeoutError(`starting destination ${this.name}`, this.deps.startTimeoutMs),
      );
    } catch (err) {
      this.runner = undefined;
      await this.stopRunner(runner);
      // A start that finishes after the timeout is stopped again once it has.
      void starting.then(
        () => this.stopRunner(runner),
        () => undefined,
      );
      throw err;
    }
    for (const actor of [runner.actor, runner.replayActor]) {
      actor?.lifecycle.whenFailed().catch((err: unknown) => this.onFailure(runner, asError(err)));
    }
    this.current = 'running';
    this.error = undefined;
    this.failures = 0;
    this.deps.metrics.destinationUp.set({ destination: this.name, type: this.spec.type }, 1);
  }

  private failed(err: unknown): Error {
    const e = new DestinationStartError(this.name, { cause: err });
    this.current = 'failed';
    this.error = e;
    this.failures++;
    this.deps.metrics.destinationUp.set({ destination: this.name, type: this.spec.type }, 0);
    return e;
  }

  /**
   * Starts the destination. Resolves `undefined` once it runs, or the error when it could not start: it
   * is then `failed` and restarted with back-off (the caller reports the error; nothing is thrown).
   */
  start(): Promise<Error | undefined> {
    return this.serial(async () => {
      if (this.closed) return undefined;
      try {
        await this.attempt();
        this.log.info(
          { durable: destinationTarget(this.name), replay: this.spec.replay },
          'destination running',
        );
        return undefined;
      } catch (err) {
        const e = this.failed(err);
        this.log.error({ err: e }, 'destination failed to start; restarting with back-off');
        this.scheduleRestart();
        return e;
      }
    });
  }

  private onFailure(runner: SinkRunner, err: Error): void {
    if (this.closed || runner !== this.runner) return;
    void this.serial(async () => {
      if (this.closed || runner !== this.runner) return;
      this.runner = undefined;
      const e = this.failed(err);
      this.log.error({ err: e }, 'destination failed; restarting with back-off');
      await this.stopRunner(runner);
      this.scheduleRestart();
    });
  }

  private scheduleRestart(): void {
    if (this.closed) return;
    const { initialMs, maxMs } = this.deps.restart ?? { initialMs: 1_000, maxMs: 60_000 };
    const base = Math.min(maxMs, initialMs * 2 ** Math.min(this.failures - 1, 20));
    const delay = Math.round(base * (0.8 + 0.4 * Math.random()));
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      void this.serial(async () => {
        if (this.closed || this.current !== 'failed') return;
        this.deps.metrics.restarts.inc({ destination: this.name });
        try {
          await this.attempt();
          this.log.info('destination restarted');
        } catch (err) {
          const e = this.failed(err);
          this.log.error({ err: e, failures: this.failures }, 'destination restart failed');
          this.scheduleRestart();
        }
      });
    }, delay);
    this.restartTimer.unref();
  }

  /**
   * Drains and stops the destination for good: the batch in hand is written and settled (bounded by
   * the drain timeout), its durable consumer stays, so a destination started again on it later resumes
   * where this one stopped.
   */
  stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    return this.serial(async () => {
      const runner = this.runner;
      this.runner = undefined;
      if (runner) await this.stopRunner(runner);
      this.current = 'stopped';
      this.deps.metrics.destinationUp.remove({ destination: this.name, type: this.spec.type });
      new SinkMetrics(this.deps.registry).healthy.remove({ sink: this.name });
      this.log.info('destination stopped');
    });
  }
}

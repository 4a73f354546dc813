// The pipeline's state as the Pipeline page shows it, sampled every CONSOLE_INTERVAL: each service's
// health (/readyz) and event rates (counter deltas of its /metrics), the durable consumers' lag from
// JetStream consumer info, dead letters per service from the DLQ stream's subject counts, and roll-up
// freshness from the roll-ups seen on the ROLLUPS subjects. One sampler for all open pages.
import { jetstreamManager, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { decodeRollup, type Topology } from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import type { Target } from './config';
import { FreshnessWindow } from './freshness';
import { parseMetrics, total, type Sample } from './prom';

/** Counters turned into per-second rates, by the label the page shows. */
const RATE_COUNTERS: ReadonlyArray<
  [label: string, metric: string, where?: Record<string, string>]
> = [
  ['events published', 'sluice_events_published_total'],
  ['rejected', 'sluice_events_rejected_total'],
  ['messages', 'sluice_messages_processed_total'],
  ['duplicates', 'sluice_dedupe_duplicates_total'],
  ['events aggregated', 'sluice_aggregator_events_total', { kind: 'aggregated' }],
  ['roll-ups published', 'sluice_aggregator_rollups_published_total'],
  ['late', 'sluice_aggregator_late_events_total'],
  ['webhook matches', 'sluice_webhook_matched_total'],
  ['webhook attempts', 'sluice_webhook_attempts_total'],
  ['records written', 'sluice_sink_records_written_total'],
  ['rows archived', 'sluice_archiver_rows_written_total'],
  ['failed', 'sluice_messages_failed_total'],
  ['dead-lettered', 'sluice_messages_dead_lettered_total'],
];

/** One service as the page shows it. */
export interface StageState {
  name: string;
  /** `ready`, `not ready` (answers, a check fails) or `down` (no answer). */
  health: 'ready' | 'not ready' | 'down';
  /** The failing readiness checks. */
  failing: string[];
  /** Per-second rates over the last interval, by label; only counters the service exposes. */
  rates: Record<string, number>;
  /** Messages it dead-lettered that are still in the DLQ stream. */
  dlq: number;
}

/** A durable consumer's lag. */
export interface ConsumerState {
  stream: string;
  name: string;
  /** Messages not yet delivered. */
  pending: number;
  /** Delivered, not yet acknowledged. */
  ackPending: number;
  redelivered: number;
}

/** What `/api/stream` pushes: one sample of the whole pipeline. */
export interface PipelineState {
  /** ISO time of the sample. */
  at: string;
  intervalMs: number;
  stages: StageState[];
  consumers: ConsumerState[];
  /** Dead letters in the DLQ stream by the service that wrote them. */
  dlq: Record<string, number>;
  freshness: { p50Ms: number | null; p99Ms: number | null; sloMs: number; rollups: number };
  streams: Array<{ name: string; messages: number; bytes: number }>;
}

export interface PipelineSamplerOptions {
  nc: NatsConnection;
  topology: Topology;
  targets: readonly Target[];
  intervalMs: number;
  freshnessSloMs: number;
  log: Logger;
  /** Receives every sample. */
  onSample(state: PipelineState): void;
  /** Deadline of one /metrics or /readyz request. Default 3000 ms. */
  fetchTimeoutMs?: number;
}

interface Previous {
  at: number;
  counters: Map<string, number>;
}

async function fetchText(
  url: string,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, text: await res.text() };
}

/** Samples the pipeline every `intervalMs` and hands each sample to `onSample`. */
export class PipelineSampler {
  private timer: NodeJS.Timeout | undefined;
  private jsm: JetStreamManager | undefined;
  private sub: Subscription | undefined;
  private readonly freshness = new FreshnessWindow();
  private readonly previous = new Map<string, Previous>();
  private running: Promise<void> | undefined;
  latest: PipelineState | undefined;

  constructor(private readonly opts: PipelineSamplerOptions) {}

  start(): void {
    // Roll-ups of every resolution and region, seen as they are published (a plain subscription:
    // nothing is consumed or acknowledged, the stream is untouched).
    this.sub = this.opts.nc.subscribe(this.opts.topology.filters.rollup, {
      callback: (err, msg) => {
        if (err) return;
        try {
          const r = decodeRollup(msg.data);
          if (r.windowEnd) this.freshness.add(Math.max(0, Date.now() - r.windowEnd.getTime()));
        } catch {
          // not a roll-up: ignored
        }
      },
    });
    const tick = () => {
      this.running = this.sample()
        .then((s) => {
          this.latest = s;
          this.opts.onSample(s);
        })
        .catch((err: unknown) => this.opts.log.warn({ err }, 'pipeline sample failed'))
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.opts.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.sub?.unsubscribe();
    await this.running;
  }

  /** One sample now. */
  async sample(): Promise<PipelineState> {
    const now = Date.now();
    const [stages, js] = await Promise.all([
      Promise.all(this.opts.targets.map((t) => this.stage(t, now))),
      this.jetstream(),
    ]);
    for (const s of stages) s.dlq = js.dlq[s.name] ?? 0;
    return {
      at: new Date(now).toISOString(),
      intervalMs: this.opts.intervalMs,
      stages,
      consumers: js.consumers,
      dlq: js.dlq,
      freshness: {
        p50Ms: this.freshness.quantile(0.5),
        p99Ms: this.freshness.quantile(0.99),
        sloMs: this.opts.freshnessSloMs,
        rollups: this.freshness.count,
      },
      streams: js.streams,
    };
  }

  private async stage(t: Target, now: number): Promise<StageState> {
    const timeout = this.opts.fetchTimeoutMs ?? 3000;
    const [ready, metrics] = await Promise.all([
      fetchText(`${t.url}/readyz`, timeout).catch(() => undefined),
      fetchText(`${t.url}/metrics`, timeout).catch(() => undefined),
    ]);
    const state: StageState = { name: t.name, health: 'down', failing: [], rates: {}, dlq: 0 };
    if (ready) {
      state.health = ready.status === 200 ? 'ready' : 'not ready';
      try {
        const checks = (JSON.parse(ready.text) as { checks?: Record<string, boolean> }).checks;
        state.failing = Object.entries(checks ?? {})
          .filter(([, ok]) => !ok)
          .map(([k]) => k);
      } catch {
        // not JSON: the status says enough
      }
    }
    if (metrics?.status === 200) {
      const parsed: Map<string, Sample[]> = parseMetrics(metrics.text);
      const counters = new Map<string, number>();
      for (const [label, metric, where] of RATE_COUNTERS)
        if (parsed.has(metric)) counters.set(label, total(parsed, metric, where));
      const prev = this.previous.get(t.name);
      if (prev) {
        const seconds = (now - prev.at) / 1000;
        for (const [label, value] of counters) {
          const before = prev.counters.get(label);
          // A restart resets counters: no rate for that interval rather than a negative one.
          if (before !== undefined && value >= before && seconds > 0)
            state.rates[label] = (value - before) / seconds;
        }
      }
      this.previous.set(t.name, { at: now, counters });
    } else {
      this.previous.delete(t.name);
    }
    return state;
  }

  private async jetstream(): Promise<Pick<PipelineState, 'consumers' | 'dlq' | 'streams'>> {
    const out: Pick<PipelineState, 'consumers' | 'dlq' | 'streams'> = {
      consumers: [],
      dlq: {},
      streams: [],
    };
    try {
      this.jsm ??= await jetstreamManager(this.opts.nc);
      const topo = this.opts.topology;
      for (const spec of Object.values(topo.streams)) {
        const info: StreamInfo | undefined = await this.jsm.streams
          .info(spec.name, spec === topo.streams.dlq ? { subjects_filter: '>' } : undefined)
          .catch(() => undefined);
        if (!info) continue;
        out.streams.push({
          name: spec.name,
          messages: info.state.messages,
          bytes: info.state.bytes,
        });
        if (spec === topo.streams.dlq) {
          for (const [subject, n] of Object.entries<number>(info.state.subjects ?? {})) {
            const service = subject.split('.').at(-1)!;
            out.dlq[service] = (out.dlq[service] ?? 0) + n;
          }
          continue;
        }
        for await (const c of this.jsm.consumers.list(spec.name)) {
          if (!c.config.durable_name) continue; // ephemeral: tools, not the pipeline
          out.consumers.push({
            stream: spec.name,
            name: c.name,
            pending: c.num_pending,
            ackPending: c.num_ack_pending,
            redelivered: c.num_redelivered,
          });
        }
      }
    } catch (err) {
      this.opts.log.warn({ err }, 'JetStream state unavailable');
    }
    return out;
  }
}

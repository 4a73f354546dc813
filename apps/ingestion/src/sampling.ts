// Adaptive sampling: the gateway watches its own load (the in-flight byte budget and JetStream
// publish latency) and, under sustained overload, advises devices on every ack to send only a
// fraction of their bulk (then diagnostic) readings. Safety readings are never sampled.
// docs/services/ingestion.md, "Adaptive sampling"; docs/DECISIONS.md #36.
import {
  SENSOR_TIERS,
  TierClassifier,
  type SamplingAdvice,
  type SensorTier,
  type TierRules,
} from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import { Counter, Gauge, type Registry } from 'prom-client';

/** Metrics of adaptive sampling. */
export const SAMPLING_METRICS = {
  /** Gauge: the fraction of readings advised per tier (1 = all). */
  keep: 'sluice_ingest_sampling_keep_ratio',
  /** Gauge: 1 while the gateway is overloaded (some tier advised below 1). */
  overloaded: 'sluice_ingest_overloaded',
  /** Gauge: the last overload pressure sampled (peak budget share, or publish latency ratio). */
  pressure: 'sluice_ingest_overload_pressure',
  /** Counter: telemetry readings received, per tier, while that tier was advised below 1. */
  receivedWhileSampled: 'sluice_ingest_sampled_tier_events_total',
  /** Counter: times the gateway entered overload. */
  overloads: 'sluice_ingest_overloads_total',
} as const;

/** Where the controller reads the gateway's load. */
export interface LoadSource {
  takeLoadSample(): { peakFill: number; publishLatencyMs: number };
}

/** Options of {@link SamplingController}. */
export interface SamplingOptions {
  rules: TierRules;
  /** Pressure at or above which (held for `sustainMs`) sampling goes one step further. */
  enter: number;
  /** Pressure below which (held for `sustainMs`) sampling goes one step back. */
  exit: number;
  sustainMs: number;
  /** Publish latency counted as pressure 1. */
  publishLatencyMs: number;
  /** Smallest bulk fraction (halved per step from 1). */
  minKeep: number;
  /** Smallest diagnostic fraction; 1 = never sampled. */
  diagnosticMinKeep: number;
  /** How often the load is sampled. Default `min(250, sustainMs / 4)` ms. */
  tickMs?: number | undefined;
}

/** One step of the ladder: the fraction advised per sampled tier. */
interface Step {
  bulk: number;
  diagnostic: number;
}

/**
 * The ladder of advice, from "keep everything" down: bulk halves each step to `minKeep`, then
 * diagnostic halves each step to `diagnosticMinKeep`.
 */
export function samplingLadder(minKeep: number, diagnosticMinKeep: number): Step[] {
  const steps: Step[] = [{ bulk: 1, diagnostic: 1 }];
  let bulk = 1;
  while (bulk / 2 >= minKeep - 1e-12) {
    bulk /= 2;
    steps.push({ bulk, diagnostic: 1 });
  }
  if (bulk > minKeep) steps.push({ bulk: (bulk = minKeep), diagnostic: 1 });
  let diagnostic = 1;
  while (diagnostic / 2 >= diagnosticMinKeep - 1e-12) {
    diagnostic /= 2;
    steps.push({ bulk, diagnostic });
  }
  if (diagnostic > diagnosticMinKeep && diagnosticMinKeep < 1)
    steps.push({ bulk, diagnostic: diagnosticMinKeep });
  return steps;
}

/**
 * Samples the load every tick; a pressure at or above `enter` held for `sustainMs` moves the advice
 * one step down the ladder, below `exit` for `sustainMs` one step back up; in between it holds
 * (hysteresis). Logs once on entering overload (the first step down) and once on leaving it.
 */
export class SamplingController {
  readonly classifier: TierClassifier;
  private readonly ladder: Step[];
  private step = 0;
  private aboveSince: number | undefined;
  private belowSince: number | undefined;
  private readonly advices: SamplingAdvice[];
  private timer: NodeJS.Timeout | undefined;
  private readonly keepGauge: Gauge<'tier'>;
  private readonly overloadedGauge: Gauge;
  private readonly pressureGauge: Gauge;
  private readonly received: Counter<'tier'>;
  private readonly overloads: Counter;

  constructor(
    private readonly opts: SamplingOptions,
    private readonly load: LoadSource,
    registry: Registry,
    private readonly log: Logger,
  ) {
    this.classifier = new TierClassifier(opts.rules);
    this.ladder = samplingLadder(opts.minKeep, opts.diagnosticMinKeep);
    this.advices = this.ladder.map((s) => ({
      tiers: SENSOR_TIERS.filter((t) => opts.rules[t].length > 0).map((tier) => ({
        tier,
        keep: tier === 'safety' ? 1 : s[tier],
        sensors: [...opts.rules[tier]],
      })),
    }));
    const registers = [registry];
    this.keepGauge = new Gauge({
      name: SAMPLING_METRICS.keep,
      help: 'Fraction of readings the gateway advises devices to send, per sensor tier (1 = all)',
      labelNames: ['tier'],
      registers,
    });
    this.overloadedGauge = new Gauge({
      name: SAMPLING_METRICS.overloaded,
      help: '1 while the gateway is overloaded and advises sampling',
      registers,
    });
    this.pressureGauge = new Gauge({
      name: SAMPLING_METRICS.pressure,
      help: 'Last overload pressure sampled: peak share of the in-flight budget (waiters included) or publish latency over its limit',
      registers,
    });
    this.received = new Counter({
      name: SAMPLING_METRICS.receivedWhileSampled,
      help: 'Telemetry readings received while their tier was advised below 1, per tier',
      labelNames: ['tier'],
      registers,
    });
    this.overloads = new Counter({
      name: SAMPLING_METRICS.overloads,
      help: 'Times the gateway entered overload (started advising sampling)',
      registers,
    });
    this.publishGauges();
  }

  /** Starts sampling the load. */
  start(): void {
    const tick = this.opts.tickMs ?? Math.max(10, Math.min(250, this.opts.sustainMs / 4));
    this.timer = setInterval(() => this.tick(performance.now()), tick);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The advice every ack carries now (shared object: do not change it). */
  get advice(): SamplingAdvice {
    return this.advices[this.step]!;
  }

  /** True while some tier is advised below 1. */
  get overloaded(): boolean {
    return this.step > 0;
  }

  /** Fraction advised for `tier` now. */
  keepOf(tier: SensorTier): number {
    return tier === 'safety' ? 1 : this.ladder[this.step]![tier];
  }

  /** Counts the readings of a batch per tier while their tier is sampled (what devices still send). */
  observe(tiers: ReadonlyArray<SensorTier | undefined>): void {
    if (this.step === 0) return;
    let bulk = 0;
    let diagnostic = 0;
    for (const t of tiers)
      if (t === 'bulk') bulk++;
      else if (t === 'diagnostic') diagnostic++;
    const s = this.ladder[this.step]!;
    if (bulk > 0 && s.bulk < 1) this.received.inc({ tier: 'bulk' }, bulk);
    if (diagnostic > 0 && s.diagnostic < 1) this.received.inc({ tier: 'diagnostic' }, diagnostic);
  }

  /** One load sample at `now` (performance.now() clock); public for tests of the hysteresis. */
  tick(now: number): void {
    const { peakFill, publishLatencyMs } = this.load.takeLoadSample();
    const pressure = Math.max(peakFill, publishLatencyMs / this.opts.publishLatencyMs);
    this.pressureGauge.set(pressure);
    if (pressure >= this.opts.enter) {
      this.belowSince = undefined;
      this.aboveSince ??= now;
      if (now - this.aboveSince >= this.opts.sustainMs && this.step < this.ladder.length - 1) {
        this.move(this.step + 1, pressure);
        this.aboveSince = now;
      }
    } else if (pressure < this.opts.exit) {
      this.aboveSince = undefined;
      this.belowSince ??= now;
      if (now - this.belowSince >= this.opts.sustainMs && this.step > 0) {
        this.move(this.step - 1, pressure);
        this.belowSince = now;
      }
    } else {
      this.aboveSince = undefined;
      this.belowSince = undefined;
    }
  }

  private move(to: number, pressure: number): void {
    const from = this.step;
    this.step = to;
    this.publishGauges();
    const s = this.ladder[to]!;
    if (from === 0) {
      this.overloads.inc();
      this.log.warn(
        { pressure, keep: s },
        'gateway overloaded: advising devices to sample bulk readings (safety readings are never sampled)',
      );
    } else if (to === 0) {
      this.log.info({ pressure }, 'gateway overload over: advising devices to send every reading');
    }
  }

  private publishGauges(): void {
    const s = this.ladder[this.step]!;
    this.keepGauge.set({ tier: 'safety' }, 1);
    this.keepGauge.set({ tier: 'diagnostic' }, s.diagnostic);
    this.keepGauge.set({ tier: 'bulk' }, s.bulk);
    this.overloadedGauge.set(this.step > 0 ? 1 : 0);
  }
}

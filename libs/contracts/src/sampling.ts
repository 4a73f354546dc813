// Sensor priority tiers and the adaptive sampling advice the gateway puts on its acks
// (docs/services/ingestion.md, "Adaptive sampling"). The gateway and every device-side sender
// classify a reading with the same code, from the tier rules the advice itself carries.
import type { SamplingAdvice } from './gen/sluice/gateway/v1/gateway';
import type { Event } from './gen/sluice/telemetry/v1/telemetry';

/** Sensor tiers, most important first. `safety` readings are never sampled or shed. */
export const SENSOR_TIERS = ['safety', 'diagnostic', 'bulk'] as const;
export type SensorTier = (typeof SENSOR_TIERS)[number];

/** The sensor-type patterns of each tier: exact names, `prefix*`, or `*` (every other sensor). */
export type TierRules = Readonly<Record<SensorTier, readonly string[]>>;

const PATTERN = /^(\*|[A-Za-z0-9._:-]+\*?)$/;

/**
 * Parses `safety=engine_temp|bilge_level;diagnostic=engine_*;bulk=*` (tiers separated by `;`,
 * patterns by `|`). Throws an Error naming the first bad part. An empty spec has no tiers.
 */
export function parseTierRules(spec: string): TierRules {
  const rules: Record<SensorTier, string[]> = { safety: [], diagnostic: [], bulk: [] };
  const seen = new Map<string, SensorTier>();
  for (const part of spec.split(';')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    const tier = (eq < 0 ? p : p.slice(0, eq)).trim();
    if (!(SENSOR_TIERS as readonly string[]).includes(tier))
      throw new Error(`"${tier}" is not a tier (${SENSOR_TIERS.join(', ')})`);
    if (eq < 0) throw new Error(`"${p}": expected ${tier}=<sensor>|<prefix>*|*`);
    for (const raw of p.slice(eq + 1).split('|')) {
      const pattern = raw.trim();
      if (pattern === '') continue;
      if (!PATTERN.test(pattern))
        throw new Error(
          `"${pattern}" is not a sensor pattern (a sensor type, a prefix ending in *, or *)`,
        );
      const before = seen.get(pattern);
      if (before !== undefined)
        throw new Error(`"${pattern}" is in two tiers (${before} and ${tier})`);
      seen.set(pattern, tier as SensorTier);
      rules[tier as SensorTier].push(pattern);
    }
  }
  return rules;
}

/** True when no tier names any sensor (nothing is ever sampled). */
export function noTiers(rules: TierRules): boolean {
  return SENSOR_TIERS.every((t) => rules[t].length === 0);
}

/**
 * Classifies sensor types by tier rules: an exact name wins, then the longest matching prefix, then
 * `*`; a sensor no rule matches has no tier (`undefined`: never sampled).
 */
export class TierClassifier {
  private readonly exact = new Map<string, SensorTier>();
  private readonly prefixes: Array<[string, SensorTier]> = [];
  private readonly fallback: SensorTier | undefined;
  private readonly cache = new Map<string, SensorTier | undefined>();

  constructor(readonly rules: TierRules) {
    let fallback: SensorTier | undefined;
    for (const tier of SENSOR_TIERS)
      for (const p of rules[tier]) {
        if (p === '*') fallback = tier;
        else if (p.endsWith('*')) this.prefixes.push([p.slice(0, -1), tier]);
        else this.exact.set(p, tier);
      }
    this.prefixes.sort((a, b) => b[0].length - a[0].length);
    this.fallback = fallback;
  }

  /** The tier of `sensorType`. */
  tierOf(sensorType: string): SensorTier | undefined {
    if (this.cache.has(sensorType)) return this.cache.get(sensorType);
    let tier = this.exact.get(sensorType);
    if (tier === undefined) tier = this.prefixes.find(([p]) => sensorType.startsWith(p))?.[1];
    tier ??= this.fallback;
    // Bounded: sensor types are few; a flood of distinct ones only resets the memo.
    if (this.cache.size >= 4096) this.cache.clear();
    this.cache.set(sensorType, tier);
    return tier;
  }

  /** The tier of an event: telemetry by its sensor type; detections have none (never sampled). */
  tierOfEvent(event: Event): SensorTier | undefined {
    return event.kind?.$case === 'telemetry' ? this.tierOf(event.kind.value.sensorType) : undefined;
  }
}

/** Keep one in `n` readings of a series for a keep fraction: `round(1 / keep)`, at least 1. */
export function keepEvery(keep: number): number {
  if (!(keep > 0) || keep >= 1) return 1;
  return Math.max(1, Math.round(1 / keep));
}

/**
 * Applies the gateway's advice on the device side: keeps one reading in `keepEvery(keep)` of each
 * series (device, sensor type) of a sampled tier, evenly (a counter per series), and never samples
 * the safety tier, a sensor without a tier, or a detection. No advice (or an advice of 1) keeps all.
 */
export class AdviceSampler {
  private classifier: TierClassifier | undefined;
  private rulesKey = '';
  private readonly every: Record<SensorTier, number> = { safety: 1, diagnostic: 1, bulk: 1 };
  private readonly counters = new Map<string, number>();

  /** Most series counted at once; past it the counters start over (bounded memory). */
  constructor(private readonly maxSeries = 100_000) {}

  /** Takes the advice of an ack (`undefined`: the gateway gives none, keep everything). */
  update(advice: SamplingAdvice | undefined): void {
    if (!advice || advice.tiers.length === 0) {
      this.every.diagnostic = 1;
      this.every.bulk = 1;
      return;
    }
    const key = advice.tiers.map((t) => `${t.tier}=${t.sensors.join('|')}`).join(';');
    if (key !== this.rulesKey || !this.classifier) {
      try {
        this.classifier = new TierClassifier(parseTierRules(key));
        this.rulesKey = key;
      } catch {
        // An advice this client cannot read: keep everything rather than guess.
        this.classifier = undefined;
        this.rulesKey = '';
        this.every.diagnostic = 1;
        this.every.bulk = 1;
        return;
      }
    }
    this.every.diagnostic = 1;
    this.every.bulk = 1;
    for (const t of advice.tiers)
      if (t.tier === 'diagnostic' || t.tier === 'bulk') this.every[t.tier] = keepEvery(t.keep);
  }

  /** Keep one in this many readings of `tier` now (1 = all). */
  everyOf(tier: SensorTier): number {
    return this.every[tier];
  }

  /** True while some tier is sampled. */
  get active(): boolean {
    return this.every.bulk > 1 || this.every.diagnostic > 1;
  }

  /** The tier of `event` under the advice's rules, when it is sampled now; else `undefined`. */
  sampledTier(event: Event): SensorTier | undefined {
    if (!this.active || !this.classifier || event.kind?.$case !== 'telemetry') return undefined;
    const tier = this.classifier.tierOf(event.kind.value.sensorType);
    return tier !== undefined && tier !== 'safety' && this.every[tier] > 1 ? tier : undefined;
  }

  /**
   * Decides one reading: `true` to send it, `false` to drop it (sampled). Counts per series, so a
   * series is thinned evenly whatever the other series do.
   */
  keep(event: Event): boolean {
    const tier = this.sampledTier(event);
    if (tier === undefined) return true;
    const v = event.kind!.value as { deviceId: string; sensorType: string };
    const series = `${v.deviceId}\u0000${v.sensorType}`;
    const n = this.counters.get(series) ?? 0;
    if (n === 0 && this.counters.size >= this.maxSeries) this.counters.clear();
    this.counters.set(series, n + 1);
    return n % this.every[tier] === 0;
  }
}

// Subscription filters: their schema (validated by the admin API, stored as JSONB) and the pure
// matching functions the matcher applies to every clean event and roll-up.
import { z } from 'zod';
import {
  ALERT_KINDS,
  type Alert,
  type DetectionEvent,
  type Detection,
  type Rollup,
  type TelemetryEvent,
} from '@sluice/contracts';

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const pair = z
  .tuple([finite, finite])
  .refine(([a, b]) => a <= b, 'must be [low, high] with low <= high');

/** Conditions on one number; every key given must hold (AND). */
export const conditionSchema = z
  .object({
    gt: finite.optional(),
    gte: finite.optional(),
    lt: finite.optional(),
    lte: finite.optional(),
    eq: finite.optional(),
    /** Inclusive range [low, high]. */
    inside: pair.optional(),
    /** Strictly below low or above high. */
    outside: pair.optional(),
  })
  .strict()
  .refine(
    (c) => Object.keys(c).length > 0,
    'must set at least one of gt, gte, lt, lte, eq, inside, outside',
  );
export type Condition = z.infer<typeof conditionSchema>;

const names = z.array(z.string().min(1).max(256)).min(1).max(1000);

export const telemetryFilterSchema = z
  .object({
    type: z.literal('telemetry'),
    sensorTypes: names.optional(),
    regions: names.optional(),
    deviceIds: z.array(z.string().min(1).max(256)).min(1).max(10_000).optional(),
    /** Condition on the reading's value; absent = every reading matches. */
    value: conditionSchema.optional(),
    /** Fire when this many consecutive readings of one (device, sensor) match; the run then restarts. Default 1. */
    consecutive: z.number().int().min(1).max(1000).default(1),
  })
  .strict();

export const rollupFilterSchema = z
  .object({
    type: z.literal('rollup'),
    resolutions: names.optional(),
    sensorTypes: names.optional(),
    regions: names.optional(),
    deviceIds: z.array(z.string().min(1).max(256)).min(1).max(10_000).optional(),
    avg: conditionSchema.optional(),
    min: conditionSchema.optional(),
    max: conditionSchema.optional(),
    /** Also fire for late-data revisions of a closed window. Default true. */
    includeRevisions: z.boolean().default(true),
  })
  .strict();

export const detectionFilterSchema = z
  .object({
    type: z.literal('detection'),
    labels: names.optional(),
    classIds: z.array(z.number().int()).min(1).max(1000).optional(),
    /** Minimum confidence in [0, 1]. Default 0. */
    minConfidence: z.number().min(0).max(1).default(0),
    streamIds: names.optional(),
    regions: names.optional(),
    deviceIds: z.array(z.string().min(1).max(256)).min(1).max(10_000).optional(),
  })
  .strict();

/** Alerts of the watch service (silence, recovery, anomaly); every list given must contain the alert's value. */
export const alertFilterSchema = z
  .object({
    type: z.literal('alert'),
    kinds: z.array(z.enum(ALERT_KINDS)).min(1).max(3).optional(),
    /** Sensor types; `""` names alerts about a whole device (silence of any sensor). */
    sensorTypes: z.array(z.string().max(256)).min(1).max(1000).optional(),
    regions: names.optional(),
    deviceIds: z.array(z.string().min(1).max(256)).min(1).max(10_000).optional(),
  })
  .strict();

export const filterSchema = z.discriminatedUnion('type', [
  telemetryFilterSchema,
  rollupFilterSchema,
  detectionFilterSchema,
  alertFilterSchema,
]);
export type Filter = z.infer<typeof filterSchema>;
export type TelemetryFilter = z.infer<typeof telemetryFilterSchema>;
export type RollupFilter = z.infer<typeof rollupFilterSchema>;
export type DetectionFilter = z.infer<typeof detectionFilterSchema>;
export type AlertFilter = z.infer<typeof alertFilterSchema>;

export function holds(c: Condition | undefined, v: number): boolean {
  if (!c) return true;
  if (c.gt !== undefined && !(v > c.gt)) return false;
  if (c.gte !== undefined && !(v >= c.gte)) return false;
  if (c.lt !== undefined && !(v < c.lt)) return false;
  if (c.lte !== undefined && !(v <= c.lte)) return false;
  if (c.eq !== undefined && v !== c.eq) return false;
  if (c.inside && !(v >= c.inside[0] && v <= c.inside[1])) return false;
  if (c.outside && !(v < c.outside[0] || v > c.outside[1])) return false;
  return true;
}

const inList = (list: readonly string[] | undefined, v: string) => !list || list.includes(v);

/** Is the reading one of the series the filter watches (sensor type, region, device)? */
export function inTelemetryScope(f: TelemetryFilter, e: TelemetryEvent): boolean {
  return (
    inList(f.sensorTypes, e.sensorType) &&
    inList(f.regions, e.region) &&
    inList(f.deviceIds, e.deviceId)
  );
}

/** Does one reading satisfy the filter (before the consecutive count)? */
export function matchesTelemetry(f: TelemetryFilter, e: TelemetryEvent): boolean {
  return inTelemetryScope(f, e) && holds(f.value, e.value);
}

/** Is this roll-up publication a late-data revision? (revision 1 is the first close; late events also set lateCount.) */
export function isRevision(r: Rollup): boolean {
  return r.revision > 1 || r.lateCount > 0;
}

export function matchesRollup(f: RollupFilter, r: Rollup): boolean {
  if (!f.includeRevisions && isRevision(r)) return false;
  return (
    inList(f.resolutions, r.resolution) &&
    inList(f.sensorTypes, r.sensorType) &&
    inList(f.regions, r.region) &&
    (!f.deviceIds || f.deviceIds.includes(r.deviceId)) &&
    holds(f.avg, r.avg) &&
    holds(f.min, r.min) &&
    holds(f.max, r.max)
  );
}

export function matchesAlert(f: AlertFilter, a: Alert): boolean {
  return (
    (!f.kinds || f.kinds.includes(a.kind)) &&
    inList(f.sensorTypes, a.sensorType) &&
    inList(f.regions, a.region) &&
    inList(f.deviceIds, a.deviceId)
  );
}

/** The detections of the event that satisfy the filter; empty = no match. */
export function matchingDetections(f: DetectionFilter, e: DetectionEvent): Detection[] {
  if (
    !inList(f.streamIds, e.streamId) ||
    !inList(f.regions, e.region) ||
    !inList(f.deviceIds, e.deviceId)
  )
    return [];
  return e.detections.filter(
    (d) =>
      d.confidence >= f.minConfidence &&
      inList(f.labels, d.label) &&
      (!f.classIds || f.classIds.includes(d.classId)),
  );
}

/**
 * Run lengths for "N consecutive matching readings", per (subscription, device, sensor), in memory
 * and bounded (oldest keys evicted): the per-process counter (WEBHOOK_SHARED_STATE=local, or while
 * Redis cannot answer; consecutive.ts holds the shared one). Best-effort across restarts: a restart
 * forgets runs in progress. A reading seen again (batch redelivery) gets the decision it got the
 * first time.
 */
export class ConsecutiveState {
  private readonly runs = new Map<string, number>();
  private readonly decisions = new Map<string, number>();

  constructor(private readonly maxKeys = 100_000) {}

  /** Returns the run length when this reading completes a run of `n`, else 0. */
  observe(subscriptionId: string, e: TelemetryEvent, matched: boolean, n: number): number {
    const decisionKey = `${subscriptionId}\n${e.eventId}`;
    const previous = this.decisions.get(decisionKey);
    if (previous !== undefined) return previous;
    const key = `${subscriptionId}\n${e.deviceId}\n${e.sensorType}`;
    let result = 0;
    if (!matched) {
      this.runs.delete(key);
    } else {
      const run = (this.runs.get(key) ?? 0) + 1;
      this.runs.delete(key); // re-insert: Map order doubles as recency for eviction
      if (run >= n) result = run;
      else this.runs.set(key, run);
      this.bound(this.runs);
    }
    this.decisions.set(decisionKey, result);
    this.bound(this.decisions);
    return result;
  }

  get size(): number {
    return this.runs.size;
  }

  private bound(m: Map<string, number>): void {
    while (m.size > this.maxKeys) m.delete(m.keys().next().value!);
  }
}

import { HEADERS } from '@sluice/contracts';
import type { JsMsg } from '@nats-io/jetstream';
import { partitionSpan, windowStart, type Resolution } from './resolutions';
import { decodeReadings } from './wire';

/**
 * A commutative, associative window aggregate. Merging in any order gives the same result (sums up
 * to floating-point rounding); ties of first/last by time break on the value (first: smaller, last:
 * larger) so replicas and redeliveries agree exactly.
 */
export interface Partial {
  count: number;
  sum: number;
  min: number;
  max: number;
  firstTime: number;
  firstValue: number;
  lastTime: number;
  lastValue: number;
}

export function single(t: number, v: number): Partial {
  return {
    count: 1,
    sum: v,
    min: v,
    max: v,
    firstTime: t,
    firstValue: v,
    lastTime: t,
    lastValue: v,
  };
}

/** Merges `b` into `a` (mutates `a`). Same rule as the SQL upsert. */
export function mergeInto(a: Partial, b: Partial): Partial {
  a.count += b.count;
  a.sum += b.sum;
  if (b.min < a.min) a.min = b.min;
  if (b.max > a.max) a.max = b.max;
  if (b.firstTime < a.firstTime || (b.firstTime === a.firstTime && b.firstValue < a.firstValue)) {
    a.firstTime = b.firstTime;
    a.firstValue = b.firstValue;
  }
  if (b.lastTime > a.lastTime || (b.lastTime === a.lastTime && b.lastValue > a.lastValue)) {
    a.lastTime = b.lastTime;
    a.lastValue = b.lastValue;
  }
  return a;
}

export const SCOPE_DEVICE = 1;
export const SCOPE_REGION = 2;
export type Scope = typeof SCOPE_DEVICE | typeof SCOPE_REGION;

/** One telemetry reading as the aggregator needs it. */
export interface Reading {
  device: string;
  region: string;
  sensor: string;
  /** Event time, epoch ms. */
  t: number;
  value: number;
}

/** One clean message: the unique events of one raw message. */
export interface CleanMessage {
  /** Exactly-once key: the `Nats-Msg-Id` dedupe set (`raw:<stream>:<seq>`), else `<stream>:<seq>`. */
  id: string;
  readings: Reading[];
  /** Detection events: not aggregated, counted. */
  detections: number;
  /** Telemetry events that cannot be windowed (no time, non-finite value, bad ids); counted. */
  invalid: number;
  /** The W3C `traceparent` the message carries (its producer's span), linked from roll-up spans. */
  trace?: string | undefined;
}

/**
 * Decodes a clean message: its readings straight from the wire bytes (see {@link decodeReadings}).
 * Throws `DecodeError` for bytes that are not an EventBatch (dead-lettered).
 */
export function decodeCleanMessage(msg: JsMsg): CleanMessage {
  const id = msg.headers?.get(HEADERS.MSG_ID) || `${msg.info.stream}:${msg.seq}`;
  return { id, trace: msg.headers?.get('traceparent') || undefined, ...decodeReadings(msg.data) };
}

/** One roll-up row to merge: a key and its partial. */
export interface Cell {
  resolution: string;
  scope: Scope;
  /** Device id (device scope) or region (region scope). */
  key: string;
  sensor: string;
  /** Window start, epoch ms. */
  start: number;
  region: string;
  p: Partial;
}

export interface Accumulated {
  cells: Map<string, Cell>;
  /**
   * Every region with readings → its latest event time that may advance the region's watermark (not
   * beyond now + skew); -Infinity when none may.
   */
  maxEventTimes: Map<string, number>;
  readings: number;
  /** Readings older than their resolution's retention (their partition is already dropped). */
  expired: number;
}

export function cellKey(
  resolution: string,
  scope: number,
  key: string,
  sensor: string,
  start: number,
): string {
  return `${resolution}\u0001${scope}\u0001${key}\u0001${sensor}\u0001${start}`;
}

/** Merges one reading into a partial (hot path: no allocation). Same rule as {@link mergeInto}. */
function addReading(p: Partial, t: number, v: number): void {
  p.count++;
  p.sum += v;
  if (v < p.min) p.min = v;
  if (v > p.max) p.max = v;
  if (t < p.firstTime || (t === p.firstTime && v < p.firstValue)) {
    p.firstTime = t;
    p.firstValue = v;
  }
  if (t > p.lastTime || (t === p.lastTime && v > p.lastValue)) {
    p.lastTime = t;
    p.lastValue = v;
  }
}

/** The readings of one (device, sensor, region) at the grain of the finest resolution. */
interface GrainSeries {
  device: string;
  sensor: string;
  region: string;
  /** Finest window start → partial. */
  windows: Map<number, Partial>;
  /** Latest event time not beyond now + skew; -Infinity when none. */
  maxT: number;
}

/**
 * Pre-aggregates the readings of `messages` into device and region cells for every resolution.
 *
 * Two steps, because merging is associative: every reading is merged once into its finest window
 * (per device, sensor and region), and the cells of every resolution whose length is a multiple of
 * the finest (windows are epoch-aligned, so each finest window lies in exactly one of them) and of
 * both scopes are merged from those partials: a few merges per finest window instead of
 * (resolutions × scopes) per reading. A resolution that is not such a multiple is merged per reading.
 */
export function accumulate(
  messages: Iterable<CleanMessage>,
  resolutions: readonly Resolution[],
  now: number,
  maxFutureSkewMs: number,
): Accumulated {
  let readings = 0;
  let expired = 0;
  const horizon = now + maxFutureSkewMs;
  const grainMs = resolutions[0]!.ms;
  // Windows starting before this are in a partition that retention has dropped (see isExpired).
  const keepFrom = resolutions.map(
    (res) => partitionSpan(now - res.retentionMs, res.partition).start,
  );
  const derived = resolutions.map((res) => res.ms % grainMs === 0);
  // Per resolution: series (scope, key, sensor) → window start → cell.
  const bySeries = resolutions.map(() => new Map<string, Map<number, Cell>>());
  const cellFor = (
    i: number,
    scope: Scope,
    key: string,
    series: string,
    sensor: string,
    region: string,
    start: number,
    seed: Partial,
  ): void => {
    const perSeries = bySeries[i]!;
    let windows = perSeries.get(series);
    if (windows === undefined) perSeries.set(series, (windows = new Map()));
    const c = windows.get(start);
    if (c === undefined)
      windows.set(start, {
        resolution: resolutions[i]!.name,
        scope,
        key,
        sensor,
        start,
        region,
        p: { ...seed },
      });
    else mergeInto(c.p, seed);
  };

  // device → sensor → region → series: nested lookups of strings the decoder interned (their hashes
  // are cached) instead of building a composite key per reading.
  const grain = new Map<string, Map<string, Map<string, GrainSeries>>>();
  const series: GrainSeries[] = [];
  for (const m of messages) {
    for (const r of m.readings) {
      readings++;
      let bySensor = grain.get(r.device);
      if (bySensor === undefined) grain.set(r.device, (bySensor = new Map()));
      let byRegion = bySensor.get(r.sensor);
      if (byRegion === undefined) bySensor.set(r.sensor, (byRegion = new Map()));
      let g = byRegion.get(r.region);
      if (g === undefined) {
        byRegion.set(
          r.region,
          (g = {
            device: r.device,
            sensor: r.sensor,
            region: r.region,
            windows: new Map(),
            maxT: -Infinity,
          }),
        );
        series.push(g);
      }
      if (r.t > g.maxT && r.t <= horizon) g.maxT = r.t;
      const start = windowStart(r.t, grainMs);
      const p = g.windows.get(start);
      if (p === undefined) g.windows.set(start, single(r.t, r.value));
      else addReading(p, r.t, r.value);
      for (let i = 1; i < resolutions.length; i++) {
        if (derived[i]) continue;
        const s = windowStart(r.t, resolutions[i]!.ms);
        if (s < keepFrom[i]!) {
          expired++;
          continue;
        }
        const one = single(r.t, r.value);
        cellFor(
          i,
          SCOPE_DEVICE,
          r.device,
          `1\u0001${r.device}\u0001${r.sensor}`,
          r.sensor,
          r.region,
          s,
          one,
        );
        cellFor(
          i,
          SCOPE_REGION,
          r.region,
          `2\u0001${r.region}\u0001${r.sensor}`,
          r.sensor,
          r.region,
          s,
          one,
        );
      }
    }
  }

  const maxEventTimes = new Map<string, number>();
  for (const g of series) {
    const prev = maxEventTimes.get(g.region);
    if (prev === undefined || g.maxT > prev) maxEventTimes.set(g.region, g.maxT);
    const deviceSeries = `1\u0001${g.device}\u0001${g.sensor}`;
    const regionSeries = `2\u0001${g.region}\u0001${g.sensor}`;
    for (const [start0, p] of g.windows) {
      for (let i = 0; i < resolutions.length; i++) {
        if (!derived[i]) continue;
        const start = windowStart(start0, resolutions[i]!.ms);
        if (start < keepFrom[i]!) {
          expired += p.count;
          continue;
        }
        cellFor(i, SCOPE_DEVICE, g.device, deviceSeries, g.sensor, g.region, start, p);
        cellFor(i, SCOPE_REGION, g.region, regionSeries, g.sensor, g.region, start, p);
      }
    }
  }

  const cells = new Map<string, Cell>();
  for (const perSeries of bySeries) {
    for (const windows of perSeries.values()) {
      for (const c of windows.values())
        cells.set(cellKey(c.resolution, c.scope, c.key, c.sensor, c.start), c);
    }
  }
  return { cells, maxEventTimes, readings, expired };
}

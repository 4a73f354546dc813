import { decodeBatch, HEADERS, NAME_TOKEN_PATTERN } from '@sluice/contracts';
import type { JsMsg } from '@nats-io/jetstream';
import { partitionSpan, windowStart, type Resolution } from './resolutions';

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
}

/** True when `s` contains a control character (PostgreSQL text cannot hold NUL; none belong in ids). */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 0x20) return true;
  return false;
}

/** Decodes a clean message. Throws `DecodeError` for bytes that are not an EventBatch (dead-lettered). */
export function decodeCleanMessage(msg: JsMsg): CleanMessage {
  const batch = decodeBatch(msg.data);
  const id = msg.headers?.get(HEADERS.MSG_ID) || `${msg.info.stream}:${msg.seq}`;
  const out: CleanMessage = { id, readings: [], detections: 0, invalid: 0 };
  for (const e of batch.events) {
    if (e.kind?.$case === 'detection') {
      out.detections++;
      continue;
    }
    if (e.kind?.$case !== 'telemetry') {
      out.invalid++;
      continue;
    }
    const v = e.kind.value;
    const t = v.eventTime?.getTime();
    if (
      t === undefined ||
      !Number.isFinite(t) ||
      !Number.isFinite(v.value) ||
      !v.deviceId ||
      v.deviceId.length > 128 ||
      hasControl(v.deviceId) ||
      !v.sensorType ||
      v.sensorType.length > 128 ||
      hasControl(v.sensorType) ||
      !NAME_TOKEN_PATTERN.test(v.region)
    ) {
      out.invalid++;
      continue;
    }
    out.readings.push({
      device: v.deviceId,
      region: v.region,
      sensor: v.sensorType,
      t,
      value: v.value,
    });
  }
  return out;
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
  /** Latest event time that may advance the watermark (not beyond now + skew); -Infinity when none. */
  maxEventTime: number;
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

/** Pre-aggregates the readings of `messages` into device and region cells for every resolution. */
export function accumulate(
  messages: Iterable<CleanMessage>,
  resolutions: readonly Resolution[],
  now: number,
  maxFutureSkewMs: number,
): Accumulated {
  const cells = new Map<string, Cell>();
  let maxEventTime = -Infinity;
  let readings = 0;
  let expired = 0;
  const horizon = now + maxFutureSkewMs;
  // Windows starting before this are in a partition that retention has dropped (see isExpired).
  const keepFrom = resolutions.map(
    (res) => partitionSpan(now - res.retentionMs, res.partition).start,
  );
  // Per resolution: series (scope, key, sensor) → window start → cell. Series strings are built once
  // per reading and V8 caches their hashes, so the hot loop does no string building per resolution.
  const bySeries = resolutions.map(() => new Map<string, Map<number, Cell>>());
  const add = (i: number, scope: Scope, key: string, series: string, r: Reading, start: number) => {
    const perSeries = bySeries[i]!;
    let windows = perSeries.get(series);
    if (windows === undefined) perSeries.set(series, (windows = new Map()));
    const c = windows.get(start);
    if (c === undefined) {
      windows.set(start, {
        resolution: resolutions[i]!.name,
        scope,
        key,
        sensor: r.sensor,
        start,
        region: r.region,
        p: single(r.t, r.value),
      });
      return;
    }
    // Inline merge of one reading (hot path: no allocation).
    const p = c.p;
    const v = r.value;
    p.count++;
    p.sum += v;
    if (v < p.min) p.min = v;
    if (v > p.max) p.max = v;
    if (r.t < p.firstTime || (r.t === p.firstTime && v < p.firstValue)) {
      p.firstTime = r.t;
      p.firstValue = v;
    }
    if (r.t > p.lastTime || (r.t === p.lastTime && v > p.lastValue)) {
      p.lastTime = r.t;
      p.lastValue = v;
    }
  };
  for (const m of messages) {
    for (const r of m.readings) {
      readings++;
      if (r.t > maxEventTime && r.t <= horizon) maxEventTime = r.t;
      const deviceSeries = `1\u0001${r.device}\u0001${r.sensor}`;
      const regionSeries = `2\u0001${r.region}\u0001${r.sensor}`;
      for (let i = 0; i < resolutions.length; i++) {
        const start = windowStart(r.t, resolutions[i]!.ms);
        if (start < keepFrom[i]!) {
          expired++;
          continue;
        }
        add(i, SCOPE_DEVICE, r.device, deviceSeries, r, start);
        add(i, SCOPE_REGION, r.region, regionSeries, r, start);
      }
    }
  }
  for (const perSeries of bySeries) {
    for (const windows of perSeries.values()) {
      for (const c of windows.values())
        cells.set(cellKey(c.resolution, c.scope, c.key, c.sensor, c.start), c);
    }
  }
  return { cells, maxEventTime, readings, expired };
}

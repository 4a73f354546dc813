import type { Pool, PoolClient } from 'pg';
import { numberArray, textArray } from './pg';

/** What the watermark of one region is computed from (`region_watermarks`, epoch ms). */
export interface RegionClock {
  /** Latest event time merged for the region (within the future-skew horizon). */
  maxEventTime: number;
  /** The idle advance (`now − idle timeout`) in force when data last resumed after idleness. */
  idleFloor: number;
  /** PostgreSQL's clock at the last flush that merged readings of the region. */
  lastArrival: number;
}

export interface WatermarkOptions {
  allowedLatenessMs: number;
  /** No arrival for this long makes a region idle; 0 disables idleness. */
  idleTimeoutMs: number;
}

/**
 * The watermark of a region at wall-clock `now`: the latest event time merged, or, while the region
 * has received nothing for the idle timeout, `now − idle timeout` when that is later, minus the
 * allowed lateness. A window ending at E therefore closes by E + idle timeout + allowed lateness of
 * wall clock even when its region goes quiet.
 *
 * Monotone in time for one region: when data resumes, the flush stores the idle advance in force as
 * `idleFloor` (see {@link upsertRegionClocks}), so the watermark does not fall back to the max event
 * time and windows the idle advance had passed stay behind it (a reading for them is late).
 */
export function regionWatermark(c: RegionClock, now: number, o: WatermarkOptions): number {
  let t = Math.max(c.maxEventTime, c.idleFloor);
  if (o.idleTimeoutMs > 0 && now - c.lastArrival >= o.idleTimeoutMs)
    t = Math.max(t, now - o.idleTimeoutMs);
  return t - o.allowedLatenessMs;
}

const MS = (col: string) => `(extract(epoch from ${col}) * 1000)::float8`;
const TS = (col: string) => `'epoch'::timestamptz + ${col} * interval '1 millisecond'`;

const SELECT_CLOCKS = `SELECT region, ${MS('max_event_time')} AS max_event_time, ${MS('idle_floor')} AS idle_floor,
  ${MS('last_arrival')} AS last_arrival, ${MS('statement_timestamp()')} AS now FROM region_watermarks`;

/**
 * Watermarks of `regions` (every known region when omitted) on PostgreSQL's clock, the one clock all
 * replicas share. A region without a row has none (-Infinity: nothing of it has been merged).
 */
export async function readWatermarks(
  db: Pool | PoolClient,
  o: WatermarkOptions,
  regions?: readonly string[],
): Promise<Map<string, number>> {
  const { rows } = await db.query<{
    region: string;
    max_event_time: number;
    idle_floor: number;
    last_arrival: number;
    now: number;
  }>(
    regions ? `${SELECT_CLOCKS} WHERE region = ANY($1::text[])` : SELECT_CLOCKS,
    regions ? [textArray(regions)] : [],
  );
  const out = new Map<string, number>();
  for (const r of rows)
    out.set(
      r.region,
      regionWatermark(
        { maxEventTime: r.max_event_time, idleFloor: r.idle_floor, lastArrival: r.last_arrival },
        r.now,
        o,
      ),
    );
  return out;
}

// `idle_floor` takes the idle advance the region had up to this arrival (the same rule as
// regionWatermark, on the same clock), before last_arrival moves and ends the idleness.
const UPSERT_CLOCKS = `
INSERT INTO region_watermarks AS w (region, max_event_time, last_arrival)
SELECT u.rg, ${TS('u.t')}, statement_timestamp() FROM unnest($1::text[], $2::float8[]) AS u(rg, t)
ON CONFLICT (region) DO UPDATE SET
  max_event_time = GREATEST(w.max_event_time, excluded.max_event_time),
  idle_floor = CASE WHEN $3::float8 > 0 AND w.last_arrival <= excluded.last_arrival - $3::float8 * interval '1 millisecond'
                    THEN GREATEST(w.idle_floor, excluded.last_arrival - $3::float8 * interval '1 millisecond')
                    ELSE w.idle_floor END,
  last_arrival = GREATEST(w.last_arrival, excluded.last_arrival)`;

/**
 * Records that a flush merged readings of these regions (region → latest event time that may advance
 * its watermark, -Infinity when none may). One statement; rows are locked in region order, so
 * concurrent flushes and replicas agree on the order.
 */
export async function upsertRegionClocks(
  client: PoolClient,
  maxEventTimes: ReadonlyMap<string, number>,
  idleTimeoutMs: number,
): Promise<void> {
  if (maxEventTimes.size === 0) return;
  const regions = [...maxEventTimes.keys()].sort();
  await client.query(UPSERT_CLOCKS, [
    textArray(regions),
    // Epoch is the column's floor: GREATEST leaves a stored time unchanged.
    numberArray(regions.map((r) => Math.max(0, maxEventTimes.get(r)!))),
    idleTimeoutMs,
  ]);
}

import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { BadParameterError } from './errors';
import type { Scope } from './partial';
import type { Resolution } from './resolutions';

/** One window of a series as the API returns it. */
export interface Point {
  /** Window start, ISO 8601. */
  time: string;
  count: number;
  sum: number;
  min: number;
  max: number;
  avg: number;
  first: number;
  last: number;
  first_time: string;
  last_time: string;
  revision: number;
  late_count: number;
}

export interface SeriesQuery {
  scope: Scope;
  key: string;
  sensor: string;
  resolution: Resolution;
  from: number;
  to: number;
  limit: number;
  /** Exclusive lower bound on window start from a cursor. */
  after?: number;
}

const MS = (col: string) => `(extract(epoch from ${col}) * 1000)::float8`;
const TS = (p: string) => `'epoch'::timestamptz + ${p}::float8 * interval '1 millisecond'`;
const iso = (ms: number) => new Date(ms).toISOString();

/** Picks the coarsest resolution giving at least `points` windows over [from, to); the finest when none does. */
export function pickResolution(
  resolutions: readonly Resolution[],
  from: number,
  to: number,
  points: number,
): Resolution {
  const coarseFirst = [...resolutions].sort((a, b) => b.ms - a.ms);
  return (
    coarseFirst.find((r) => Math.floor((to - from) / r.ms) >= points) ??
    coarseFirst[coarseFirst.length - 1]!
  );
}

function fingerprint(q: Omit<SeriesQuery, 'after' | 'limit'>): string {
  return createHash('sha1')
    .update(
      `${q.scope}\u0001${q.key}\u0001${q.sensor}\u0001${q.resolution.name}\u0001${q.from}\u0001${q.to}`,
    )
    .digest('base64url')
    .slice(0, 12);
}

/** Opaque cursor: the last window start returned, bound to the query it came from. */
export function encodeCursor(q: SeriesQuery, after: number): string {
  return Buffer.from(JSON.stringify({ a: after, f: fingerprint(q) })).toString('base64url');
}

/** Throws {@link BadParameterError} (`cursor`) for a cursor that is malformed or from another query. */
export function decodeCursor(
  q: Omit<SeriesQuery, 'after' | 'limit'>,
  cursor: string,
  paramName = 'cursor',
): number {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new BadParameterError(paramName, 'cursor is not one this API returned');
  }
  const c = parsed as { a?: unknown; f?: unknown };
  if (typeof c?.a !== 'number' || !Number.isFinite(c.a) || typeof c.f !== 'string')
    throw new BadParameterError(paramName, 'cursor is not one this API returned');
  if (c.f !== fingerprint(q))
    throw new BadParameterError(
      paramName,
      'cursor belongs to a different query; repeat the same parameters with it',
    );
  return c.a;
}

/** Read side of the roll-up store. */
export class RollupQueries {
  constructor(private readonly pool: Pool) {}

  async series(q: SeriesQuery): Promise<{ points: Point[]; next?: number }> {
    const lower = Math.max(q.from, q.after !== undefined ? q.after + 1 : -Infinity);
    const { rows } = await this.pool.query<{
      ws: number;
      count: number;
      sum: number;
      min: number;
      max: number;
      first_value: number;
      last_value: number;
      ft: number;
      lt: number;
      revision: number;
      late_count: number;
    }>(
      `SELECT ${MS('window_start')} AS ws, count::float8 AS count, sum, min, max, first_value, last_value, ${MS('first_time')} AS ft, ${MS('last_time')} AS lt, revision, late_count::float8 AS late_count
       FROM rollups
       WHERE resolution = $1 AND scope = $2 AND series_key = $3 AND sensor = $4 AND window_start >= ${TS('$5')} AND window_start < ${TS('$6')}
       ORDER BY window_start LIMIT $7`,
      [q.resolution.name, q.scope, q.key, q.sensor, lower, q.to, q.limit + 1],
    );
    const more = rows.length > q.limit;
    const page = more ? rows.slice(0, q.limit) : rows;
    const points = page.map((r) => ({
      time: iso(r.ws),
      count: r.count,
      sum: r.sum,
      min: r.min,
      max: r.max,
      avg: r.count > 0 ? r.sum / r.count : 0,
      first: r.first_value,
      last: r.last_value,
      first_time: iso(r.ft),
      last_time: iso(r.lt),
      revision: r.revision,
      late_count: r.late_count,
    }));
    return more ? { points, next: page[page.length - 1]!.ws } : { points };
  }

  /** Latest value of every sensor of a series key (device or region). */
  async latest(
    scope: Scope,
    key: string,
  ): Promise<
    Array<{ sensor: string; region: string; value: number; time: string; derived: boolean }>
  > {
    const { rows } = await this.pool.query<{
      sensor: string;
      region: string;
      last_value: number;
      lt: number;
      derived: boolean;
    }>(
      `SELECT sensor, region, last_value, ${MS('last_time')} AS lt, derived FROM series WHERE scope = $1 AND series_key = $2 ORDER BY sensor`,
      [scope, key],
    );
    return rows.map((r) => ({
      sensor: r.sensor,
      region: r.region,
      value: r.last_value,
      time: iso(r.lt),
      derived: r.derived,
    }));
  }

  /** Regions a series key (device or region) has data in; at most 100. */
  async regionsOf(scope: Scope, key: string): Promise<string[]> {
    const { rows } = await this.pool.query<{ region: string }>(
      `SELECT DISTINCT region FROM series WHERE scope = $1 AND series_key = $2 ORDER BY region LIMIT 100`,
      [scope, key],
    );
    return rows.map((r) => r.region);
  }

  /**
   * Series keys of a scope with their sensors, ordered by key, after `after` (exclusive). With
   * `regions`, only keys whose every region is among them.
   */
  async keys(
    scope: Scope,
    limit: number,
    after?: string,
    regions?: readonly string[],
  ): Promise<{ items: Array<{ key: string; region: string; sensors: string[] }>; next?: string }> {
    const { rows } = await this.pool.query<{ key: string; region: string; sensors: string[] }>(
      `SELECT series_key AS key, min(region) AS region, array_agg(sensor ORDER BY sensor) AS sensors
       FROM series WHERE scope = $1 AND ($2::text IS NULL OR series_key > $2)
       GROUP BY series_key HAVING ($4::text[] IS NULL OR bool_and(region = ANY($4::text[])))
       ORDER BY series_key LIMIT $3`,
      [scope, after ?? null, limit + 1, regions ? [...regions] : null],
    );
    const more = rows.length > limit;
    const items = more ? rows.slice(0, limit) : rows;
    return more ? { items, next: items[items.length - 1]!.key } : { items };
  }
}

import { createHash } from 'node:crypto';
import { spansExported } from '@sluice/observability';
import type { Pool, PoolClient } from 'pg';
import { inTransaction, numberArray, textArray } from './pg';
import type { DerivedSeries } from './derived';
import type { PipelineSnapshot } from './pipeline-config';
import { evaluate } from './expression';
import {
  accumulate,
  cellKey,
  SCOPE_DEVICE,
  SCOPE_REGION,
  type Accumulated,
  type Cell,
  type CleanMessage,
} from './partial';
import type { Partitions } from './partitions';
import { resolutionTable, windowStart, type Resolution } from './resolutions';
import { readWatermarks, upsertRegionClocks } from './watermark';

/** What one flush did. */
export interface FlushStats {
  /** Distinct clean-message ids in the flush. */
  messages: number;
  /** Of those, applied by this flush (the others were applied before: redelivery or another replica). */
  applied: number;
  readings: number;
  /** Readings older than their resolution's retention, per (reading × resolution). */
  expired: number;
  cells: number;
  derived: number;
  /** Readings merged into windows their region's watermark had already passed, by resolution. */
  late: Map<string, number>;
  /** Message ids of the flush that were applied before (set only when there are any). */
  alreadyApplied?: ReadonlySet<string>;
}

export interface WriterOptions {
  /** Event times further ahead of the wall clock do not advance the watermark. */
  maxFutureSkewMs: number;
  allowedLatenessMs: number;
  /** A region without arrivals for this long is idle (see `regionWatermark`); 0 disables. */
  idleTimeoutMs: number;
  /** Wall clock (injected by tests). Default `Date.now`. */
  now?: () => number;
}

/**
 * Most clean messages one roll-up row links to per published revision: the Rollup's span links to
 * the producer spans of the first this many sampled clean messages merged into the row since it was
 * last published (the others are merged, not linked). Bounded in the row (`trace_links`, migration
 * 0004) to this many {@link TRACE_LINK_BYTES}-byte entries.
 */
export const ROLLUP_TRACE_LINKS = 32;
/** One stored link: trace id (16 bytes), span id (8), trace flags (1). */
export const TRACE_LINK_BYTES = 25;

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The stored form (50 hex digits) of a sampled W3C `traceparent`; undefined for anything else. */
export function traceLinkHex(traceparent: string | undefined): string | undefined {
  const m = traceparent === undefined ? null : TRACEPARENT.exec(traceparent);
  if (!m || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN || (parseInt(m[3]!, 16) & 1) === 0)
    return undefined;
  return m[1]! + m[2]! + m[3]!;
}

/** SQL: epoch-ms column or parameter as timestamptz. */
export const TS = (col: string) => `'epoch'::timestamptz + ${col} * interval '1 millisecond'`;
/** SQL: timestamptz column as epoch ms (float8). */
export const MS = (col: string) => `(extract(epoch from ${col}) * 1000)::float8`;

// Merges into one resolution's table (rollups_<res>) directly: no list-partition routing per row, and
// the resolution travels once as a scalar instead of once per row in a text array.
// Without links (spans not exported) the statement leaves trace_links alone: no 15th array to build
// and no per-row decode or CASE on the hot path.
const upsertFor = (table: string, withLinks: boolean) => `
INSERT INTO ${table} AS t (resolution, scope, series_key, sensor, window_start, region, count, sum, min, max, first_time, first_value, last_time, last_value${withLinks ? ', trace_links' : ''})
SELECT $1::text, u.s, u.k, u.se, ${TS('u.ws')}, u.rg, u.c, u.su, u.mi, u.ma, ${TS('u.ft')}, u.fv, ${TS('u.lt')}, u.lv${withLinks ? ", decode(u.tl, 'hex')" : ''}
FROM unnest($2::int2[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::int8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[], $14::float8[]${withLinks ? ', $15::text[]' : ''})
  AS u(s, k, se, ws, rg, c, su, mi, ma, ft, fv, lt, lv${withLinks ? ', tl' : ''})
ON CONFLICT (resolution, scope, series_key, sensor, window_start) DO UPDATE SET
  count = t.count + excluded.count,
  sum = t.sum + excluded.sum,
  min = LEAST(t.min, excluded.min),
  max = GREATEST(t.max, excluded.max),
  first_value = CASE WHEN (excluded.first_time, excluded.first_value) < (t.first_time, t.first_value) THEN excluded.first_value ELSE t.first_value END,
  first_time = LEAST(t.first_time, excluded.first_time),
  last_value = CASE WHEN (excluded.last_time, excluded.last_value) > (t.last_time, t.last_value) THEN excluded.last_value ELSE t.last_value END,
  last_time = GREATEST(t.last_time, excluded.last_time),
  late_count = t.late_count + CASE WHEN t.closed THEN excluded.count ELSE 0 END,
  dirty = t.dirty OR t.closed,${
    withLinks
      ? `
  trace_links = CASE WHEN excluded.trace_links IS NULL THEN t.trace_links
    ELSE substring(COALESCE(t.trace_links, ''::bytea) || excluded.trace_links FROM 1 FOR ${ROLLUP_TRACE_LINKS * TRACE_LINK_BYTES}) END,`
      : ''
  }
  updated_at = now()`;

// Derived rows are recomputed from their inputs' stored state and overwrite the previous value.
const UPSERT_DERIVED = `
INSERT INTO rollups AS t (resolution, scope, series_key, sensor, window_start, region, count, sum, min, max, first_time, first_value, last_time, last_value, derived)
SELECT u.r, 1, u.k, u.se, ${TS('u.ws')}, u.rg, u.c, u.v * u.c, u.v, u.v, ${TS('u.ws')}, u.v, ${TS('u.lt')}, u.v, true
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::int8[], $7::float8[], $8::float8[]) AS u(r, k, se, ws, rg, c, v, lt)
ON CONFLICT (resolution, scope, series_key, sensor, window_start) DO UPDATE SET
  count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
  first_time = excluded.first_time, first_value = excluded.first_value,
  last_time = excluded.last_time, last_value = excluded.last_value,
  dirty = t.dirty OR (t.closed AND (t.count, t.sum) IS DISTINCT FROM (excluded.count, excluded.sum)),
  updated_at = now()`;

const UPSERT_SERIES = `
INSERT INTO series AS t (scope, series_key, sensor, region, derived, last_time, last_value)
SELECT u.s, u.k, u.se, u.rg, u.d, ${TS('u.lt')}, u.lv
FROM unnest($1::int2[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::float8[], $7::float8[]) AS u(s, k, se, rg, d, lt, lv)
ON CONFLICT (scope, series_key, sensor) DO UPDATE SET
  last_value = CASE WHEN (excluded.last_time, excluded.last_value) > (t.last_time, t.last_value) THEN excluded.last_value ELSE t.last_value END,
  last_time = GREATEST(t.last_time, excluded.last_time)`;

// A derived window is recomputed whenever an input changes, often keeping its last time (the
// inputs' latest reading) while its value moves: the latest computation wins a tie, not the larger
// value. Computations of one window are serialised by its advisory lock, so the latest is the freshest.
const UPSERT_DERIVED_SERIES = `
INSERT INTO series AS t (scope, series_key, sensor, region, derived, last_time, last_value)
SELECT u.s, u.k, u.se, u.rg, u.d, ${TS('u.lt')}, u.lv
FROM unnest($1::int2[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::float8[], $7::float8[]) AS u(s, k, se, rg, d, lt, lv)
ON CONFLICT (scope, series_key, sensor) DO UPDATE SET
  last_value = CASE WHEN excluded.last_time >= t.last_time THEN excluded.last_value ELSE t.last_value END,
  last_time = GREATEST(t.last_time, excluded.last_time)`;

function lockKey(s: string): string {
  return createHash('sha1').update(s).digest().readBigInt64BE(0).toString();
}

/**
 * Applies flushes of clean messages to PostgreSQL with an exactly-once effect.
 *
 * Invariant: a message's readings are merged in the same transaction that records its id in
 * `applied_messages`. The flush is pre-aggregated optimistically (every message assumed new); inside
 * the transaction the ids are inserted with `ON CONFLICT DO NOTHING RETURNING`, which also waits for
 * a concurrent transaction holding the same id, and when fewer ids come back (a redelivery, or a
 * replica that got there first) only the returned messages are re-aggregated. The decoded messages
 * are kept grouped by id until the commit for exactly that reason.
 */
export class RollupWriter {
  private readonly now: () => number;

  constructor(
    private readonly pool: Pool,
    private readonly partitions: Partitions,
    private readonly pipeline: { readonly current: PipelineSnapshot },
    private readonly opts: WriterOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** One transaction for the whole flush. Throws on any store error (nothing is then applied). */
  async flush(messages: readonly CleanMessage[]): Promise<FlushStats> {
    const byId = new Map<string, CleanMessage>();
    for (const m of messages) if (!byId.has(m.id)) byId.set(m.id, m);
    const now = this.now();
    // One configuration for the whole flush, however the live one changes meanwhile.
    const snapshot = this.pipeline.current;
    const { resolutions, rank } = snapshot;
    let acc = accumulate(byId.values(), resolutions, now, this.opts.maxFutureSkewMs);
    const linking = spansExported();
    let links = linking ? cellLinks(byId.values(), acc.cells, resolutions) : undefined;
    const resByName = new Map(resolutions.map((r) => [r.name, r]));
    try {
      await this.partitions.ensure(
        [...acc.cells.values()].map((c) => ({
          resolution: resByName.get(c.resolution)!,
          start: c.start,
        })),
      );
    } catch (err) {
      this.partitions.reset();
      throw err;
    }

    try {
      return await inTransaction(this.pool, async (client) => {
        // Sorted: replicas inserting overlapping ids (a redelivery) lock them in one order.
        const ids = [...byId.keys()].sort();
        const { rows } = await client.query<{ msg_id: string }>(
          'INSERT INTO applied_messages (msg_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING msg_id',
          [textArray(ids)],
        );
        let alreadyApplied: Set<string> | undefined;
        if (rows.length < ids.length) {
          const fresh = new Set(rows.map((r) => r.msg_id));
          alreadyApplied = new Set(ids.filter((id) => !fresh.has(id)));
          const applied = [...byId.values()].filter((m) => fresh.has(m.id));
          acc = accumulate(applied, resolutions, now, this.opts.maxFutureSkewMs);
          if (linking) links = cellLinks(applied, acc.cells, resolutions);
        }
        const stats: FlushStats = {
          messages: ids.length,
          applied: rows.length,
          readings: acc.readings,
          expired: acc.expired,
          cells: acc.cells.size,
          derived: 0,
          late: new Map(),
          ...(alreadyApplied && { alreadyApplied }),
        };
        if (acc.cells.size > 0) {
          const watermarks = await readWatermarks(client, this.opts, [...acc.maxEventTimes.keys()]);
          // One lock order for every flush and replica: finest resolution first, then the key. The
          // coarse windows and region cells, which consecutive flushes share, come last: a flush
          // running beside another waits for its commit only at the end of its own transaction.
          const cells = [...acc.cells.entries()]
            .sort(
              (a, b) =>
                rank.get(a[1].resolution)! - rank.get(b[1].resolution)! ||
                (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0),
            )
            .map(([, c]) => c);
          for (const c of cells) {
            if (c.scope !== SCOPE_DEVICE) continue;
            const end = c.start + resByName.get(c.resolution)!.ms;
            if (end <= (watermarks.get(c.region) ?? -Infinity))
              stats.late.set(c.resolution, (stats.late.get(c.resolution) ?? 0) + c.p.count);
          }
          await upsertCells(client, cells, links);
          await upsertSeries(client, acc, resolutions[0]!.name);
          if (snapshot.derived.length > 0)
            stats.derived = await this.applyDerived(client, cells, snapshot.derived, snapshot);
        }
        // Last in the transaction (after every roll-up row): the region rows are shared by every
        // flush of the region, so they are held only until the commit. In the same transaction as
        // the merges, so a region's rows never exist without its watermark row.
        await upsertRegionClocks(client, acc.maxEventTimes, this.opts.idleTimeoutMs);
        return stats;
      });
    } catch (err) {
      this.partitions.reset();
      throw err;
    }
  }

  /**
   * Recomputes the `derived` series of the device-scope windows of `cells` from their inputs' stored
   * rows (in the caller's transaction); returns the derived rows written.
   */
  async applyDerived(
    client: PoolClient,
    cells: readonly Cell[],
    derived: readonly DerivedSeries[],
    snapshot: Pick<PipelineSnapshot, 'resolutions'>,
  ): Promise<number> {
    const derivedInputs = new Set(derived.flatMap((d) => d.inputs));
    // Windows (device, resolution, start) whose inputs changed in this flush.
    const touched = new Map<string, { r: string; k: string; ws: number; region: string }>();
    for (const c of cells) {
      if (c.scope !== SCOPE_DEVICE || !derivedInputs.has(c.sensor)) continue;
      const key = `${c.resolution}\u0001${c.key}\u0001${c.start}`;
      if (!touched.has(key))
        touched.set(key, { r: c.resolution, k: c.key, ws: c.start, region: c.region });
    }
    if (touched.size === 0) return 0;
    const keys = [...touched.keys()].sort();
    // Serialises replicas computing the same derived window, so the last writer reads every committed input.
    await client.query(
      'SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT h FROM unnest($1::int8[]) AS h ORDER BY h) s',
      [keys.map(lockKey)],
    );
    const list = keys.map((k) => touched.get(k)!);
    const inputs = [...derivedInputs];
    const { rows } = await client.query<{
      r: string;
      k: string;
      ws: number;
      sensor: string;
      count: number;
      sum: number;
      lt: number;
    }>(
      `SELECT t.resolution AS r, t.series_key AS k, ${MS('t.window_start')} AS ws, t.sensor, t.count::float8 AS count, t.sum, ${MS('t.last_time')} AS lt
       FROM rollups t JOIN unnest($1::text[], $2::text[], $3::float8[]) AS u(r, k, ws)
         ON t.resolution = u.r AND t.scope = 1 AND t.series_key = u.k AND t.window_start = ${TS('u.ws')}
       WHERE t.sensor = ANY($4::text[]) AND NOT t.derived`,
      [list.map((x) => x.r), list.map((x) => x.k), list.map((x) => x.ws), inputs],
    );
    const state = new Map<string, Map<string, { avg: number; count: number; lt: number }>>();
    for (const row of rows) {
      const key = `${row.r}\u0001${row.k}\u0001${row.ws}`;
      let m = state.get(key);
      if (!m) state.set(key, (m = new Map()));
      m.set(row.sensor, { avg: row.sum / row.count, count: row.count, lt: row.lt });
    }
    const out = {
      r: [] as string[],
      k: [] as string[],
      se: [] as string[],
      ws: [] as number[],
      rg: [] as string[],
      c: [] as number[],
      v: [] as number[],
      lt: [] as number[],
    };
    for (const key of keys) {
      const w = touched.get(key)!;
      const m = state.get(key);
      if (!m) continue;
      const avgs = new Map([...m].map(([s, x]) => [s, x.avg]));
      for (const d of derived) {
        if (!d.inputs.every((i) => m.has(i))) continue;
        const v = evaluate(d.expr, avgs);
        if (v === undefined) continue;
        const ins = d.inputs.map((i) => m.get(i)!);
        out.r.push(w.r);
        out.k.push(w.k);
        out.se.push(d.name);
        out.ws.push(w.ws);
        out.rg.push(w.region);
        out.c.push(Math.min(...ins.map((x) => x.count)));
        out.v.push(v);
        out.lt.push(Math.max(...ins.map((x) => x.lt)));
      }
    }
    if (out.r.length === 0) return 0;
    await client.query(UPSERT_DERIVED, [
      out.r,
      out.k,
      out.se,
      out.ws,
      out.rg,
      out.c,
      out.v,
      out.lt,
    ]);
    // Catalog entries for the derived series (latest value from the finest touched window).
    const finest = snapshot.resolutions[0]!.name;
    const latest = new Map<string, { k: string; se: string; rg: string; lt: number; v: number }>();
    out.r.forEach((r, i) => {
      if (r !== finest) return;
      const id = `${out.k[i]}\u0001${out.se[i]}`;
      const prev = latest.get(id);
      if (!prev || out.lt[i]! > prev.lt)
        latest.set(id, {
          k: out.k[i]!,
          se: out.se[i]!,
          rg: out.rg[i]!,
          lt: out.lt[i]!,
          v: out.v[i]!,
        });
    });
    const s = [...latest.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, x]) => x);
    if (s.length > 0) {
      await client.query(UPSERT_DERIVED_SERIES, [
        s.map(() => 1),
        s.map((x) => x.k),
        s.map((x) => x.se),
        s.map((x) => x.rg),
        s.map(() => true),
        s.map((x) => x.lt),
        s.map((x) => x.v),
      ]);
    }
    return out.r.length;
  }
}

/** A device window named only (no partial): what {@link RollupWriter.applyDerived} recomputes. */
export function windowCell(
  resolution: string,
  key: string,
  sensor: string,
  start: number,
  region: string,
): Cell {
  return {
    resolution,
    scope: SCOPE_DEVICE,
    key,
    sensor,
    start,
    region,
    p: {
      count: 0,
      sum: 0,
      min: 0,
      max: 0,
      firstTime: 0,
      firstValue: 0,
      lastTime: 0,
      lastValue: 0,
    },
  };
}

/**
 * Which sampled clean messages went into which cell: per cell, the hex of up to
 * {@link ROLLUP_TRACE_LINKS} distinct messages' `traceparent`s, concatenated; undefined when no
 * message carries a sampled one. Readings are attributed at the finest grain (per message, one
 * lookup per run of readings in one finest window), and a coarser cell takes the links of the finest
 * windows inside it, as {@link accumulate} merges partials; a resolution that is not a multiple of
 * the finest is attributed per reading.
 */
export function cellLinks(
  messages: Iterable<CleanMessage>,
  cells: ReadonlyMap<string, Cell>,
  resolutions: readonly Resolution[],
): Map<Cell, string> | undefined {
  const hex: string[] = [];
  const grainMs = resolutions[0]!.ms;
  const aligned = resolutions.map((r) => r.ms % grainMs === 0);
  const unaligned = aligned.some((a) => !a);
  /** Finest window (device, sensor, region, start) → indexes into `hex` of its messages (bounded). */
  const grain = new Map<
    string,
    { device: string; sensor: string; region: string; start: number; msgs: number[] }
  >();
  const perCell = new Map<Cell, number[]>();
  const add = (cell: Cell | undefined, msg: number) => {
    if (cell === undefined) return;
    let list = perCell.get(cell);
    if (list === undefined) perCell.set(cell, (list = []));
    if (list.length < ROLLUP_TRACE_LINKS && !list.includes(msg)) list.push(msg);
  };
  for (const m of messages) {
    const h = traceLinkHex(m.trace);
    if (h === undefined) continue;
    const msg = hex.push(h) - 1;
    let last: { device: string; sensor: string; region: string; start: number } | undefined;
    for (const r of m.readings) {
      const start = windowStart(r.t, grainMs);
      if (unaligned) {
        for (let i = 1; i < resolutions.length; i++) {
          if (aligned[i]) continue;
          const res = resolutions[i]!;
          const s = windowStart(r.t, res.ms);
          add(cells.get(cellKey(res.name, SCOPE_DEVICE, r.device, r.sensor, s)), msg);
          add(cells.get(cellKey(res.name, SCOPE_REGION, r.region, r.sensor, s)), msg);
        }
      }
      if (
        last !== undefined &&
        last.start === start &&
        last.device === r.device &&
        last.sensor === r.sensor &&
        last.region === r.region
      )
        continue;
      const key = `${r.device}\u0001${r.sensor}\u0001${r.region}\u0001${start}`;
      let g = grain.get(key);
      if (g === undefined)
        grain.set(
          key,
          (g = { device: r.device, sensor: r.sensor, region: r.region, start, msgs: [] }),
        );
      if (g.msgs.length < ROLLUP_TRACE_LINKS && g.msgs[g.msgs.length - 1] !== msg) g.msgs.push(msg);
      last = g;
    }
  }
  if (hex.length === 0) return undefined;
  for (const g of grain.values()) {
    for (let i = 0; i < resolutions.length; i++) {
      if (!aligned[i]) continue;
      const res = resolutions[i]!;
      const s = windowStart(g.start, res.ms);
      const device = cells.get(cellKey(res.name, SCOPE_DEVICE, g.device, g.sensor, s));
      const region = cells.get(cellKey(res.name, SCOPE_REGION, g.region, g.sensor, s));
      for (const msg of g.msgs) {
        add(device, msg);
        add(region, msg);
      }
    }
  }
  const out = new Map<Cell, string>();
  for (const [cell, list] of perCell) out.set(cell, list.map((i) => hex[i]!).join(''));
  return out;
}

/** A `$n::text[]` literal of hex strings (NULL where a cell has no links); `{}` (all NULL) for none. */
function linkArray(cells: readonly Cell[], links: ReadonlyMap<Cell, string>): string {
  return `{${cells.map((c) => links.get(c) ?? 'NULL').join(',')}}`;
}

async function upsertCells(
  client: PoolClient,
  cells: readonly Cell[],
  links: ReadonlyMap<Cell, string> | undefined,
): Promise<void> {
  // Bounded statement size; cells stay in the caller's lock order (resolution first) so concurrent
  // flushes lock rows alike, and each statement holds one resolution's cells.
  const CHUNK = 5_000;
  for (let i = 0; i < cells.length;) {
    const resolution = cells[i]!.resolution;
    let j = i + 1;
    while (j < cells.length && j - i < CHUNK && cells[j]!.resolution === resolution) j++;
    const part = cells.slice(i, j);
    i = j;
    await client.query(upsertSql(resolution, links !== undefined), [
      resolution,
      ...cellArrays(part),
      ...(links !== undefined ? [linkArray(part, links)] : []),
    ]);
  }
}

/**
 * The cells as the 13 array parameters of an unnest: scope, key, sensor, window start, region, then
 * the partial (count, sum, min, max, first time and value, last time and value).
 */
export function cellArrays(cells: readonly Cell[]): string[] {
  return [
    numberArray(cells.map((c) => c.scope)),
    textArray(cells.map((c) => c.key)),
    textArray(cells.map((c) => c.sensor)),
    numberArray(cells.map((c) => c.start)),
    textArray(cells.map((c) => c.region)),
    numberArray(cells.map((c) => c.p.count)),
    numberArray(cells.map((c) => c.p.sum)),
    numberArray(cells.map((c) => c.p.min)),
    numberArray(cells.map((c) => c.p.max)),
    numberArray(cells.map((c) => c.p.firstTime)),
    numberArray(cells.map((c) => c.p.firstValue)),
    numberArray(cells.map((c) => c.p.lastTime)),
    numberArray(cells.map((c) => c.p.lastValue)),
  ];
}

const upsertSqlCache = new Map<string, string>();
function upsertSql(resolution: string, withLinks: boolean): string {
  const key = `${resolution}:${withLinks}`;
  let sql = upsertSqlCache.get(key);
  if (sql === undefined)
    upsertSqlCache.set(key, (sql = upsertFor(resolutionTable({ name: resolution }), withLinks)));
  return sql;
}

async function upsertSeries(client: PoolClient, acc: Accumulated, finest: string): Promise<void> {
  const latest = new Map<string, Cell>();
  for (const c of acc.cells.values()) {
    if (c.resolution !== finest) continue;
    const id = `${c.scope}\u0001${c.key}\u0001${c.sensor}`;
    const prev = latest.get(id);
    if (
      !prev ||
      c.p.lastTime > prev.p.lastTime ||
      (c.p.lastTime === prev.p.lastTime && c.p.lastValue > prev.p.lastValue)
    )
      latest.set(id, c);
  }
  const s = [...latest.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, c]) => c);
  if (s.length === 0) return;
  await client.query(UPSERT_SERIES, [
    numberArray(s.map((c) => c.scope)),
    textArray(s.map((c) => c.key)),
    textArray(s.map((c) => c.sensor)),
    textArray(s.map((c) => c.region)),
    `{${s.map(() => 'f').join(',')}}`,
    numberArray(s.map((c) => c.p.lastTime)),
    numberArray(s.map((c) => c.p.lastValue)),
  ]);
}

// Range rebuilds: roll-ups recomputed from events replayed out of the archive. Replayed batches are
// merged into the rebuild's staging rows (exactly once per batch, by its Nats-Msg-Id); the commit
// then replaces, in one transaction, every roll-up window lying wholly inside the range with what the
// archive holds. Windows the archive has no reading for are removed; changed closed windows become
// dirty, so the closer publishes a revision; new ones are closed and published like late windows.
import { SluiceError } from '@sluice/errors';
import type { RebuildCommit, RebuildStatus } from '@sluice/contracts';
import type { Pool, PoolClient } from 'pg';
import { accumulate, SCOPE_DEVICE, type Cell, type CleanMessage } from './partial';
import { inTransaction, textArray } from './pg';
import type { Partitions } from './partitions';
import { resolutionTable, windowStart } from './resolutions';
import type { PipelineSnapshot } from './pipeline-config';
import { cellArrays, MS, TS, windowCell, type RollupWriter } from './writer';

/** A commit whose batches have not all been staged yet: retried later (they are still in flight). */
export class RebuildIncompleteError extends SluiceError {
  override readonly name = 'RebuildIncompleteError';
  readonly code = 'rebuild_incomplete';
  constructor(
    readonly rebuild: string,
    readonly staged: number,
    readonly expected: number,
  ) {
    super(`rebuild ${rebuild} has ${staged} of its ${expected} replayed batches staged`, {
      retriable: true,
    });
  }
}

const COLUMNS = 'count, sum, min, max, first_time, first_value, last_time, last_value';
const VALUES = (p: string) =>
  COLUMNS.split(', ')
    .map((c) => `${p}.${c}`)
    .join(', ');

const STAGE = `
INSERT INTO rebuild_cells AS t (rebuild_id, resolution, scope, series_key, sensor, window_start, region, ${COLUMNS})
SELECT $1, u.r, u.s, u.k, u.se, ${TS('u.ws')}, u.rg, u.c, u.su, u.mi, u.ma, ${TS('u.ft')}, u.fv, ${TS('u.lt')}, u.lv
FROM unnest($2::text[], $3::int2[], $4::text[], $5::text[], $6::float8[], $7::text[], $8::int8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[], $14::float8[], $15::float8[])
  AS u(r, s, k, se, ws, rg, c, su, mi, ma, ft, fv, lt, lv)
ON CONFLICT (rebuild_id, resolution, scope, series_key, sensor, window_start) DO UPDATE SET
  count = t.count + excluded.count,
  sum = t.sum + excluded.sum,
  min = LEAST(t.min, excluded.min),
  max = GREATEST(t.max, excluded.max),
  first_value = CASE WHEN (excluded.first_time, excluded.first_value) < (t.first_time, t.first_value) THEN excluded.first_value ELSE t.first_value END,
  first_time = LEAST(t.first_time, excluded.first_time),
  last_value = CASE WHEN (excluded.last_time, excluded.last_value) > (t.last_time, t.last_value) THEN excluded.last_value ELSE t.last_value END,
  last_time = GREATEST(t.last_time, excluded.last_time)`;

// $1 rebuild, $2 resolution, $3/$4 window-start bounds (ms), $5 regions (NULL: all).
const IN_RANGE = (a: string) =>
  `${a}.resolution = $2 AND ${a}.window_start >= ${TS('$3::float8')} AND ${a}.window_start < ${TS('$4::float8')} AND ($5::text[] IS NULL OR ${a}.region = ANY($5::text[]))`;

const removeFor = (table: string) => `
DELETE FROM ${table} t WHERE ${IN_RANGE('t')} AND NOT t.derived AND NOT EXISTS (
  SELECT 1 FROM rebuild_cells s WHERE s.rebuild_id = $1 AND s.resolution = t.resolution AND s.scope = t.scope
    AND s.series_key = t.series_key AND s.sensor = t.sensor AND s.window_start = t.window_start)`;

const replaceFor = (table: string) => `
INSERT INTO ${table} AS t (resolution, scope, series_key, sensor, window_start, region, ${COLUMNS})
SELECT s.resolution, s.scope, s.series_key, s.sensor, s.window_start, s.region, ${VALUES('s')}
FROM rebuild_cells s WHERE s.rebuild_id = $1 AND ${IN_RANGE('s')}
ORDER BY s.scope, s.series_key, s.sensor, s.window_start
ON CONFLICT (resolution, scope, series_key, sensor, window_start) DO UPDATE SET
  count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
  first_time = excluded.first_time, first_value = excluded.first_value,
  last_time = excluded.last_time, last_value = excluded.last_value,
  dirty = t.dirty OR t.closed,
  updated_at = now()
WHERE (${VALUES('t')}) IS DISTINCT FROM (${VALUES('excluded')})`;

const STAGED_IN_RANGE = `SELECT count(*)::int8 AS n FROM rebuild_cells s WHERE s.rebuild_id = $1 AND ${IN_RANGE('s')}`;

const SERIES_FROM_STAGED = `
INSERT INTO series AS t (scope, series_key, sensor, region, derived, last_time, last_value)
SELECT DISTINCT ON (s.scope, s.series_key, s.sensor) s.scope, s.series_key, s.sensor, s.region, false, s.last_time, s.last_value
FROM rebuild_cells s WHERE s.rebuild_id = $1 AND s.resolution = $2
ORDER BY s.scope, s.series_key, s.sensor, s.last_time DESC, s.last_value DESC
ON CONFLICT (scope, series_key, sensor) DO UPDATE SET
  last_value = CASE WHEN (excluded.last_time, excluded.last_value) > (t.last_time, t.last_value) THEN excluded.last_value ELSE t.last_value END,
  last_time = GREATEST(t.last_time, excluded.last_time)`;

export interface StageStats {
  /** Batches merged by this call (others were staged before: a redelivery or a resumed replay). */
  applied: number;
  readings: number;
  /** The rebuild had already committed: nothing was staged. */
  late: boolean;
}

/** Staging and commit of range rebuilds, in the aggregator's PostgreSQL. */
export class Rebuilds {
  constructor(
    private readonly pool: Pool,
    private readonly partitions: Partitions,
    private readonly pipeline: { readonly current: PipelineSnapshot },
    private readonly writer: RollupWriter,
    private readonly opts: { maxFutureSkewMs: number; now: () => number },
  ) {}

  /** Merges replayed batches into the rebuild's staging rows, each batch once. */
  async stage(rebuild: string, messages: readonly CleanMessage[]): Promise<StageStats> {
    const byId = new Map<string, CleanMessage>();
    for (const m of messages) if (!byId.has(m.id)) byId.set(m.id, m);
    const now = this.opts.now();
    const { resolutions } = this.pipeline.current;
    let acc = accumulate(byId.values(), resolutions, now, this.opts.maxFutureSkewMs);
    const resByName = new Map(resolutions.map((r) => [r.name, r]));
    // The commit inserts staged windows into the partitioned roll-up tables.
    await this.partitions.ensure(
      [...acc.cells.values()].map((c) => ({
        resolution: resByName.get(c.resolution)!,
        start: c.start,
      })),
    );
    return inTransaction(this.pool, async (client) => {
      await client.query('INSERT INTO rebuilds (rebuild_id) VALUES ($1) ON CONFLICT DO NOTHING', [
        rebuild,
      ]);
      const { rows: state } = await client.query<{ state: string }>(
        'SELECT state FROM rebuilds WHERE rebuild_id = $1 FOR SHARE',
        [rebuild],
      );
      if (state[0]?.state === 'committed') return { applied: 0, readings: 0, late: true };
      const ids = [...byId.keys()].sort();
      const { rows } = await client.query<{ msg_id: string }>(
        'INSERT INTO rebuild_applied (rebuild_id, msg_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING msg_id',
        [rebuild, textArray(ids)],
      );
      if (rows.length < ids.length) {
        const fresh = new Set(rows.map((r) => r.msg_id));
        acc = accumulate(
          [...byId.values()].filter((m) => fresh.has(m.id)),
          resolutions,
          now,
          this.opts.maxFutureSkewMs,
        );
      }
      const cells = [...acc.cells.values()];
      for (let i = 0; i < cells.length; i += 5_000)
        await stageCells(client, rebuild, cells.slice(i, i + 5_000));
      return { applied: rows.length, readings: acc.readings, late: false };
    });
  }

  /**
   * Replaces the range with the staged rows once every batch of the rebuild is staged (else throws
   * {@link RebuildIncompleteError}). Idempotent: a commit delivered again returns the first result.
   */
  async commit(c: RebuildCommit): Promise<RebuildStatus> {
    const snapshot = this.pipeline.current;
    return inTransaction(this.pool, async (client) => {
      await client.query('INSERT INTO rebuilds (rebuild_id) VALUES ($1) ON CONFLICT DO NOTHING', [
        c.rebuild,
      ]);
      const { rows } = await client.query<{ state: string; result: RebuildStatus | null }>(
        'SELECT state, result FROM rebuilds WHERE rebuild_id = $1 FOR UPDATE',
        [c.rebuild],
      );
      if (rows[0]?.state === 'committed' && rows[0].result) return rows[0].result;
      const { rows: staged } = await client.query<{ n: string }>(
        'SELECT count(*)::int8 AS n FROM rebuild_applied WHERE rebuild_id = $1',
        [c.rebuild],
      );
      const n = Number(staged[0]?.n ?? 0);
      if (n < c.messages) throw new RebuildIncompleteError(c.rebuild, n, c.messages);
      let written = 0;
      let removed = 0;
      let stagedRows = 0;
      const regions = c.regions ? textArray(c.regions) : null;
      for (const r of snapshot.resolutions) {
        const lo = Math.ceil(c.from / r.ms) * r.ms;
        const hi = windowStart(c.to, r.ms);
        if (lo >= hi) continue;
        const table = resolutionTable(r);
        const args = [c.rebuild, r.name, lo, hi, regions];
        removed += (await client.query(removeFor(table), args)).rowCount ?? 0;
        written += (await client.query(replaceFor(table), args)).rowCount ?? 0;
        const { rows: cnt } = await client.query<{ n: string }>(STAGED_IN_RANGE, args);
        stagedRows += Number(cnt[0]?.n ?? 0);
      }
      await client.query(SERIES_FROM_STAGED, [c.rebuild, snapshot.resolutions[0]!.name]);
      await this.recomputeDerived(client, c, snapshot);
      const result: RebuildStatus = {
        rebuild: c.rebuild,
        state: 'committed',
        written,
        unchanged: stagedRows - written,
        removed,
      };
      await client.query(
        "UPDATE rebuilds SET state = 'committed', committed_at = now(), result = $2 WHERE rebuild_id = $1",
        [c.rebuild, JSON.stringify(result)],
      );
      await client.query('DELETE FROM rebuild_cells WHERE rebuild_id = $1', [c.rebuild]);
      await client.query('DELETE FROM rebuild_applied WHERE rebuild_id = $1', [c.rebuild]);
      return result;
    });
  }

  /** Drops rebuilds never committed and staged before `cutoff` (epoch ms), and old commit records. */
  async prune(cutoff: number): Promise<number> {
    const r = await this.pool.query(
      `DELETE FROM rebuilds WHERE rebuild_id IN (SELECT rebuild_id FROM rebuilds WHERE created_at < ${TS('$1::float8')} LIMIT 100)`,
      [cutoff],
    );
    return r.rowCount ?? 0;
  }

  private async recomputeDerived(
    client: PoolClient,
    c: RebuildCommit,
    snapshot: PipelineSnapshot,
  ): Promise<void> {
    if (snapshot.derived.length === 0) return;
    const { rows } = await client.query<{
      resolution: string;
      series_key: string;
      sensor: string;
      ws: number;
      region: string;
    }>(
      `SELECT resolution, series_key, sensor, ${MS('window_start')} AS ws, region FROM rebuild_cells
       WHERE rebuild_id = $1 AND scope = ${SCOPE_DEVICE}`,
      [c.rebuild],
    );
    const cells: Cell[] = rows
      .filter((x) => {
        const r = snapshot.resolutions.find((res) => res.name === x.resolution);
        return r !== undefined && x.ws >= c.from && x.ws + r.ms <= c.to;
      })
      .map((x) => windowCell(x.resolution, x.series_key, x.sensor, x.ws, x.region));
    if (cells.length > 0) await this.writer.applyDerived(client, cells, snapshot.derived, snapshot);
  }
}

async function stageCells(
  client: PoolClient,
  rebuild: string,
  cells: readonly Cell[],
): Promise<void> {
  if (cells.length === 0) return;
  await client.query(STAGE, [
    rebuild,
    textArray(cells.map((c) => c.resolution)),
    ...cellArrays(cells),
  ]);
}

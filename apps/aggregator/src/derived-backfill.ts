// Backfill of a derived series over a range: the windows whose inputs are already stored are
// recomputed from those inputs' rows, in chunks, each chunk one transaction that also moves the
// job's cursor. Any replica advances any running job; the job row's lock keeps it to one at a time,
// so a replica dying mid-backfill leaves a cursor another one continues from.
import { randomUUID } from 'node:crypto';
import { SluiceError } from '@sluice/errors';
import type { Logger } from '@sluice/observability';
import type { Pool } from 'pg';
import { SCOPE_DEVICE } from './partial';
import { inTransaction, textArray } from './pg';
import type { PipelineConfigStore, PipelineSnapshot } from './pipeline-config';
import { MS, TS, windowCell, type RollupWriter } from './writer';

/** The derived series named is not configured (HTTP 404). */
export class DerivedNotFoundError extends SluiceError {
  override readonly name = 'DerivedNotFoundError';
  readonly code = 'derived_not_found';
  constructor(readonly derived: string) {
    super(`derived series "${derived}" is not configured`, { httpStatus: 404 });
  }
}

export interface BackfillStatus {
  readonly id: string;
  /** The derived series. */
  readonly name: string;
  /** Configuration version the backfill was asked under. */
  readonly version: number;
  readonly from: string;
  readonly to: string;
  readonly state: 'running' | 'done' | 'failed';
  /** Device windows computed so far (every resolution). */
  readonly windows: number;
  /** Derived rows written so far. */
  readonly rows: number;
  readonly actor: string;
  readonly error: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface DerivedBackfillOptions {
  pool: Pool;
  pipeline: { readonly current: PipelineSnapshot };
  writer: RollupWriter;
  store: PipelineConfigStore;
  log: Logger;
  /** Device windows per chunk transaction. Default 2,000. */
  chunkWindows?: number;
}

type JobRow = {
  backfill_id: string;
  name: string;
  version: string;
  range_from: Date;
  range_to: Date;
  state: BackfillStatus['state'];
  windows: string;
  rows: string;
  actor: string;
  error: string | null;
  created_at: Date;
  updated_at: Date;
};

const toStatus = (r: JobRow): BackfillStatus => ({
  id: r.backfill_id,
  name: r.name,
  version: Number(r.version),
  from: r.range_from.toISOString(),
  to: r.range_to.toISOString(),
  state: r.state,
  windows: Number(r.windows),
  rows: Number(r.rows),
  actor: r.actor,
  error: r.error,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

const JOB_COLUMNS =
  'backfill_id, name, version::int8 AS version, range_from, range_to, state, windows, rows, actor, error, created_at, updated_at';

/** Starts, runs and reports derived-series backfills. */
export class DerivedBackfills {
  private readonly chunkWindows: number;
  private running: Promise<void> | undefined;

  constructor(private readonly opts: DerivedBackfillOptions) {
    this.chunkWindows = opts.chunkWindows ?? 2_000;
  }

  /** Records a backfill of `name` over [from, to) and starts it; throws {@link DerivedNotFoundError}. */
  async start(name: string, from: number, to: number, actor: string): Promise<BackfillStatus> {
    const snapshot = this.opts.pipeline.current;
    if (!snapshot.derived.some((d) => d.name === name)) throw new DerivedNotFoundError(name);
    const id = randomUUID();
    const { rows } = await this.opts.pool.query<JobRow>(
      `INSERT INTO derived_backfills (backfill_id, name, version, range_from, range_to, actor)
       VALUES ($1, $2, $3, ${TS('$4::float8')}, ${TS('$5::float8')}, $6) RETURNING ${JOB_COLUMNS}`,
      [id, name, snapshot.version, from, to, actor],
    );
    await this.opts.store.record({
      version: snapshot.version,
      actor,
      action: 'backfill',
      kind: 'derived',
      name,
      before: null,
      after: { backfill: id, from: new Date(from).toISOString(), to: new Date(to).toISOString() },
    });
    void this.advance();
    return toStatus(rows[0]!);
  }

  async get(id: string): Promise<BackfillStatus | undefined> {
    const { rows } = await this.opts.pool.query<JobRow>(
      `SELECT ${JOB_COLUMNS} FROM derived_backfills WHERE backfill_id = $1`,
      [id],
    );
    return rows[0] ? toStatus(rows[0]) : undefined;
  }

  async list(limit: number): Promise<BackfillStatus[]> {
    const { rows } = await this.opts.pool.query<JobRow>(
      `SELECT ${JOB_COLUMNS} FROM derived_backfills ORDER BY created_at DESC LIMIT $1`,
      [limit],
    );
    return rows.map(toStatus);
  }

  /**
   * Advances every running backfill by up to `budgetMs` of chunks (one call at a time per replica;
   * a call while one runs joins it). Never throws: a failed chunk is retried on the next call.
   */
  advance(budgetMs = 2_000): Promise<void> {
    this.running ??= this.run(budgetMs).finally(() => (this.running = undefined));
    return this.running;
  }

  /** Completes a run in progress. */
  async idle(): Promise<void> {
    await this.running;
  }

  private async run(budgetMs: number): Promise<void> {
    const deadline = Date.now() + budgetMs;
    try {
      const { rows } = await this.opts.pool.query<{ id: string }>(
        "SELECT backfill_id AS id FROM derived_backfills WHERE state = 'running' ORDER BY created_at LIMIT 20",
      );
      for (const { id } of rows) {
        while (Date.now() < deadline) {
          const more = await this.chunk(id);
          if (!more) break;
        }
      }
    } catch (err) {
      this.opts.log.warn({ err }, 'derived backfill chunk failed; will retry');
    }
  }

  /** One chunk of job `id` in one transaction; resolves whether the job has more to do now. */
  private chunk(id: string): Promise<boolean> {
    const snapshot = this.opts.pipeline.current;
    return inTransaction(this.opts.pool, async (client) => {
      const { rows: jobs } = await client.query<{
        name: string;
        from: number;
        to: number;
        cws: number | null;
        cres: string | null;
        ckey: string | null;
      }>(
        `SELECT name, ${MS('range_from')} AS "from", ${MS('range_to')} AS "to", ${MS('cursor_ws')} AS cws, cursor_res AS cres, cursor_key AS ckey
         FROM derived_backfills WHERE backfill_id = $1 AND state = 'running' FOR UPDATE SKIP LOCKED`,
        [id],
      );
      const job = jobs[0];
      if (!job) return false; // done, or another replica holds it
      const d = snapshot.derived.find((x) => x.name === job.name);
      if (!d) {
        await client.query(
          "UPDATE derived_backfills SET state = 'failed', error = $2, updated_at = now() WHERE backfill_id = $1",
          [id, `derived series "${job.name}" was removed from the configuration`],
        );
        return false;
      }
      const { rows: windows } = await client.query<{
        ws: number;
        r: string;
        k: string;
        region: string;
      }>(
        `SELECT ${MS('window_start')} AS ws, resolution AS r, series_key AS k, min(region) AS region
         FROM rollups
         WHERE scope = ${SCOPE_DEVICE} AND NOT derived AND sensor = ANY($1::text[]) AND resolution = ANY($2::text[])
           AND window_start >= ${TS('$3::float8')} AND window_start < ${TS('$4::float8')}
           AND ($5::float8 IS NULL OR (window_start, resolution, series_key) > (${TS('$5::float8')}, $6::text, $7::text))
         GROUP BY window_start, resolution, series_key
         ORDER BY window_start, resolution, series_key
         LIMIT $8`,
        [
          textArray(d.inputs),
          textArray(snapshot.resolutions.map((r) => r.name)),
          job.from,
          job.to,
          job.cws,
          job.cres,
          job.ckey,
          this.chunkWindows,
        ],
      );
      const cells = windows.map((w) => windowCell(w.r, w.k, d.inputs[0]!, w.ws, w.region));
      const written =
        cells.length > 0 ? await this.opts.writer.applyDerived(client, cells, [d], snapshot) : 0;
      const last = windows[windows.length - 1];
      const done = windows.length < this.chunkWindows;
      await client.query(
        `UPDATE derived_backfills SET windows = windows + $2, rows = rows + $3, updated_at = now(),
           cursor_ws = COALESCE(${TS('$4::float8')}, cursor_ws), cursor_res = COALESCE($5, cursor_res), cursor_key = COALESCE($6, cursor_key),
           state = CASE WHEN $7 THEN 'done' ELSE state END
         WHERE backfill_id = $1`,
        [id, windows.length, written, last?.ws ?? null, last?.r ?? null, last?.k ?? null, done],
      );
      if (done) this.opts.log.info({ backfill: id, derived: d.name }, 'derived backfill finished');
      return !done;
    });
  }
}

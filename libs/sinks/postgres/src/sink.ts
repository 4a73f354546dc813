import type { Pool } from 'pg';
import { checkMigrations, createPool, migrate, type PgLog } from '@sluice/pg';
import {
  RecordRejectedError,
  toExportRecord,
  withTimeout,
  type DetectionExportRecord,
  type RejectedRecord,
  type Sink,
  type SinkHealth,
  type SinkRecord,
  type TelemetryExportRecord,
  type WriteResult,
} from '@sluice/sinks-core';
import { isRetriablePgError, isRowError, PgTransientError, RowRejectedError } from './errors';
import { MIGRATION_SERVICE, migrationsDir } from './migrations';
import {
  resolvePostgresOptions,
  type PostgresSinkOptions,
  type ResolvedPostgresOptions,
} from './options';
import { detectionParams, INSERT_DETECTIONS, INSERT_TELEMETRY, telemetryParams } from './rows';

const quiet: PgLog = { info: () => undefined, warn: () => undefined };

type Row<R> = { record: R; index: number };

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The owner's PostgreSQL: one row per event in `telemetry_events` / `detection_events` (+ a row per
 * detection in `detection_objects`), created by the sink's checksummed migrations, inserted in one
 * unnest statement per kind and batch with `ON CONFLICT (event_id) DO NOTHING`, so any redelivery
 * stores nothing twice.
 */
export class PostgresSink implements Sink {
  readonly name: string;
  readonly options: ResolvedPostgresOptions;
  private readonly dir: string;
  private pool: Pool | undefined;
  private connecting: Promise<void> | undefined;

  /** Validates `options` now (and finds the migrations); throws ConfigError naming the bad option. */
  constructor(
    options: PostgresSinkOptions,
    private readonly log: PgLog = quiet,
  ) {
    this.options = resolvePostgresOptions(options);
    this.name = this.options.name;
    this.dir = migrationsDir(this.options.migrationsDir);
  }

  connect(): Promise<void> {
    this.connecting ??= this.open().catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    });
    return this.connecting;
  }

  private async open(): Promise<void> {
    const o = this.options;
    const url = new URL(o.url);
    // Every connection resolves the sink's tables (and the migration table) in its schema.
    const own = `-c search_path=${o.schema} -c statement_timeout=${o.statementTimeoutMs}`;
    const given = url.searchParams.get('options');
    url.searchParams.set('options', given ? `${given} ${own}` : own);
    const pool = createPool({
      service: `sluice-${o.name}`,
      url: url.toString(),
      max: o.poolSize,
      connectionTimeoutMs: o.connectionTimeoutMs,
      log: this.log,
    });
    try {
      if (o.migrate) {
        await pool.query(`CREATE SCHEMA IF NOT EXISTS ${o.schema}`).catch((err: unknown) => {
          // Replicas starting together: IF NOT EXISTS still races on the catalog's unique index.
          const code = (err as { code?: string }).code;
          if (code !== '42P06' && code !== '23505') throw err;
        });
        await migrate(pool, { service: MIGRATION_SERVICE, dir: this.dir, log: this.log });
      } else {
        await checkMigrations(pool, { service: MIGRATION_SERVICE, dir: this.dir });
      }
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    this.pool = pool;
  }

  async close(deadline: number): Promise<void> {
    const pool = this.pool;
    const pending = this.connecting;
    this.pool = undefined;
    this.connecting = undefined;
    if (!pool) {
      await pending?.then(
        () => this.close(deadline),
        () => undefined,
      );
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      pool.end().catch(() => undefined),
      new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
    ]);
    clearTimeout(timer);
  }

  async health(): Promise<SinkHealth> {
    const pool = this.pool;
    if (!pool) return { ok: false, detail: 'not connected' };
    try {
      await withTimeout(pool.query('SELECT 1'), 2_000, () => new Error('ping timed out after 2 s'));
      return { ok: true };
    } catch (err) {
      return { ok: false, detail: message(err) };
    }
  }

  isRetriable(error: unknown): boolean {
    return isRetriablePgError(error);
  }

  async write(records: ReadonlyArray<SinkRecord>): Promise<WriteResult> {
    await this.connect();
    const pool = this.pool;
    if (!pool) throw new PgTransientError('sink closed during write');
    const rejected: RejectedRecord[] = [];
    const telemetry: Array<Row<TelemetryExportRecord>> = [];
    const detections: Array<Row<DetectionExportRecord>> = [];
    // One row per event id: a batch may hold the same event twice (an overlapping redelivery), and
    // its detections must not be inserted twice by one statement.
    const first = new Map<string, number>();
    const copies: Array<{ index: number; of: number }> = [];
    records.forEach((r, index) => {
      const seen = first.get(r.id);
      if (seen !== undefined) return void copies.push({ index, of: seen });
      first.set(r.id, index);
      try {
        const record = toExportRecord(r.event);
        if (record.kind === 'telemetry') telemetry.push({ record, index });
        else detections.push({ record, index });
      } catch (err) {
        if (!(err instanceof RecordRejectedError)) throw err;
        rejected.push({ index, error: err });
      }
    });
    await Promise.all([
      this.insert(pool, INSERT_TELEMETRY, telemetryParams, telemetry, rejected),
      this.insert(pool, INSERT_DETECTIONS, detectionParams, detections, rejected),
    ]);
    for (const c of copies) {
      const r = rejected.find((x) => x.index === c.of);
      if (r) rejected.push({ index: c.index, error: r.error });
    }
    return { rejected };
  }

  /**
   * The whole batch in one statement; when the server refuses a row, each row alone, so only the
   * refused ones are rejected (with the server's reason) and the rest stored.
   */
  private async insert<R>(
    pool: Pool,
    sql: string,
    params: (rows: readonly R[]) => unknown[],
    rows: ReadonlyArray<Row<R>>,
    rejected: RejectedRecord[],
  ): Promise<void> {
    if (rows.length === 0) return;
    try {
      await pool.query(sql, params(rows.map((r) => r.record)));
    } catch (err) {
      if (!isRowError(err)) throw err;
      if (rows.length === 1) {
        rejected.push({
          index: rows[0]!.index,
          error: new RowRejectedError(err.code!, err.message, { cause: err }),
        });
        return;
      }
      for (const row of rows) await this.insert(pool, sql, params, [row], rejected);
    }
  }
}

// `@sluice/sinks-postgres/testing`: for spec files, test fixtures and benchmarks only (lint enforces it).
// A schema of its own on the test server for one test, and ways to read what the sink stored there.
import { Pool } from 'pg';
import type { ExportRecord } from '@sluice/sinks-core';
import { testUrls, uniqueId } from '@sluice/testing';

export interface PgTestSchema {
  /** The schema name (give it to the sink as `schema`). */
  schema: string;
  /** `PG_URL`, optionally through another port (a tcpProxy in front of the server). */
  url(port?: number): string;
  /** A direct pool with `search_path` set to the schema. */
  pool: Pool;
  /** Every stored event id, one entry per row (duplicates would show). */
  storedIds(): Promise<string[]>;
  /** The exported records as the views `telemetry_records` and `detection_records` render them. */
  records(): Promise<ExportRecord[]>;
  /** Drops the schema and everything in it, and closes the pool. */
  drop(): Promise<void>;
}

export async function createPgTestSchema(prefix = 'sinkpg'): Promise<PgTestSchema> {
  const schema = uniqueId(prefix).replace(/-/g, '_');
  const url = (port?: number) => {
    const u = new URL(testUrls.postgres);
    if (port !== undefined) {
      u.hostname = '127.0.0.1';
      u.port = String(port);
    }
    return u.toString();
  };
  const direct = new URL(url());
  direct.searchParams.set('options', `-c search_path=${schema}`);
  const pool = new Pool({ connectionString: direct.toString(), max: 2 });
  pool.on('error', () => undefined);
  const exists = async (table: string) =>
    (await pool.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${schema}.${table}`]))
      .rows[0]!.t !== null;
  return {
    schema,
    url,
    pool,
    async storedIds() {
      if (!(await exists('telemetry_events'))) return [];
      const { rows } = await pool.query<{ event_id: string }>(
        'SELECT event_id FROM telemetry_events UNION ALL SELECT event_id FROM detection_events',
      );
      return rows.map((r) => r.event_id);
    },
    async records() {
      if (!(await exists('telemetry_events'))) return [];
      const { rows } = await pool.query<{ record: ExportRecord }>(
        'SELECT record FROM telemetry_records UNION ALL SELECT record FROM detection_records',
      );
      return rows.map((r) => r.record);
    },
    async drop() {
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
}

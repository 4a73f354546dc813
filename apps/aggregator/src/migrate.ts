import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '@sluice/observability';
import type { Pool } from 'pg';
import { withClient } from './pg';

/** Advisory lock key serialising migrations and partition DDL across replicas. */
export const DDL_LOCK = 0x51cea66;

/** A migration file whose content changed after it was applied, or a malformed file name. */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

/**
 * Where the versioned SQL files are: `dir` when given, else beside the bundle (`dist/apps/aggregator/
 * migrations`, copied by the build), beside the sources, or under the repository root.
 */
export function migrationsDir(dir?: string): string {
  const candidates = dir
    ? [dir]
    : [
        join(__dirname, 'migrations'),
        join(__dirname, '..', 'migrations'),
        join(__dirname, '..', '..', '..', 'apps', 'aggregator', 'migrations'),
        resolve('apps', 'aggregator', 'migrations'),
      ];
  const found = candidates.find((c) => existsSync(c));
  if (!found)
    throw new MigrationError(
      `no migrations directory in ${candidates.join(', ')}; set AGGREGATOR_MIGRATIONS_DIR`,
    );
  return found;
}

interface MigrationFile {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

function readMigrations(dir: string): MigrationFile[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  return files.map((file) => {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m) throw new MigrationError(`migration file "${file}" must be named NNNN_name.sql`);
    const sql = readFileSync(join(dir, file), 'utf8');
    return {
      version: Number(m[1]),
      name: m[2]!,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
    };
  });
}

/**
 * Applies the SQL files of `dir` in version order, each in its own transaction recorded in
 * `schema_migrations`, under an advisory lock so concurrent replicas apply each file once. Idempotent.
 * Returns the versions applied by this call.
 */
export async function migrate(pool: Pool, dir: string, log?: Logger): Promise<number[]> {
  const files = readMigrations(dir);
  const applied: number[] = [];
  await withClient(pool, async (client) => {
    await client.query('SELECT pg_advisory_lock($1)', [DDL_LOCK]);
    try {
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const { rows } = await client.query<{ version: number; checksum: string }>(
        'SELECT version, checksum FROM schema_migrations',
      );
      const done = new Map(rows.map((r) => [r.version, r.checksum]));
      for (const f of files) {
        const prior = done.get(f.version);
        if (prior !== undefined) {
          if (prior !== f.checksum)
            throw new MigrationError(
              `migration ${f.version}_${f.name} changed after it was applied; add a new migration instead`,
            );
          continue;
        }
        await client.query('BEGIN');
        try {
          await client.query(f.sql);
          await client.query(
            'INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)',
            [f.version, f.name, f.checksum],
          );
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        applied.push(f.version);
        log?.info({ version: f.version, migration: f.name }, 'migration applied');
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [DDL_LOCK]).catch(() => undefined);
    }
  });
  return applied;
}

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MigrationsPendingError } from '@sluice/pg';
import { createTestDatabase, spawnService, type PgDatabase } from '@sluice/testing';
import { Pool } from 'pg';
import { checkMigrated, migrationsDir } from '../migrations';

const ENTRY = 'apps/webhook-dispatcher/src/cli/migrate.ts';
const FILE = '0001_subscriptions_secrets_attempts_dead_letters.sql';
const FILE_2 = '0002_secrets_encrypted_at_rest.sql';

describe('the webhook-dispatcher migrate command (the Kubernetes Job)', () => {
  let db: PgDatabase;
  let pool: Pool;

  beforeEach(async () => {
    db = await createTestDatabase('webhook_migrate');
    pool = new Pool({ connectionString: db.url, max: 2 });
  });
  afterEach(async () => {
    await pool.end();
    await db.drop();
  });

  const run = async () => {
    const child = spawnService(ENTRY, {
      PG_URL: db.url,
      WEBHOOK_ADMIN_TOKEN: 'test-admin-token-0123456789',
      LOG_LEVEL: 'info',
    });
    return { code: await child.exited, lines: child.lines };
  };
  const sql = (file = FILE) => readFileSync(join(migrationsDir(), file), 'utf8');
  const second = {
    version: 2,
    name: 'secrets_encrypted_at_rest',
    checksum: createHash('sha256').update(sql(FILE_2)).digest('hex'),
    adopted_from: null,
  };
  const recorded = async () =>
    (
      await pool.query(
        'SELECT version, name, checksum, adopted_from FROM sluice_webhook_dispatcher_migrations ORDER BY version',
      )
    ).rows;

  it('migrates a fresh database, exits 0, and leaves a replica that only checks able to start', async () => {
    await expect(checkMigrated(pool)).rejects.toBeInstanceOf(MigrationsPendingError);
    const { code, lines } = await run();
    expect(code).toBe(0);
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({
      msg: 'applied 2 migration(s); at version 2',
      table: 'sluice_webhook_dispatcher_migrations',
    });
    expect(await recorded()).toEqual([
      {
        version: 1,
        name: 'subscriptions_secrets_attempts_dead_letters',
        checksum: createHash('sha256').update(sql()).digest('hex'),
        adopted_from: null,
      },
      second,
    ]);
    expect(await checkMigrated(pool)).toEqual({
      table: 'sluice_webhook_dispatcher_migrations',
      version: 2,
    });
    expect((await run()).code).toBe(0);
  });

  it('adopts a database migrated by the dispatcher before @sluice/pg (webhook_schema_migrations) without applying its migration again', async () => {
    // What the old runner left behind: its table with a free-text name, and the schema.
    await pool.query(
      'CREATE TABLE webhook_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    await pool.query(sql());
    await pool.query(
      `INSERT INTO webhook_schema_migrations (version, name) VALUES (1, 'subscriptions, secrets, attempt log, dead letters')`,
    );
    await pool.query(
      `INSERT INTO webhook_subscriptions (id, url, filter) VALUES ('00000000-0000-4000-8000-000000000001', 'https://example.test/hook', '{}')`,
    );

    const { code, lines } = await run();
    expect(code).toBe(0);
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({
      adopted: { from: 'webhook_schema_migrations', versions: [1] },
      applied: [expect.objectContaining({ version: 2 })],
    });
    expect(await recorded()).toEqual([
      {
        version: 1,
        name: 'subscriptions_secrets_attempts_dead_letters',
        checksum: createHash('sha256').update(sql()).digest('hex'),
        adopted_from: 'webhook_schema_migrations',
      },
      second,
    ]);
    expect((await pool.query('SELECT count(*)::int AS n FROM webhook_subscriptions')).rows).toEqual(
      [{ n: 1 }],
    );
    expect(
      (await pool.query('SELECT count(*)::int AS n FROM webhook_schema_migrations')).rows,
    ).toEqual([{ n: 1 }]);
  });
});

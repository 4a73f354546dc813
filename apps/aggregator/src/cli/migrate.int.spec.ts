import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MigrationsPendingError } from '@sluice/pg';
import { spawnService, testUrls } from '@sluice/testing';
import { Client } from 'pg';
import { migrationsDir } from '../migrate';
import { harness, type Harness } from '../test-fixtures/harness';

const ENTRY = 'apps/aggregator/src/cli/migrate.ts';

describe('the aggregator migrate command (the Kubernetes Job)', () => {
  let h: Harness;
  let pg: Client;
  let scratch: string;

  beforeAll(async () => {
    h = await harness();
    pg = new Client({ connectionString: h.db.url });
    await pg.connect();
    scratch = mkdtempSync(join(tmpdir(), 'agg-migrate-cli-'));
  });
  afterAll(async () => {
    await pg.end();
    await h.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  const run = async (env: Record<string, string> = {}) => {
    const child = spawnService(ENTRY, {
      NATS_URL: testUrls.nats,
      PG_URL: h.db.url,
      LOG_LEVEL: 'info',
      ...env,
    });
    const code = await child.exited;
    return { code, lines: child.lines };
  };
  const recorded = async () =>
    (
      await pg.query<{ version: number; name: string; checksum: string }>(
        'SELECT version, name, checksum FROM sluice_aggregator_migrations ORDER BY version',
      )
    ).rows;

  it('migrates a database a replica that does not migrate refuses to start on, exits 0, and is a no-op the second time', async () => {
    // A replica with AGGREGATOR_MIGRATE_ON_START=false does not start on an unmigrated database …
    await expect(h.start({ AGGREGATOR_MIGRATE_ON_START: 'false' })).rejects.toBeInstanceOf(
      MigrationsPendingError,
    );
    // … which a Rails app sharing the database has a schema_migrations table in.
    await pg.query(
      'CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY)',
    );
    await pg.query(`INSERT INTO schema_migrations VALUES ('20240101120000')`);

    const first = await run();
    expect(first.code).toBe(0);
    const dir = migrationsDir();
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.sql'))
      .sort();
    expect(await recorded()).toEqual(
      files.map((f) => ({
        version: Number(f.slice(0, 4)),
        name: f.slice(5, -4),
        checksum: createHash('sha256')
          .update(readFileSync(join(dir, f), 'utf8'))
          .digest('hex'),
      })),
    );
    const summary = JSON.parse(first.lines.at(-1)!) as {
      msg: string;
      applied: Array<{ version: number }>;
      version: number;
    };
    expect(summary.applied.map((a) => a.version)).toEqual(files.map((f) => Number(f.slice(0, 4))));
    expect(summary.msg).toBe(`applied ${files.length} migration(s); at version ${summary.version}`);
    expect((await pg.query('SELECT version FROM schema_migrations')).rows).toEqual([
      { version: '20240101120000' },
    ]);

    const second = await run();
    expect(second.code).toBe(0);
    expect(JSON.parse(second.lines.at(-1)!)).toMatchObject({
      applied: [],
      msg: `nothing to apply; at version ${summary.version}`,
    });

    // Now the replica that does not migrate starts.
    await expect(h.start({ AGGREGATOR_MIGRATE_ON_START: 'false' })).resolves.toBeDefined();
  });

  it('exits 1, naming the file, when an applied migration changed', async () => {
    const dir = join(scratch, 'changed');
    cpSync(migrationsDir(), dir, { recursive: true });
    writeFileSync(
      join(dir, '0001_init.sql'),
      `${readFileSync(join(dir, '0001_init.sql'), 'utf8')}\n-- edited after release\n`,
    );
    const before = await recorded();
    const { code, lines } = await run({ AGGREGATOR_MIGRATIONS_DIR: dir });
    expect(code).toBe(1);
    const failure = JSON.parse(lines.at(-1)!) as {
      msg: string;
      err: { type: string; message: string };
    };
    expect(failure.msg).toBe('migration failed');
    expect(failure.err.type).toBe('MigrationChecksumError');
    expect(failure.err.message).toMatch(/^migration 0001_init\.sql changed after it was applied/);
    expect(await recorded()).toEqual(before);
  });

  it('exits 1 with the variable named when the configuration is invalid', async () => {
    const { code, lines } = await run({ PG_URL: 'mysql://nope' });
    expect(code).toBe(1);
    expect(lines.join('\n')).toContain('PG_URL');
  });
});

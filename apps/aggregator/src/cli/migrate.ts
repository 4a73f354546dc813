// `node dist/apps/aggregator/migrate.js`: applies the aggregator's pending migrations and exits, 0 when
// the schema is current, 1 otherwise. For a Kubernetes Job run before the rollout.
import { runMigrateCommand } from '@sluice/pg';
import { config } from '../config';
import { DDL_LOCK, LEGACY_MIGRATION_TABLE, migrationsDir } from '../migrate';

runMigrateCommand({
  service: 'aggregator',
  schema: config,
  url: (c) => c.PG_URL,
  dir: (c) => migrationsDir(c.AGGREGATOR_MIGRATIONS_DIR),
  lockKey: DDL_LOCK,
  legacy: [LEGACY_MIGRATION_TABLE],
});

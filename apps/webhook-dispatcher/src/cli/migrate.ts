// `node dist/apps/webhook-dispatcher/migrate.js`: applies the dispatcher's pending migrations and
// exits, 0 when the schema is current, 1 otherwise. For a Kubernetes Job run before the rollout.
import { runMigrateCommand } from '@sluice/pg';
import { config } from '../config';
import { LEGACY_MIGRATION_TABLE, MIGRATION_LOCK, migrationsDir } from '../migrations';
import { SERVICE } from '../names';

runMigrateCommand({
  service: SERVICE,
  schema: config,
  url: (c) => c.PG_URL,
  dir: () => migrationsDir(),
  lockKey: MIGRATION_LOCK,
  legacy: [LEGACY_MIGRATION_TABLE],
});

// `node dist/apps/webhook-dispatcher/migrate.js`: applies the dispatcher's pending migrations and exits,
// 0 when the schema is current, 1 otherwise (with the reason logged). For a Kubernetes Job run before
// the rollout; it reads the service's own environment and needs nothing but PostgreSQL.
import { loadConfig } from '@sluice/config';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { migrateDatabase } from '@sluice/pg';
import { config as configSchema } from '../config';
import { LEGACY_MIGRATION_TABLE, MIGRATION_LOCK, migrationsDir } from '../migrations';
import { SERVICE } from '../names';

async function main(): Promise<number> {
  const config = loadConfig(configSchema);
  const log = createLogger({ service: `${SERVICE}-migrate`, level: config.LOG_LEVEL, hashDeviceId: createDeviceHasher(config.DEVICE_ID_HASH_KEY) });
  try {
    const dir = migrationsDir();
    const report = await migrateDatabase({
      service: SERVICE,
      url: config.PG_URL,
      dir,
      log,
      lockKey: MIGRATION_LOCK,
      legacy: [LEGACY_MIGRATION_TABLE],
    });
    log.info({ ...report, dir }, report.applied.length ? `applied ${report.applied.length} migration(s); at version ${report.version}` : `nothing to apply; at version ${report.version}`);
    return 0;
  } catch (err) {
    log.error({ err }, 'migration failed');
    return 1;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // Only the configuration can fail before the logger exists.
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);

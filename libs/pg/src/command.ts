import { loadConfig, type CommonConfig } from '@sluice/config';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import type { z } from 'zod';
import { migrateDatabase, type MigrateOptions } from './migrations';

/** What a service's `migrate` command needs besides its config. */
export interface MigrateCommandOptions<C> {
  service: string;
  /** The service's own config schema: the command reads the same environment as the service. */
  schema: z.ZodType<C>;
  /** The PostgreSQL URL from the parsed config. */
  url: (config: C) => string;
  /** The migrations folder from the parsed config. */
  dir: (config: C) => string;
  lockKey?: MigrateOptions['lockKey'];
  legacy?: MigrateOptions['legacy'];
}

/**
 * The body of `node dist/apps/<service>/migrate.js` (a Kubernetes Job before a rollout): applies the
 * service's pending migrations and sets exit code 0 when the schema is current, 1 otherwise (the
 * reason logged). Needs nothing but PostgreSQL.
 */
export function runMigrateCommand<C extends CommonConfig>(o: MigrateCommandOptions<C>): void {
  const run = async (): Promise<number> => {
    const config = loadConfig(o.schema as never) as C;
    const log = createLogger({
      service: `${o.service}-migrate`,
      level: config.LOG_LEVEL,
      hashDeviceId: createDeviceHasher(config.DEVICE_ID_HASH_KEY),
    });
    try {
      const dir = o.dir(config);
      const report = await migrateDatabase({
        service: o.service,
        url: o.url(config),
        dir,
        log,
        ...(o.lockKey !== undefined ? { lockKey: o.lockKey } : {}),
        ...(o.legacy ? { legacy: o.legacy } : {}),
      });
      log.info(
        { ...report, dir },
        report.applied.length
          ? `applied ${report.applied.length} migration(s); at version ${report.version}`
          : `nothing to apply; at version ${report.version}`,
      );
      return 0;
    } catch (err) {
      log.error({ err }, 'migration failed');
      return 1;
    }
  };
  run().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      // Only the configuration can fail before the logger exists.
      console.error(err instanceof Error ? err.message : err);
      process.exitCode = 1;
    },
  );
}

import { defineConfig, z } from '@sluice/config';

/**
 * The CLI reads only the common variables (NATS_URL, NATS_CREDS, SLUICE_NAMESPACE, ...) from the
 * environment, so it runs with the same settings as the services it operates on; everything else is
 * a command-line flag (`sluice <command> --help`).
 */
export const config = defineConfig({});

export type Config = z.infer<typeof config>;

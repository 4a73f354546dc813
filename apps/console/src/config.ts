import { csv, defineConfig, durationMs, port, positiveInt, z } from '@sluice/config';
import { ConfigError } from '@sluice/errors';
import { parseInlineTokens } from '@sluice/http';

/** The ops endpoints `npm start` gives the services (tools/dev/up.ts KNOWN_OPS_PORTS). */
export const DEV_TARGETS =
  'ingestion=http://127.0.0.1:9401,dedupe=http://127.0.0.1:9402,aggregator=http://127.0.0.1:9403,webhook-dispatcher=http://127.0.0.1:9404,mongo-capture=http://127.0.0.1:9405,archiver=http://127.0.0.1:9406,exporter=http://127.0.0.1:9407,watch=http://127.0.0.1:9409';

/** The web console's environment: the common variables plus these. */
export const config = defineConfig({
  /** Port of the console (the web pages, `/api/...`). Default 9490. */
  CONSOLE_PORT: port(9490),
  /** Bind address of the console (`0.0.0.0` to serve other hosts). Default `127.0.0.1`. */
  CONSOLE_HOST: z.string().default('127.0.0.1'),
  /**
   * The console's bearer tokens: the query API's own (the same variable, read the same way), so one
   * token opens both: `<sha256-hex>=<region>|<region>;<sha256-hex>=*`. Webhook administration
   * (redrive, secret rotation) needs a `*` token. Required in production; elsewhere, with none, a
   * development token is generated and logged. Default none.
   */
  AGGREGATOR_API_TOKENS: z
    .string()
    .default('')
    .superRefine((raw, ctx) => {
      try {
        parseInlineTokens(raw, { variable: 'AGGREGATOR_API_TOKENS', field: 'regions' });
      } catch (err) {
        ctx.addIssue({
          code: 'custom',
          message: err instanceof ConfigError ? err.issues[0]!.reason : String(err),
        });
      }
    }),
  /** JSON file of query API tokens, as the aggregator reads it. Default none. */
  AGGREGATOR_API_TOKENS_FILE: z.string().optional(),
  /** Base URL of the aggregator's query API, which the console forwards `/api/query/...` to. Default `http://127.0.0.1:9480`. */
  CONSOLE_QUERY_URL: z.url().default('http://127.0.0.1:9480'),
  /** Base URL of the webhook dispatcher's admin API. Default `http://127.0.0.1:8090`. */
  CONSOLE_ADMIN_URL: z.url().default('http://127.0.0.1:8090'),
  /** The admin API's token (the dispatcher's `WEBHOOK_ADMIN_TOKEN`); without it the Alerts page is empty. Default none. */
  WEBHOOK_ADMIN_TOKEN: z.string().optional(),
  /**
   * The services to watch: `<name>=<ops base URL>` comma-separated; their `/metrics` and `/readyz`
   * are read every CONSOLE_INTERVAL. Default the ops ports `npm start` assigns (ingestion 9401 …
   * exporter 9407, watch 9409).
   */
  CONSOLE_TARGETS: csv(DEV_TARGETS),
  /** How often the pipeline state is sampled and pushed to the open pages. Default `2s`. */
  CONSOLE_INTERVAL: durationMs('2s'),
  /** Roll-up freshness objective shown against p50/p99 (window end → roll-up seen). Default `10s`. */
  CONSOLE_FRESHNESS_SLO: durationMs('10s'),
  /** Bytes an open stream may have unsent before that client is dropped. Default 262144. */
  CONSOLE_STREAM_BUFFER_BYTES: positiveInt(256 * 1024),
  /** Most open `/api/stream` clients; more are refused with 503. Default 64. */
  CONSOLE_MAX_STREAMS: positiveInt(64),
  /** Folder of the built pages. Default `dist/apps/console/public` (from the sources or the repository root). */
  CONSOLE_STATIC_DIR: z.string().optional(),
});

export type Config = z.infer<typeof config>;

/** One watched service: its name and ops base URL. */
export interface Target {
  name: string;
  url: string;
}

/** Parses CONSOLE_TARGETS; throws {@link ConfigError} on an entry without `=` or with a bad URL. */
export function parseTargets(entries: readonly string[]): Target[] {
  return entries.map((e, i) => {
    const eq = e.indexOf('=');
    const name = e.slice(0, Math.max(eq, 0)).trim();
    const url = e.slice(eq + 1).trim();
    if (eq <= 0 || !URL.canParse(url))
      throw new ConfigError('CONSOLE_TARGETS', `entry ${i + 1}: expected <name>=<ops base URL>`);
    return { name, url: url.replace(/\/+$/, '') };
  });
}

import {
  bool,
  csv,
  defineConfig,
  durationMs,
  pemFile,
  pgUrl,
  port,
  positiveInt,
  z,
} from '@sluice/config';
import { ConfigError } from '@sluice/errors';
import { parseInlineTokens } from '@sluice/http';

/** The aggregator's environment: the common variables plus these. */
export const config = defineConfig({
  /** PostgreSQL of the roll-up store (shared name: every service that uses PostgreSQL reads `PG_URL`). Default `postgres://postgres@127.0.0.1:5432/sluice`. TLS by libpq's parameters, checked at start: `?sslmode=verify-full&sslrootcert=<ca.pem>` (`disable` by default; `require`, `verify-ca`), `sslcert` and `sslkey` for a client certificate. */
  PG_URL: pgUrl(),
  /** Folder of the versioned SQL migrations. Default `apps/aggregator/migrations` (found from the sources or the repository root). */
  AGGREGATOR_MIGRATIONS_DIR: z.string().optional(),
  /**
   * Apply pending migrations at start (under an advisory lock, so replicas apply each once). `false`
   * when a migrate Job (`node dist/apps/aggregator/migrate.js`) owns the schema: the service then only
   * checks that every migration is applied, and fails to start (retriably) until it is. Default `true`.
   */
  AGGREGATOR_MIGRATE_ON_START: bool(true),
  /** Most PostgreSQL connections of one replica. Default 8. */
  AGGREGATOR_PG_POOL: positiveInt(8),
  /** Port of the query API (`/v1/...`, `/openapi.json`). Default 9480. */
  AGGREGATOR_API_PORT: port(9480),
  /** Bind address of the query API (`0.0.0.0` to serve other hosts). Default `127.0.0.1`. */
  AGGREGATOR_API_HOST: z.string().default('127.0.0.1'),
  /**
   * TLS certificate (PEM) of the query API: it serves HTTPS when this and AGGREGATOR_API_TLS_KEY are
   * set. Default none (plain HTTP, for loopback).
   */
  AGGREGATOR_API_TLS_CERT: pemFile(),
  /** Private key (PEM) of AGGREGATOR_API_TLS_CERT. Default none. */
  AGGREGATOR_API_TLS_KEY: pemFile(),
  /**
   * CA bundle (PEM) verifying client certificates: when set, the query API serves only clients
   * presenting a certificate it signed (mTLS), on top of the bearer tokens. Default none.
   */
  AGGREGATOR_API_TLS_CA: pemFile(),
  /**
   * Query API bearer tokens by their sha256 (never the token), each with the regions it may read:
   * `<sha256-hex>=<region>|<region>;<sha256-hex>=*`. Combined with AGGREGATOR_API_TOKENS_FILE. Required
   * in production; elsewhere, with none, a development token for every region is generated and logged.
   * Default none.
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
  /**
   * Operator tokens of the pipeline admin routes (`/v1/pipeline/...`: resolutions, retention, derived
   * series, backfills) by their sha256: `<sha256-hex>=<operator>;…`; the operator names the audit
   * log's entries. They read no region's data. With none, a production service serves the routes to
   * nobody; elsewhere a development token is generated and logged. Default none.
   */
  AGGREGATOR_ADMIN_TOKENS: z.string().default(''),
  /** JSON file of query API tokens: `[{"name": "...", "sha256": "<hex>", "regions": ["eu"] | "*"}]`. Default none. */
  AGGREGATOR_API_TOKENS_FILE: z.string().optional(),
  /** Deadline of one query API request (receiving and answering it). Default `30s`. */
  AGGREGATOR_API_REQUEST_TIMEOUT: durationMs('30s'),
  /** Window lengths, finest first or in any order: `<n>s|m|h|d`. Default `1s,5s,1m,1h`. */
  AGGREGATOR_RESOLUTIONS: csv('1s,5s,1m,1h'),
  /**
   * Retention per resolution, `<resolution>=<duration>` comma-separated; unlisted resolutions keep
   * the default for their length. Default `1s=7d,5s=30d,1m=90d,1h=730d`.
   */
  AGGREGATOR_RETENTION: csv('1s=7d,5s=30d,1m=90d,1h=730d'),
  /** Resolutions whose closed windows are published as Rollup messages. Default: every resolution. */
  AGGREGATOR_PUBLISH_RESOLUTIONS: csv(''),
  /** Watermark = max event time seen − this. Default `5s`. */
  AGGREGATOR_ALLOWED_LATENESS: durationMs('5s'),
  /**
   * A region that has received nothing for this long is idle: its watermark advances with the wall
   * clock (`now − this − allowed lateness`) so its last windows close; data arriving afterwards for a
   * closed window is merged and re-published as a revision. `0` disables. Default `30s`.
   */
  AGGREGATOR_IDLE_TIMEOUT: durationMs('30s'),
  /** Event times further than this ahead of the wall clock do not advance the watermark. Default `5m`. */
  AGGREGATOR_MAX_FUTURE_SKEW: durationMs('5m'),
  /** Flush interval: messages are collected this long before one transaction applies them. Default `250ms`. */
  AGGREGATOR_FLUSH_INTERVAL: durationMs('250ms'),
  /** Most clean messages in one flush transaction. Default 2000. */
  AGGREGATOR_FLUSH_MAX_MESSAGES: positiveInt(2000),
  /**
   * Flushes in progress at once in one process: with 2, the next batch is decoded and pre-aggregated
   * while the previous one's transaction runs (flushes lock rows in one sorted order, as replicas do,
   * and each acks only after its own commit). Memory holds up to this many batches plus the prefetch.
   * Default 2.
   */
  AGGREGATOR_FLUSH_CONCURRENCY: positiveInt(2).refine((n) => n <= 8, 'must be at most 8'),
  /** Bytes of clean messages pulled ahead of the handler (the in-flight memory bound). Default 16 MiB. */
  AGGREGATOR_PREFETCH_BYTES: positiveInt(16 * 1024 * 1024),
  /** Server ack-wait of the durable consumer; the actor heartbeats a flush in progress. Default `30s`. */
  AGGREGATOR_ACK_WAIT: durationMs('30s'),
  /** Durable consumer name shared by the replicas. Default `aggregator`. */
  AGGREGATOR_DURABLE: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'must be letters, digits, _ or -')
    .default('aggregator'),
  /**
   * Name under which `sluice replay --target` rebuilds roll-up ranges and DLQ redrives reach this
   * aggregator: it also consumes `replay.<name>.>` (durable `<durable>-replay`). `off` consumes no
   * replays. Default `aggregator`.
   */
  AGGREGATOR_REPLAY_TARGET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be lowercase letters, digits, _ or - (or off)')
    .default('aggregator'),
  /** Staged rebuilds never committed are dropped after this long. Default `7d`. */
  AGGREGATOR_REBUILD_RETENTION: durationMs('7d'),
  /**
   * How long a flush is held while PostgreSQL is unreachable (the actor pulls nothing and probes it
   * every 500 ms, running the flush again as soon as it answers) before the batch is handed back for
   * redelivery with backoff. Default `60s`.
   */
  AGGREGATOR_STORE_RETRY: durationMs('60s'),
  /** Deliveries of one message before it is dead-lettered. Default 200 (store outages must not dead-letter). */
  AGGREGATOR_MAX_DELIVER: positiveInt(200),
  /** How long applied clean-message ids are remembered (must exceed the clean stream's redelivery horizon). Default `7d`. */
  AGGREGATOR_APPLIED_RETENTION: durationMs('7d'),
  /** Interval of partition upkeep (create ahead, drop expired) and applied-id pruning. Default `10m`. */
  AGGREGATOR_MAINTENANCE_INTERVAL: durationMs('10m'),
  /**
   * How often the live pipeline configuration (resolutions, retention, derived series; changed via
   * the admin API) is checked for a new version, and running derived backfills are advanced.
   * Default `1s`.
   */
  AGGREGATOR_CONFIG_POLL: durationMs('1s'),
  /** Interval at which closed windows are looked for when no flush triggers it. Default `1s`. */
  AGGREGATOR_CLOSE_INTERVAL: durationMs('1s'),
  /**
   * Longest time between two full closer passes. Other passes only look at windows after those the
   * previous pass closed; a full one also finds late readings a flush merged below that (a late row,
   * or a closed row made dirty) without counting them late itself. Default `5s`.
   */
  AGGREGATOR_CLOSE_FULL_INTERVAL: durationMs('5s'),
  /**
   * Derived series, `;`-separated `name = expression` over sensor names of the same device, evaluated
   * on the window averages, e.g. `power = voltage * current; engine_temp_f = engine_temp * 1.8 + 32`.
   * Default none.
   */
  AGGREGATOR_DERIVED: z.string().default(''),
  /** `GET /v1/stream`: a `: heartbeat` comment to every subscriber this often. Default `15s`. */
  AGGREGATOR_STREAM_HEARTBEAT: durationMs('15s'),
  /**
   * `GET /v1/stream`: unsent bytes one subscriber may hold (its socket's buffer plus events held back
   * while it resumes); past it the subscriber gets an `overflow` event and is disconnected. Default 1 MiB.
   */
  AGGREGATOR_STREAM_BUFFER_BYTES: positiveInt(1024 * 1024),
  /** `GET /v1/stream`: most subscribers of one replica (more are answered 503). Default 2000. */
  AGGREGATOR_STREAM_MAX_CLIENTS: positiveInt(2000),
  /** `points` the API aims for when `resolution=auto`. Default 300. */
  AGGREGATOR_API_DEFAULT_POINTS: positiveInt(300),
  /** Most windows a series query may span (range ÷ resolution). Default 100000. */
  AGGREGATOR_API_MAX_RANGE_POINTS: positiveInt(100_000),
  /** Most points in one response page (`limit` upper bound). Default 5000. */
  AGGREGATOR_API_MAX_PAGE: positiveInt(5000),
  /**
   * Test-only fault injection: `kill-after-commit:<n>` SIGKILLs the process right after the n-th
   * flush commits and before its messages are acked. Default none.
   */
  AGGREGATOR_FAULT: z
    .string()
    .regex(/^kill-after-commit:\d+$/, 'must be kill-after-commit:<n>')
    .optional(),
});

export type Config = z.infer<typeof config>;

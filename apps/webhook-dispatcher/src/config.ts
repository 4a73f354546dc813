import {
  bool,
  csv,
  defineConfig,
  durationMs,
  pgUrl,
  pemFile,
  port,
  positiveInt,
  redisUrl,
  z,
} from '@sluice/config';
import { checkSecretKeys, keysField, keysFileField } from './secret-keys';

/** Environment of the webhook dispatcher (besides the common NATS/logging/ops variables). */
const schema = defineConfig({
  /** PostgreSQL holding subscriptions, secrets, the attempt log and the DLQ (shared name: every service that uses PostgreSQL reads `PG_URL`). Default `postgres://postgres@127.0.0.1:5432/sluice`. TLS by libpq's parameters, checked at start: `?sslmode=verify-full&sslrootcert=<ca.pem>` (`disable` by default; `require`, `verify-ca`), `sslcert` and `sslkey` for a client certificate. */
  PG_URL: pgUrl(),
  /** PostgreSQL pool size. Default 10. */
  WEBHOOK_PG_POOL: positiveInt(10),
  /**
   * Apply pending migrations at start (under an advisory lock, so replicas apply each once). `false`
   * when a migrate Job (`node dist/apps/webhook-dispatcher/migrate.js`) owns the schema: the service
   * then only checks that every migration is applied, and fails to start (retriably) until it is.
   * Default `true`.
   */
  WEBHOOK_MIGRATE_ON_START: bool(true),
  /** Port of the admin HTTP API (`/v1/...`, `/openapi.json`). Default 8090. */
  WEBHOOK_ADMIN_PORT: port(8090),
  /** Bind address of the admin API (`0.0.0.0` to serve other hosts, e.g. in a container). Default `127.0.0.1`. */
  WEBHOOK_ADMIN_HOST: z.string().default('127.0.0.1'),
  /** Bearer token required on every admin call (at least 16 characters). Required. */
  WEBHOOK_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters'),
  /** Deadline of one admin API request: receiving it (408 past it) and answering it (503). Default 30s. */
  WEBHOOK_ADMIN_REQUEST_TIMEOUT: durationMs('30s'),
  /** Largest admin API request body in bytes (413 past it). Default 1048576 (1 MiB). */
  WEBHOOK_ADMIN_BODY_LIMIT: positiveInt(1024 * 1024),
  /**
   * TLS certificate (PEM) of the admin API: it serves HTTPS when this and WEBHOOK_ADMIN_TLS_KEY are
   * set. Default none (plain HTTP, for loopback).
   */
  WEBHOOK_ADMIN_TLS_CERT: pemFile(),
  /** Private key (PEM) of WEBHOOK_ADMIN_TLS_CERT. Default none. */
  WEBHOOK_ADMIN_TLS_KEY: pemFile(),
  /**
   * CA bundle (PEM) verifying client certificates: when set, the admin API serves only clients
   * presenting a certificate it signed (mTLS), on top of the bearer token. Default none.
   */
  WEBHOOK_ADMIN_TLS_CA: pemFile(),
  /** Retry delays after the 1st, 2nd, ... failed attempt; its length is the number of retries. Default `5s,5m,30m,2h,5h,10h,10h`. */
  WEBHOOK_RETRY_SCHEDULE: csv('5s,5m,30m,2h,5h,10h,10h').transform((items, ctx) => {
    const out: number[] = [];
    for (const item of items) {
      const ms = durationMs(0).safeParse(item);
      if (!ms.success) {
        ctx.addIssue({
          code: 'custom',
          message: `"${item}" is not a duration like 500ms, 5s, 2m, 1h`,
        });
        return z.NEVER;
      }
      out.push(ms.data);
    }
    if (out.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'must list at least one delay' });
      return z.NEVER;
    }
    return out;
  }),
  /** Random spread of each retry delay as a fraction (0..1). Default 0.1. */
  WEBHOOK_RETRY_JITTER: z.coerce
    .number()
    .min(0, 'must be 0..1')
    .max(1, 'must be 0..1')
    .default(0.1),
  /** Longest `Retry-After` honoured on 429/503 (longer values are capped). Default 10h. */
  WEBHOOK_RETRY_AFTER_MAX: durationMs('10h'),
  /** Whole-request timeout (connect, send, response body). Default 10s. */
  WEBHOOK_REQUEST_TIMEOUT: durationMs('10s'),
  /** Concurrent requests per endpoint unless the subscription sets its own. Default 4. */
  WEBHOOK_ENDPOINT_CONCURRENCY: positiveInt(4),
  /** Deliveries waiting in memory per endpoint at its limit; beyond that they are nak'ed with a short delay. Default 256. */
  WEBHOOK_ENDPOINT_QUEUE: positiveInt(256),
  /** Requests per second per endpoint unless the subscription sets its own. Default 50. */
  WEBHOOK_DEFAULT_RATE_PER_S: z.coerce.number().positive('must be greater than 0').default(50),
  /** Deliveries held by one process at once (in flight + queued). Default 1024. */
  WEBHOOK_MAX_IN_FLIGHT: positiveInt(1024),
  /**
   * Deliveries the deliveries consumer may have unacknowledged across every replica: in flight,
   * prefetched, and waiting for their next attempt (a retry is a nak with a delay, kept by the NATS
   * server, not in the dispatcher's memory). At the bound no delivery starts anywhere until one
   * settles, so it must hold every endpoint's retries: with a small one, an endpoint with many
   * deliveries in retry stops every other endpoint's first attempts. Default 100000.
   */
  WEBHOOK_MAX_ACK_PENDING: positiveInt(100_000),
  /** An endpoint failing without a single success for this long is disabled. Default 5d. */
  WEBHOOK_DISABLE_AFTER: durationMs('5d'),
  /** CIDRs exempt from the SSRF checks (e.g. `10.1.0.0/16,127.0.0.0/8`). Default none. */
  WEBHOOK_SSRF_ALLOW_CIDRS: csv(''),
  /** Age after which an undelivered message leaves the deliveries stream; must exceed the whole retry schedule. Default 4d. */
  WEBHOOK_DELIVERIES_MAX_AGE: durationMs('4d'),
  /** `Nats-Msg-Id` duplicate window of the deliveries stream. Default 10m. */
  WEBHOOK_DUPLICATE_WINDOW: durationMs('10m'),
  /** Ack wait of the sender's consumer (held deliveries are kept alive with `working()`). Default 60s. */
  WEBHOOK_ACK_WAIT: durationMs('60s'),
  /** Attempt log rows older than this are pruned. Default 7d. */
  WEBHOOK_ATTEMPT_RETENTION: durationMs('7d'),
  /** Attempt log rows kept per subscription (newest). Default 1000. */
  WEBHOOK_ATTEMPTS_PER_SUBSCRIPTION: positiveInt(1000),
  /** How often subscriptions are re-read from PostgreSQL (changes made through another replica). Default 2s. */
  WEBHOOK_SUBSCRIPTION_REFRESH: durationMs('2s'),
  /**
   * Where per-endpoint concurrency, rate and Retry-After pause and "N consecutive" runs live:
   * `redis` (shared by every replica; per process only while Redis cannot answer) or `local` (per
   * process: for a single replica without Redis). Default `redis`.
   */
  WEBHOOK_SHARED_STATE: z.enum(['redis', 'local']).default('redis'),
  /** Redis of the shared state (shared name: every service that uses Redis reads `REDIS_URL`). Default `redis://127.0.0.1:6379`. `rediss://` for TLS (REDIS_TLS_*). */
  REDIS_URL: redisUrl(),
  /**
   * CA bundle (PEM) the Redis server's certificate must chain to; needs a `rediss://` REDIS_URL.
   * Default: the system's CAs.
   */
  REDIS_TLS_CA: pemFile(),
  /**
   * Client certificate (PEM) presented to Redis (for `tls-auth-clients yes`), with REDIS_TLS_KEY;
   * needs a `rediss://` REDIS_URL. Default none.
   */
  REDIS_TLS_CERT: pemFile(),
  /** Private key (PEM) of REDIS_TLS_CERT. Default none. */
  REDIS_TLS_KEY: pemFile(),
  /** Bound on one shared-state round trip; past it the decision is made per process. Default 500ms. */
  WEBHOOK_REDIS_TIMEOUT: durationMs('500ms'),
  /**
   * Lease of a shared concurrency slot, renewed every third of it while its request runs: the slots of
   * a replica that died free themselves after at most this long. Default 15s.
   */
  WEBHOOK_SLOT_LEASE: durationMs('15s').refine((ms) => ms >= 300, 'must be at least 300ms'),
  /** A (subscription, device, sensor) run without a reading for this long is forgotten (Redis TTL). Default 1d. */
  WEBHOOK_CONSECUTIVE_TTL: durationMs('1d').refine((ms) => ms >= 1_000, 'must be at least 1s'),
  /** (subscription, device, sensor) run counters kept in memory when runs are per process. Default 100000. */
  WEBHOOK_CONSECUTIVE_STATE_MAX: positiveInt(100_000),
  /** Where the matcher consumers start when first created: `new` (only events from now on) or `all`. Default `new`. */
  WEBHOOK_MATCH_FROM: z.enum(['new', 'all']).default('new'),
  /** Response body bytes kept in the attempt log and logs. Default 512. */
  WEBHOOK_LOG_BODY_BYTES: positiveInt(512),
  /** Refuse `http://` endpoint URLs (only `https://`). Default `false`. */
  WEBHOOK_REQUIRE_HTTPS: bool(false),
  /**
   * Keys that encrypt the signing secrets at rest: `<keyId>:<base64 of 32 bytes>`, comma-separated
   * (key id: letters, digits, `.`, `_`, `-`). Keep a retired key listed until no secret is under it
   * (`sluice_webhook_secret_rows{key_id}` 0). Combined with WEBHOOK_SECRET_KEYS_FILE. Required in
   * production (this or the file); elsewhere, with neither, a public development key `dev`. Default unset.
   */
  WEBHOOK_SECRET_KEYS: keysField(),
  /** A file of the same entries, one per line or comma-separated, `#` comment lines (a mounted Kubernetes Secret); read once at start. Default unset. */
  WEBHOOK_SECRET_KEYS_FILE: keysFileField(),
  /**
   * Id of the key new secrets are encrypted under; secrets under any other key are re-encrypted to it
   * in the background. Default: the only key configured (required when several are).
   */
  WEBHOOK_SECRET_ACTIVE_KEY: z.string().optional(),
  /** Secrets re-encrypted per transaction by the key rotation (and by the encryption of plaintext ones). Default 100. */
  WEBHOOK_SECRET_REWRAP_BATCH: positiveInt(100),
  /** How often the key rotation looks for secrets under another key than the active one, and counts secrets per key. Default 30s. */
  WEBHOOK_SECRET_REWRAP_INTERVAL: durationMs('30s').refine(
    (ms) => ms >= 100,
    'must be at least 100ms',
  ),
});

/** The same, with the checks that span several variables (the secret keys taken together). */
export const config = schema.superRefine((cfg, ctx) => {
  for (const issue of checkSecretKeys(cfg))
    ctx.addIssue({ code: 'custom', path: [issue.variable], message: issue.message });
});

export type Config = z.infer<typeof config>;

import {
  bool,
  csv,
  defineConfig,
  durationMs,
  parseDurationMs,
  positiveInt,
  pemFile,
  redisUrl,
  z,
} from '@sluice/config';

/** Test-only fault injection points; see fault-injection.ts. */
export const CRASH_POINTS = ['after-claim', 'after-publish'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

const schema = defineConfig({
  /**
   * Redis holding the claims. Default `redis://127.0.0.1:6379`. `rediss://` for TLS (REDIS_TLS_*).
   * With DEDUPE_REDIS_CLUSTER=true: one or more seed nodes of the cluster, comma-separated.
   */
  REDIS_URL: redisUrl(),
  /**
   * Claims on a Redis Cluster (REDIS_URL lists seed nodes): every key of a claim shard carries the
   * shard's hash tag, so each script call stays within one slot, and the calls of a batch go out as
   * one pipeline per master. Claims made on a single Redis are not seen by a cluster layout (the key
   * names differ). Default `false` (one Redis, or a primary with replicas).
   */
  DEDUPE_REDIS_CLUSTER: bool(false),
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
  /**
   * Raw streams to consume, comma-separated (one actor per stream, all sharing DEDUPE_DURABLE).
   * Default: the topology's raw stream (`TELEMETRY_RAW`, or `<NS>_TELEMETRY_RAW` with SLUICE_NAMESPACE).
   * The default stream is created if missing (never updated); any other stream must already exist.
   */
  DEDUPE_STREAMS: csv(''),
  /** Durable consumer name shared by every replica. Default `dedupe`. */
  DEDUPE_DURABLE: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be letters, digits, _ or - (at most 64)')
    .default('dedupe'),
  /** Prefix of every claim key (`<prefix>claims:<bucket>:<shard>`). Default none. */
  DEDUPE_KEY_PREFIX: z.string().max(128, 'must be at most 128 characters').default(''),
  /**
   * How long a claim (and so duplicate detection for an event id) lasts at least: a claim hash
   * expires this long after the later of its event-time bucket's end and its last claim. Default `7d`.
   */
  DEDUPE_TTL: durationMs('7d'),
  /**
   * Event-time width of one claim hash: claims of events whose times fall in the same bucket share
   * `DEDUPE_CLAIM_SHARDS` hashes. Smaller buckets make smaller hashes (cheaper to expire). Default `10m`.
   */
  DEDUPE_CLAIM_BUCKET: durationMs('10m').refine((ms) => ms >= 1000, 'must be at least 1s'),
  /**
   * Hashes per bucket (by a hash of the event id): keeps each hash small. At 50,000 events/s, 10 min
   * and 64 shards make hashes of ~470,000 fields. Default 64.
   */
  DEDUPE_CLAIM_SHARDS: positiveInt(64).refine((n) => n <= 4096, 'must be at most 4096'),
  /** Bound on one Redis round trip (the whole batch pipeline). Default `2s`. */
  DEDUPE_REDIS_TIMEOUT: durationMs('2s'),
  /**
   * What to do while Redis is unreachable: `retry` (default) redelivers the batch with backoff and
   * publishes nothing; `pass` publishes the events unclaimed (duplicates may reach the clean stream),
   * logged and counted in `sluice_dedupe_pass_through_total`.
   */
  DEDUPE_ON_REDIS_DOWN: z.enum(['retry', 'pass']).default('retry'),
  /** Raw messages handed to one handler call (one Redis round trip). Default 64. */
  DEDUPE_BATCH_MESSAGES: positiveInt(64),
  /**
   * Actors per raw stream in one process, sharing the durable consumer like replicas: one waits for
   * Redis while others decode and publish. Default 3 (measured best on 2 cores: 2 → 144k, 3 → 173k,
   * 4 → 168k events/s).
   */
  DEDUPE_CONCURRENCY: positiveInt(3),
  /** Server ack wait of the raw consumer. Default `30s`. */
  DEDUPE_ACK_WAIT: durationMs('30s'),
  /** Deliveries before a raw message is dead-lettered (Redis or NATS down that long). Default 50. */
  DEDUPE_MAX_DELIVER: positiveInt(50),
  /** Redelivery delays after a failed attempt, comma-separated durations. Default `250ms,1s,5s,15s,60s`. */
  DEDUPE_BACKOFF: csv('250ms,1s,5s,15s,60s').transform((items, ctx) =>
    items.map((item) => {
      const ms = parseDurationMs(item);
      if (ms === undefined)
        ctx.addIssue({
          code: 'custom',
          message: `must be durations like 250ms,1s,5s, got "${item}"`,
        });
      return ms ?? 0;
    }),
  ),
  /**
   * Duplicate window of the clean stream (provisioned by dedupe): a clean batch republished after a
   * crash between publish and ack is dropped by the server within it. Must exceed DEDUPE_ACK_WAIT by
   * a wide margin. Default `10m`.
   */
  DEDUPE_CLEAN_DUPLICATE_WINDOW: durationMs('10m'),
  /**
   * Treat the Redis claims as a cache of the clean stream: every claim call checks a guard recording
   * the Redis run id and eviction count the claims were seeded under; after a restart, failover, flush
   * or eviction, claiming stops until the claims are re-seeded from the clean stream. `false` trusts
   * Redis to keep its claims (then a lost claim lets a resend through once). Default `true`.
   */
  DEDUPE_RESEED: bool(true),
  /**
   * How far back a re-seed reads the clean stream: the duplicate horizon it restores; `0` means
   * DEDUPE_TTL. Only what the clean stream still holds can be re-seeded. Default `0`.
   */
  DEDUPE_RESEED_HORIZON: durationMs(0),
  /**
   * A re-seed waits this long for clean publishes already in flight before reading where the clean
   * stream ends; a batch whose claims are older than half of it when it would publish is retried. Default `3s`.
   */
  DEDUPE_RESEED_FENCE: durationMs('3s').refine((ms) => ms >= 200, 'must be at least 200ms'),
  /** After a Redis outage, /readyz is ready again once at most this many raw messages wait. Default 1000. */
  DEDUPE_READY_MAX_PENDING: positiveInt(1000),
  /** Create/update the clean and DLQ streams and the consumers on start. Default `true`. */
  DEDUPE_PROVISION: bool(true),
  /**
   * FAULT INJECTION FOR TESTS ONLY: `after-claim` or `after-publish` makes the process SIGKILL itself
   * the first time it reaches that point. Rejected when SLUICE_ENV=production. Default unset.
   */
  DEDUPE_CRASH_AT: z.enum(CRASH_POINTS).optional(),
}).superRefine((cfg, ctx) => {
  if (cfg.SLUICE_ENV === 'production' && cfg.DEDUPE_CRASH_AT !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['DEDUPE_CRASH_AT'],
      message: 'is fault injection for tests and must not be set in production',
    });
  }
  const urls = cfg.REDIS_URL.split(',');
  if (urls.length > 1 && !cfg.DEDUPE_REDIS_CLUSTER)
    ctx.addIssue({
      code: 'custom',
      path: ['REDIS_URL'],
      message: 'lists several URLs: that needs DEDUPE_REDIS_CLUSTER=true (seed nodes of a cluster)',
    });
  for (const url of urls)
    if (!/^rediss?:\/\/[^\s,]+$/.test(url))
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_URL'],
        message: `"${url}" must be redis://host:port or rediss://host:port`,
      });
  if (new Set(urls.map((u) => u.split(':')[0])).size > 1)
    ctx.addIssue({
      code: 'custom',
      path: ['REDIS_URL'],
      message: 'mixes redis:// and rediss:// seed nodes: use one scheme for the whole cluster',
    });
  if (cfg.DEDUPE_REDIS_CLUSTER && /[{}]/.test(cfg.DEDUPE_KEY_PREFIX))
    ctx.addIssue({
      code: 'custom',
      path: ['DEDUPE_KEY_PREFIX'],
      message:
        'must not hold { or } with DEDUPE_REDIS_CLUSTER=true (a brace would change the hash tag)',
    });
  if (cfg.DEDUPE_CLEAN_DUPLICATE_WINDOW <= cfg.DEDUPE_ACK_WAIT * 2) {
    ctx.addIssue({
      code: 'custom',
      path: ['DEDUPE_CLEAN_DUPLICATE_WINDOW'],
      message:
        'must be more than twice DEDUPE_ACK_WAIT, or a republish after a crash could duplicate a clean batch',
    });
  }
});

export const config = schema;
export type Config = z.infer<typeof schema>;

import {
  bool,
  csv,
  defineConfig,
  durationMs,
  port,
  positiveInt,
  pemFile,
  redisUrl,
  z,
} from '@sluice/config';
import { parseTierRules } from '@sluice/contracts';

/** A fraction in (0, 1] from the environment. */
const fraction = (fallback: number) =>
  z.coerce.number().gt(0, 'must be greater than 0').lte(1, 'must be at most 1').default(fallback);

const tierRules = z
  .string()
  .default('')
  .superRefine((v, ctx) => {
    try {
      parseTierRules(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

/** Configuration of the ingestion gateway (every variable, with its default). */
export const config = defineConfig({
  /** gRPC listen port (IngestService, health, reflection). Default 50051; 0 picks a free one. */
  INGEST_GRPC_PORT: port(50051),
  /** HTTP listen port of `POST /v1/events`. Default 8080; 0 picks a free one. */
  INGEST_HTTP_PORT: port(8080),
  /** Bind address of the gRPC and HTTP listeners. Default `0.0.0.0`. */
  INGEST_HOST: z.string().default('0.0.0.0'),
  /** Regions this deployment serves, comma-separated region tokens. Default `eu-west`. */
  INGEST_REGIONS: csv('eu-west').refine((r) => r.length > 0, 'must name at least one region'),
  /**
   * Raw stream layout: `per-region` (one stream `<RAW>_<REGION>` per served region, placeable per
   * region) or `shared` (the single `TELEMETRY_RAW` stream capturing `telemetry.raw.>`). Default `shared`.
   */
  INGEST_STREAM_LAYOUT: z.enum(['shared', 'per-region']).default('shared'),
  /**
   * Placement tags per region, `region=tag|tag,region=tag` (e.g. `eu-west=region:eu,us-east=region:us`).
   * Needs `INGEST_STREAM_LAYOUT=per-region`. Default none.
   */
  INGEST_PLACEMENT: z.string().default(''),
  /** Replicas of the raw stream(s). Default 1. */
  INGEST_STREAM_REPLICAS: positiveInt(1),
  /** Maximum age of raw messages. Default 30d. */
  INGEST_STREAM_MAX_AGE: durationMs('30d'),
  /** JetStream duplicate window (device retries of a batch id inside it are dropped). Default 2m. */
  INGEST_DUPLICATE_WINDOW: durationMs('2m'),
  /** Largest number of events in one batch / HTTP body. Default 1000. */
  INGEST_MAX_BATCH_EVENTS: positiveInt(1000),
  /** Largest encoded EventBatch (gRPC message, and the published message). Default 900000 (under NATS' 1 MiB max_payload). */
  INGEST_MAX_BATCH_BYTES: positiveInt(900_000),
  /** Largest HTTP JSON body. Default 4194304 (4 MiB). */
  INGEST_MAX_BODY_BYTES: positiveInt(4 * 1024 * 1024),
  /**
   * Bytes of a too-large HTTP body read and discarded after INGEST_MAX_BODY_BYTES so the client can
   * read its 413 (closing on unread data resets the connection); past it the connection is closed.
   * Default 67108864 (64 MiB).
   */
  INGEST_MAX_DISCARD_BYTES: positiveInt(64 * 1024 * 1024),
  /** Most attributes on one event. Default 64. */
  INGEST_MAX_ATTRIBUTES: positiveInt(64),
  /** How far in the future (device clock ahead) an event time may be. Default 1h. */
  INGEST_MAX_FUTURE_SKEW: durationMs('1h'),
  /** How old an event may be. Default 30d (the raw retention). */
  INGEST_MAX_EVENT_AGE: durationMs('30d'),
  /** Bytes published and awaiting the JetStream ack, across all requests. Default 67108864 (64 MiB). */
  INGEST_MAX_IN_FLIGHT_BYTES: positiveInt(64 * 1024 * 1024),
  /** How long a batch may wait for in-flight capacity before the device is told to retry. Default 1s. */
  INGEST_BACKPRESSURE_WAIT: durationMs('1s'),
  /** JetStream publish ack timeout; past it the device gets a retryable error. Default 5s. */
  INGEST_PUBLISH_TIMEOUT: durationMs('5s'),
  /** Back-off advised to devices on retryable errors (NATS down, timeouts, pushback). Default 1s. */
  INGEST_RETRY_AFTER: durationMs('1s'),
  /**
   * Batches one gRPC stream may have read but not yet answered and flushed (ack handed to HTTP/2)
   * before reading from it pauses. Default 64.
   */
  INGEST_STREAM_MAX_PENDING: positiveInt(64),
  /**
   * Bytes of acks one gRPC stream may hold unsent (the device is not reading them); past it the
   * stream is ended with RESOURCE_EXHAUSTED. Default 4194304 (4 MiB).
   */
  INGEST_STREAM_MAX_UNSENT_ACK_BYTES: positiveInt(4 * 1024 * 1024),
  /**
   * Open gRPC Ingest streams one credential may hold at once; one more is refused with
   * RESOURCE_EXHAUSTED. A device needs one. Bounds what one credential can make the gateway buffer
   * (each stream holds at most INGEST_STREAM_MAX_PENDING batches plus grpc-js's read buffer). Default 8.
   */
  INGEST_MAX_STREAMS_PER_CREDENTIAL: positiveInt(8),
  /** Open gRPC Ingest streams in all; one more is refused with RESOURCE_EXHAUSTED. Default 4096. */
  INGEST_MAX_STREAMS: positiveInt(4096),
  /**
   * A stream holding unsent acks that has flushed none for this long is ended with RESOURCE_EXHAUSTED
   * (the device stopped reading), releasing what it holds. Default `30s`.
   */
  INGEST_STREAM_STALL_TIMEOUT: durationMs('30s'),
  /** Per-device sustained rate, events/s. Default 5000. */
  INGEST_DEVICE_RATE: positiveInt(5000),
  /** Per-device burst, events. Default 10000. */
  INGEST_DEVICE_BURST: positiveInt(10_000),
  /** Devices tracked by the per-process rate limiter at once (least recently seen are forgotten). Default 100000. */
  INGEST_RATE_LIMIT_MAX_DEVICES: positiveInt(100_000),
  /**
   * Where the per-device buckets live: `redis` (one bucket per device for every gateway replica; per
   * process only while Redis cannot answer) or `local` (per process: a device spread over N replicas
   * gets N times its rate). Default `redis`.
   */
  INGEST_RATE_LIMIT_STORE: z.enum(['redis', 'local']).default('redis'),
  /** Redis of the shared rate limits (shared name: every service that uses Redis reads `REDIS_URL`). Default `redis://127.0.0.1:6379`. `rediss://` for TLS (REDIS_TLS_*). */
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
  /** Bound on one rate-limit round trip; past it the batch is decided by the per-process bucket. Default 100ms. */
  INGEST_RATE_LIMIT_TIMEOUT: durationMs('100ms'),
  /**
   * How long a gateway may spend tokens it leased from a device's shared bucket (at most
   * `rate × lease`, and a tenth of the burst, per lease) before asking Redis again; `0` asks Redis for
   * every batch. Replicas never admit more than the shared bucket granted. Default `50ms`.
   */
  INGEST_RATE_LIMIT_LEASE: durationMs('50ms'),
  /**
   * Bearer tokens inline: `<sha256-hex>=<device>|<device>;<sha256-hex>=*` (`*` = any device, for a
   * gateway credential). Combined with INGEST_AUTH_TOKENS_FILE. Default none.
   */
  INGEST_AUTH_TOKENS: z.string().default(''),
  /** JSON file `[{"name","sha256","devices":["d1"]|"*"}]` of bearer tokens. Default none. */
  INGEST_AUTH_TOKENS_FILE: z.string().optional(),
  /** TLS certificate (PEM) of both listeners; TLS is off when unset. Default none. */
  INGEST_TLS_CERT: z.string().optional(),
  /** TLS private key (PEM). Required with INGEST_TLS_CERT. */
  INGEST_TLS_KEY: z.string().optional(),
  /** CA bundle (PEM) verifying device client certificates (mTLS: CN/SAN = device id). Default none. */
  INGEST_TLS_CA: z.string().optional(),
  /** Require a client certificate when INGEST_TLS_CA is set (else bearer tokens remain possible). Default false. */
  INGEST_TLS_REQUIRE_CLIENT_CERT: bool(false),
  /** After SIGTERM: how long open streams keep answering (RETRY) before they are closed. Default 1s. */
  INGEST_DRAIN_GRACE: durationMs('1s'),
  /**
   * Sensor priority tiers for adaptive sampling: `safety=engine_temp|bilge_level;diagnostic=engine_*;bulk=*`
   * (tiers `safety`, `diagnostic`, `bulk` separated by `;`; sensor types, `prefix*` or `*` separated by
   * `|`; an exact name wins over the longest prefix, which wins over `*`). Telemetry is classified by
   * `sensor_type`; detections and unmatched sensors have no tier and are never sampled. Safety readings
   * are never sampled or shed. Default none: no advice on acks, nothing sampled (today's behaviour).
   */
  INGEST_SENSOR_TIERS: tierRules,
  /**
   * Overload pressure (the peak share of INGEST_MAX_IN_FLIGHT_BYTES in use, batches waiting for it,
   * or JetStream publish latency against INGEST_OVERLOAD_PUBLISH_LATENCY) at or above which, held for
   * INGEST_OVERLOAD_SUSTAIN, the gateway samples one step more. Default 0.8.
   */
  INGEST_OVERLOAD_ENTER: fraction(0.8),
  /** Pressure below which, held for INGEST_OVERLOAD_SUSTAIN, the gateway samples one step less. Default 0.5. */
  INGEST_OVERLOAD_EXIT: fraction(0.5),
  /** How long a pressure must hold before the sampling advice changes by one step. Default 2s. */
  INGEST_OVERLOAD_SUSTAIN: durationMs('2s'),
  /** JetStream publish latency (moving average) that counts as full pressure. Default 500ms. */
  INGEST_OVERLOAD_PUBLISH_LATENCY: durationMs('500ms'),
  /** Smallest fraction of bulk readings advised (halved per step from 1). Default 0.0625 (1 in 16). */
  INGEST_SAMPLING_MIN_KEEP: fraction(0.0625),
  /**
   * Smallest fraction of diagnostic readings advised; diagnostic is sampled only once bulk is at its
   * minimum and the overload still holds. `1`: diagnostic is never sampled. Default 0.25.
   */
  INGEST_SAMPLING_DIAGNOSTIC_MIN_KEEP: fraction(0.25),
  /**
   * While overloaded, a batch that finds the in-flight budget full has its bulk readings shed by the
   * gateway itself (each answered in the ack as rejected at field `sampling`, reason `shed`) instead
   * of waiting with the rest; safety readings are never shed (their batch waits, or gets RETRY, as
   * before). Needs INGEST_SENSOR_TIERS. Default true.
   */
  INGEST_SHED_BULK: bool(true),
  /** gRPC server reflection. Default true. */
  INGEST_REFLECTION: bool(true),
});

export type Config = z.infer<typeof config>;

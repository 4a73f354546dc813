import { bool, csv, defineConfig, durationMs, positiveInt, z } from '@sluice/config';
import { NAME_TOKEN_PATTERN } from '@sluice/contracts';
import { FAILPOINTS } from './archiver';

const FORMATS = ['parquet', 'jsonl.gz'] as const;
const MiB = 1024 * 1024;

/** archiver settings (plus the common NATS/ops/logging variables). */
export const config = defineConfig({
  /** Where the archive lives: `fs` (a local folder, the embedded default) or `s3` (an S3-compatible bucket). Default `fs`. */
  ARCHIVER_STORE: z.enum(['fs', 's3']).default('fs'),
  /** Folder of the archive when `ARCHIVER_STORE=fs` (relative to the working directory). Default `tmp/archive`. */
  ARCHIVER_DIR: z.string().min(1, 'must be a folder path').default('tmp/archive'),
  /** Bucket when `ARCHIVER_STORE=s3`. Required then. */
  ARCHIVER_S3_BUCKET: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      'must be an S3 bucket name: 3-63 lowercase letters, digits, dots or hyphens',
    )
    .optional(),
  /** Key prefix inside the bucket (no leading or trailing `/`). Default none. */
  ARCHIVER_S3_PREFIX: z
    .string()
    .regex(
      /^([A-Za-z0-9!_.*'()-]+(\/[A-Za-z0-9!_.*'()-]+)*)?$/,
      'must be path segments of safe characters separated by /, without leading or trailing /',
    )
    .default(''),
  /** Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:8333`. Unset for AWS S3. */
  ARCHIVER_S3_ENDPOINT: z.url('must be a URL like http://127.0.0.1:8333').optional(),
  /** Region for request signing. Default `us-east-1`. */
  ARCHIVER_S3_REGION: z.string().min(1).default('us-east-1'),
  /** Path-style requests (`host/bucket/key`), which most self-hosted servers need. Default `false`. */
  ARCHIVER_S3_FORCE_PATH_STYLE: bool(false),
  /** Create the bucket at start when it is missing (development). Default `false`. */
  ARCHIVER_S3_CREATE_BUCKET: bool(false),
  /** Files larger than this are uploaded in parts. Default 16777216 (16 MiB). */
  ARCHIVER_S3_MULTIPART_THRESHOLD: positiveInt(16 * MiB),
  /** Size of one multipart part, at least 5 MiB. Default 8388608 (8 MiB). */
  ARCHIVER_S3_PART_SIZE: positiveInt(8 * MiB).refine(
    (v) => v >= 5 * MiB,
    'must be at least 5242880 (5 MiB), the S3 minimum part size',
  ),
  /** Bound on one S3 request. Default `30s`. */
  ARCHIVER_S3_REQUEST_TIMEOUT: durationMs('30s'),
  /** File formats written per partition, comma-separated: `parquet`, `jsonl.gz`. Default `parquet`. */
  ARCHIVER_FORMATS: csv('parquet').pipe(
    z
      .array(z.enum(FORMATS, `must be a comma-separated list of ${FORMATS.join(', ')}`))
      .min(1, 'must name at least one format')
      .refine((v) => new Set(v).size === v.length, 'must not repeat a format'),
  ),
  /** Durable consumer name; also names the journal (`_sluice/archiver/<durable>/journal.json`). Default `archiver`. */
  ARCHIVER_DURABLE: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be letters, digits, _ or -')
    .default('archiver'),
  /** Archive only this region (`<ns>.telemetry.clean.<region>`, the durable's one filter subject). Default unset: every region. */
  ARCHIVER_REGION: z
    .string()
    .regex(
      NAME_TOKEN_PATTERN,
      'must be a region name: lowercase letters, digits, "_" and "-", at most 64',
    )
    .optional(),
  /** Leader lease of the durable (max_age of its NATS KV bucket); a standby takes over within 1⅓ of it. At least `2s`. Default `10s`. */
  ARCHIVER_LEASE_TTL: durationMs('10s').refine((v) => v >= 2_000, 'must be at least 2s'),
  /** A partition's rows that close the open segment (the largest file). Default 500000. */
  ARCHIVER_FILE_MAX_ROWS: positiveInt(500_000),
  /** Payload bytes of the open segment that close it. Default 67108864 (64 MiB). */
  ARCHIVER_FILE_MAX_BYTES: positiveInt(64 * MiB),
  /** Age of the open segment that closes it: the longest an event waits to be archived and acknowledged. Default `1m`. */
  ARCHIVER_FILE_MAX_AGE: durationMs('1m'),
  /** Rows per Parquet row group (each carries min/max statistics). Default 131072. */
  ARCHIVER_ROW_GROUP_ROWS: positiveInt(131_072),
  /**
   * Encode each cut segment (sort, columns, Parquet) in a worker thread while the event loop reads
   * the next one; `false` encodes on the event loop (one core). Default `true`.
   */
  ARCHIVER_ENCODE_THREAD: bool(true),
  /** Most messages per handler call. Default 256. */
  ARCHIVER_BATCH_MESSAGES: positiveInt(256),
  /** Most payload bytes per handler call. Default 4194304 (4 MiB). */
  ARCHIVER_BATCH_BYTES: positiveInt(4 * MiB),
  /**
   * Handler calls outstanding at once; with the batch size this bounds the open segment and the
   * memory it holds (concurrency × batch bytes). Default 32.
   */
  ARCHIVER_BATCH_CONCURRENCY: positiveInt(32),
  /** Bytes pulled ahead of the handler. Default 8388608 (8 MiB). */
  ARCHIVER_PREFETCH_BYTES: positiveInt(8 * MiB),
  /** Server redelivery after this long without ack or heartbeat. Default `30s`. */
  ARCHIVER_ACK_WAIT: durationMs('30s'),
  /** Deliveries of a message before it is dead-lettered whole. Default 50. */
  ARCHIVER_MAX_DELIVER: positiveInt(50),
  /** Longest a commit is retried through a store outage before its messages are nak'ed. Default `10m`. */
  ARCHIVER_HOLD_ON_OUTAGE: durationMs('10m'),
  /** Partitions whose whole event day is older than this are removed. Default `30d`. */
  ARCHIVER_RETENTION: durationMs('30d'),
  /** How often retention runs; `0` turns it off (e.g. when an S3 lifecycle rule does it). Default `1h`. */
  ARCHIVER_RETENTION_INTERVAL: durationMs('1h'),
  /** How often compaction runs; `0` turns it off. Default `1h`. */
  ARCHIVER_COMPACTION_INTERVAL: durationMs('1h'),
  /** Parquet files smaller than this are merged by compaction. Default 33554432 (32 MiB). */
  ARCHIVER_COMPACTION_SMALL_FILE_BYTES: positiveInt(32 * MiB),
  /** Largest compaction output (sum of its inputs). Default 134217728 (128 MiB). */
  ARCHIVER_COMPACTION_TARGET_BYTES: positiveInt(128 * MiB),
  /** Unlisted objects in a partition folder older than this are leftovers of crashes; compaction removes them. Default `1h`. */
  ARCHIVER_ORPHAN_AGE: durationMs('1h'),
  /** Testing only: halt a commit at this point until the process is killed (crash tests). Default unset. */
  ARCHIVER_FAILPOINT: z.enum(FAILPOINTS).optional(),
});

export type Config = z.infer<typeof config>;

import { bool, defineConfig, durationMs, mongoUrl, positiveInt, z } from '@sluice/config';
import { parseCollectionTemplate } from '@sluice/sinks-mongodb';

const template = (fallback: string, kind: 'telemetry' | 'detection', name: string) =>
  z
    .string()
    .default(fallback)
    .superRefine((v, ctx) => {
      try {
        parseCollectionTemplate(v, kind, name);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    });

/** mongo-capture settings (plus the common NATS/ops/logging variables). */
export const config = defineConfig({
  /**
   * MongoDB connection string of the owner's database. Default `mongodb://127.0.0.1:27017`. TLS by
   * the driver's parameters, checked at start: `?tls=true&tlsCAFile=<ca.pem>`, and
   * `tlsCertificateKeyFile=<certificate and key.pem>` for a client certificate.
   */
  MONGO_URL: mongoUrl(),
  /** Database. Default `sluice`. */
  MONGO_DATABASE: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/, 'must be 1-63 letters, digits, _ or -')
    .default('sluice'),
  /** Telemetry collection template (`{region}`, `{sensor_type}`). Default `telemetry_{region}`. */
  MONGO_TELEMETRY_COLLECTION: template(
    'telemetry_{region}',
    'telemetry',
    'MONGO_TELEMETRY_COLLECTION',
  ),
  /** Detection collection template (`{region}`, `{stream_id}`). Default `detections_{region}`. */
  MONGO_DETECTION_COLLECTION: template(
    'detections_{region}',
    'detection',
    'MONGO_DETECTION_COLLECTION',
  ),
  /** Write concern `w`: `majority` or a node count. Default `majority`. */
  MONGO_WRITE_CONCERN: z
    .string()
    .default('majority')
    .refine((v) => v === 'majority' || /^\d+$/.test(v), 'must be "majority" or a whole number')
    .transform((v) => (v === 'majority' ? ('majority' as const) : Number(v))),
  /** Write concern `j` (wait for the journal). Default `true`. */
  MONGO_JOURNAL: bool(true),
  /** Write concern `wtimeout`. Default `10s`. */
  MONGO_WRITE_TIMEOUT: durationMs('10s'),
  /** TTL of documents in days after their event time; `0` keeps them. Default `0`. */
  MONGO_TTL_DAYS: z.coerce.number().int().min(0, 'must be 0 (off) or a number of days').default(0),
  /** Telemetry in time-series collections (no unique _id: see docs). Default `false`. */
  MONGO_TIMESERIES: bool(false),
  /** How long the driver looks for the server before an operation fails. Default `5s`. */
  MONGO_SERVER_SELECTION_TIMEOUT: durationMs('5s'),
  /** Durable consumer name. Default `mongo-capture`. */
  MONGO_CAPTURE_DURABLE: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be letters, digits, _ or -')
    .default('mongo-capture'),
  /**
   * Name under which `sluice replay --target` and DLQ redrives reach this capture: it also consumes
   * `replay.<name>.>` (durable `<durable>-replay`). `off` consumes no replays. Default `mongo-capture`.
   */
  MONGO_CAPTURE_REPLAY_TARGET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be lowercase letters, digits, _ or - (or off)')
    .default('mongo-capture'),
  /** Most clean batches (messages) per bulk insert. Default 64. */
  MONGO_CAPTURE_BATCH_MESSAGES: positiveInt(64),
  /** Most payload bytes per bulk insert. Default 4194304 (4 MiB). */
  MONGO_CAPTURE_BATCH_BYTES: positiveInt(4 * 1024 * 1024),
  /** Wait this long for more messages after the first. Default `20ms`. */
  MONGO_CAPTURE_LINGER: durationMs('20ms'),
  /** Bytes pulled ahead of the writer (the buffer bound). Default 8388608 (8 MiB). */
  MONGO_CAPTURE_PREFETCH_BYTES: positiveInt(8 * 1024 * 1024),
  /** Deliveries of a message before it is dead-lettered whole. Default 50. */
  MONGO_CAPTURE_MAX_DELIVER: positiveInt(50),
  /** Server redelivery after this long without ack. Default `30s`. */
  MONGO_CAPTURE_ACK_WAIT: durationMs('30s'),
  /**
   * In-process retry budget of one failed write; past it MongoDB counts as down: the batch is held,
   * nothing new is pulled, and MongoDB is probed every 500 ms until it answers. Default `2s`.
   */
  MONGO_CAPTURE_RETRY_BUDGET: durationMs('2s'),
});

export type Config = z.infer<typeof config>;

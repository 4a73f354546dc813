// Options of the device client: one zod schema, parsed once in the constructor; a bad option fails
// there with a ConfigError naming it (`deviceSdk.maxBufferEvents: ...`).
import { durationMs, z } from '@sluice/config';
import type { Event, EventRejection } from '@sluice/contracts';
import { ConfigError } from '@sluice/errors';
import type { Registry } from 'prom-client';
import type { DeviceSdkError } from './errors';
import { PRIORITIES, type DropReason, type Priority } from './priority';

const positive = (fallback: number) =>
  z.number().int('must be a whole number').positive('must be greater than 0').default(fallback);

const fn = <T>(what: string) =>
  z.custom<T>((v) => typeof v === 'function', `must be a function (${what})`).optional();

const pem = z.union([z.string().min(1), z.instanceof(Buffer)]);

/** TLS to the gateway: `true` = verify against the system roots; an object for a private CA or mTLS. */
const tls = z.union([
  z.boolean(),
  z
    .object({
      /** CA bundle (PEM) that signed the gateway's certificate. Default: the system roots. */
      ca: pem.optional(),
      /** Client certificate (PEM) for mTLS (the gateway reads the device id from its CN/SAN). */
      cert: pem.optional(),
      /** Private key (PEM) of `cert`. */
      key: pem.optional(),
      /** Name to verify the gateway's certificate against, when it differs from the target host. */
      serverName: z.string().min(1).optional(),
    })
    .strict()
    .refine((t) => Boolean(t.cert) === Boolean(t.key), 'cert and key must be given together'),
]);

export const deviceClientOptions = z
  .object({
    /** The gateway's gRPC address, `host:port` (any grpc-js target). Required. */
    target: z.string().min(1, 'must be the gateway address, host:port'),
    /**
     * Bearer token sent as `authorization: Bearer <token>` on the Ingest stream; a function is called
     * at each (re)connect, for tokens that rotate. Default none (a client certificate, or no auth).
     */
    token: z
      .union([
        z.string().min(1, 'must not be empty'),
        z.custom<() => string>(
          (v) => typeof v === 'function',
          'must be a string or a function returning one',
        ),
      ])
      .optional(),
    /** TLS to the gateway. Default `false` (plaintext, for loopback and trusted networks only). */
    tls: tls.default(false),
    /** Name of this client: the `client` label of its metrics and the start of its ids. Default `device-sdk`. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1..64 of A-Z a-z 0-9 . _ -')
      .default('device-sdk'),
    /**
     * Prefix of the batch ids (and of event ids the client fills in), unique per client instance:
     * resends reuse a batch id, so two clients sharing a credential must not share a prefix.
     * Default `<name>-<8 random hex>`.
     */
    idPrefix: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,80}$/, 'must be 1..80 of A-Z a-z 0-9 . _ : -')
      .optional(),
    /** Most events held (queued, waiting for a resend, or in flight). Default 10000. */
    maxBufferEvents: positive(10_000),
    /** Most estimated encoded bytes held. Default 8388608 (8 MiB). */
    maxBufferBytes: positive(8 * 1024 * 1024),
    /** Most events per batch (the gateway's INGEST_MAX_BATCH_EVENTS is the ceiling). Default 500. */
    maxBatchEvents: positive(500),
    /** Most estimated bytes per batch; a larger single event is dropped (`too_large`). Default 262144. */
    maxBatchBytes: positive(256 * 1024),
    /**
     * Largest encoded EventBatch sent (the gateway's INGEST_MAX_BATCH_BYTES): a batch encoding larger
     * is split before it is first sent. Default 900000.
     */
    maxRequestBytes: positive(900_000),
    /** How long `normal` and `bulk` events may wait for a fuller batch. Default `20ms`. */
    lingerMs: durationMs(20),
    /** How long `safety` events may wait for a fuller batch. Default `0` (sent at once). */
    safetyLingerMs: durationMs(0),
    /** Batches sent on the stream and not yet acknowledged. Default 4. */
    maxInFlightBatches: positive(4),
    /** First reconnect back-off (doubling, with jitter, up to retryMaxMs). Default `100ms`. */
    retryInitialMs: durationMs(100),
    /** Longest reconnect back-off. Default `10s`. */
    retryMaxMs: durationMs('10s'),
    /** A batch not acknowledged this long abandons the stream (reconnect and resend). Default `30s`. */
    ackTimeoutMs: durationMs('30s'),
    /** Priority of `emit(event)` without one. Default `normal`. */
    defaultPriority: z.enum(PRIORITIES).default('normal'),
    /**
     * Registry for the client's metrics (`sluice_sdk_*`, label `client`). Default: a registry of the
     * client's own (read it with `client.metrics`).
     */
    registry: z
      .custom<Registry>(
        (v) =>
          typeof v === 'object' &&
          v !== null &&
          typeof (v as Registry).registerMetric === 'function',
        'must be a prom-client Registry',
      )
      .optional(),
    /** Extra grpc-js channel options (keepalive and the like). Default none. */
    channelOptions: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
    /** Called for every event that leaves the buffer without an ack, with why. Must not throw. */
    onDrop: fn<(event: Event, priority: Priority, reason: DropReason) => void>('onDrop'),
    /** Called for every event the gateway refused as invalid, with its rejection. Must not throw. */
    onReject: fn<(event: Event, rejection: EventRejection) => void>('onReject'),
    /** Called when the stream fails (the client reconnects by itself). Must not throw. */
    onError: fn<(error: DeviceSdkError) => void>('onError'),
  })
  .strict()
  .superRefine((o, ctx) => {
    const issue = (path: string, message: string) =>
      ctx.addIssue({ code: 'custom', path: [path], message });
    if (o.maxBatchEvents > o.maxBufferEvents)
      issue('maxBatchEvents', `must be at most maxBufferEvents (${o.maxBufferEvents})`);
    if (o.maxBatchBytes > o.maxRequestBytes)
      issue('maxBatchBytes', `must be at most maxRequestBytes (${o.maxRequestBytes})`);
    // In-flight batches cannot be evicted: at least half the buffer must stay evictable, so a
    // safety event always finds room while batches are in flight.
    if (o.maxInFlightBatches * o.maxBatchEvents * 2 > o.maxBufferEvents)
      issue(
        'maxInFlightBatches',
        `maxInFlightBatches × maxBatchEvents (${o.maxInFlightBatches * o.maxBatchEvents}) must be at most half of maxBufferEvents (${o.maxBufferEvents})`,
      );
    if (o.maxInFlightBatches * o.maxBatchBytes * 2 > o.maxBufferBytes)
      issue(
        'maxInFlightBatches',
        `maxInFlightBatches × maxBatchBytes (${o.maxInFlightBatches * o.maxBatchBytes}) must be at most half of maxBufferBytes (${o.maxBufferBytes})`,
      );
    if (o.retryInitialMs <= 0) issue('retryInitialMs', 'must be greater than 0');
    if (o.retryMaxMs < o.retryInitialMs)
      issue('retryMaxMs', `must be at least retryInitialMs (${o.retryInitialMs})`);
    if (o.ackTimeoutMs <= 0) issue('ackTimeoutMs', 'must be greater than 0');
  });

/** Options of {@link DeviceClient} as written by the caller (defaults in each field's doc). */
export type DeviceClientOptions = z.input<typeof deviceClientOptions>;
/** Options with every default applied. */
export type ResolvedOptions = z.output<typeof deviceClientOptions>;

/** Parses the options; throws {@link ConfigError} naming every bad one (`deviceSdk.<option>`). */
export function parseOptions(input: DeviceClientOptions): ResolvedOptions {
  const result = deviceClientOptions.safeParse(input);
  if (result.success) return result.data;
  throw ConfigError.of(
    result.error.issues.map((issue) => ({
      variable: ['deviceSdk', ...issue.path.map(String)].join('.'),
      reason: issue.message,
    })),
  );
}

import { bool, positiveInt, z } from '@sluice/config';
import { EXPORT_FORMATS, parseSinkOptions, type RouteTemplate } from '@sluice/sinks-core';
import { parseRoutingKeyTemplate } from './templates';

const queueDeclaration = z.strictObject({
  /** Queue name. */
  name: z.string().min(1).max(255),
  /** `classic`, `quorum` or `stream` (a RabbitMQ stream, written through AMQP 0-9-1). Default `classic`. */
  type: z.enum(['classic', 'quorum', 'stream']).default('classic'),
  /** Binding keys to the exchange. Default `["#"]` (everything, on a topic exchange). */
  bindings: z.array(z.string().max(255)).default(['#']),
});

export const amqpSinkOptionsSchema = z.strictObject({
  /** `amqp://user:password@host:5672/vhost` (or `amqps://`). Required. */
  url: z.string().regex(/^amqps?:\/\/\S+$/, 'must be an amqp:// or amqps:// URL'),
  /** Exchange the records are published to. Default `sluice.export`. */
  exchange: z.string().min(1).max(255).default('sluice.export'),
  /** Its type, when the sink declares it. Default `topic`. */
  exchangeType: z.enum(['topic', 'direct', 'fanout', 'headers']).default('topic'),
  /**
   * Declare the exchange (durable) at connect and whenever the channel is opened again; `false` when
   * it is managed elsewhere (it must exist). Default true.
   */
  declareExchange: bool(true),
  /**
   * Queues to declare (durable) and bind to the exchange at connect, e.g. a `stream` queue. Default
   * none: consumers own their queues.
   */
  queues: z.array(queueDeclaration).default([]),
  /**
   * Routing key of telemetry; placeholders `{region}`, `{device_id}`, `{sensor_type}`. Default
   * `telemetry.{region}.{sensor_type}`.
   */
  telemetryRoutingKey: z.string().default('telemetry.{region}.{sensor_type}'),
  /**
   * Routing key of detections; placeholders `{region}`, `{device_id}`, `{stream_id}`, `{label}`,
   * `{class_id}`. A frame with several labels is published once with the other keys in its `CC`
   * header (every queue bound to any of them gets it once). Default `detection.{region}.{stream_id}.{label}`.
   */
  detectionRoutingKey: z.string().default('detection.{region}.{stream_id}.{label}'),
  /** `json` (the export record) or `protobuf` (one sluice.telemetry.v1.Event). Default `json`. */
  format: z.enum(EXPORT_FORMATS as ['json', 'protobuf']).default('json'),
  /** Persistent messages (delivery mode 2): they survive a broker restart in durable queues. Default true. */
  persistent: bool(true),
  /**
   * Publish as mandatory: a record no queue is bound for is returned by the broker and goes to the
   * DLQ with the broker's reason (instead of being dropped silently). Default true.
   */
  mandatory: bool(true),
  /** Per-message TTL (`expiration`) in ms; unset for none. */
  messageTtlMs: z.coerce.number().int().positive('must be greater than 0').optional(),
  /** Publishes waiting for their confirm at once (a bounded buffer). Default 1000. */
  maxInFlight: positiveInt(1_000),
  /** Event ids remembered as confirmed, so a redelivered record is not published again; 0 turns it off. Default 100000. */
  recentIds: z.coerce.number().int().min(0).default(100_000),
  /** How long connecting (and opening a channel) may take. Default 5000 ms. */
  connectTimeoutMs: positiveInt(5_000),
  /** AMQP heartbeat in seconds: how fast a dead connection is noticed. Default 15. */
  heartbeatSeconds: positiveInt(15),
  /** Sink name (metrics label, default durable). Default `amqp`. */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be lowercase letters, digits, "_" or "-"')
    .default('amqp'),
});

/** Options of {@link AmqpSink}, as written in a config file. */
export type AmqpSinkOptions = z.input<typeof amqpSinkOptionsSchema>;

/** Options with defaults applied and the routing-key templates parsed. */
export type ResolvedAmqpOptions = Omit<
  z.output<typeof amqpSinkOptionsSchema>,
  'telemetryRoutingKey' | 'detectionRoutingKey'
> & { telemetryRoutingKey: RouteTemplate; detectionRoutingKey: RouteTemplate };

/** Applies defaults and validates; throws a ConfigError naming each bad option. */
export function resolveAmqpOptions(
  options: AmqpSinkOptions,
  setting?: string,
): ResolvedAmqpOptions {
  const o = parseSinkOptions(amqpSinkOptionsSchema, options, setting);
  const at = (name: string) => (setting ? `${setting}.${name}` : name);
  return {
    ...o,
    telemetryRoutingKey: parseRoutingKeyTemplate(
      o.telemetryRoutingKey,
      'telemetry',
      at('telemetryRoutingKey'),
    ),
    detectionRoutingKey: parseRoutingKeyTemplate(
      o.detectionRoutingKey,
      'detection',
      at('detectionRoutingKey'),
    ),
  };
}

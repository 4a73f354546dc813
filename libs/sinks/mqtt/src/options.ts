import { hostname } from 'node:os';
import { bool, positiveInt, z } from '@sluice/config';
import { ConfigError } from '@sluice/errors';
import { EXPORT_FORMATS, parseSinkOptions, type RouteTemplate } from '@sluice/sinks-core';
import { parseTopicTemplate } from './templates';

export const mqttSinkOptionsSchema = z.strictObject({
  /** `mqtt://host:1883`, `mqtts://`, `ws://` or `wss://`; credentials may be in the URL. Required. */
  url: z
    .string()
    .regex(/^(mqtts?|wss?):\/\/\S+$/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL'),
  /** `5` or `3.1.1`. MQTT 5 carries the schema version, event id and content type as properties and lets the broker refuse a message. Default `5`. */
  protocolVersion: z.enum(['5', '3.1.1']).default('5'),
  /**
   * Client id of the persistent session: fixed, and unique per running sink (two clients with one id
   * take the session from each other). Default `sluice-<name>-<host name>`.
   */
  clientId: z.string().min(1).max(128).optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  /** Topic of telemetry; placeholders `{region}`, `{device_id}`, `{sensor_type}`. Default `sluice/telemetry/{region}/{device_id}/{sensor_type}`. */
  telemetryTopic: z.string().default('sluice/telemetry/{region}/{device_id}/{sensor_type}'),
  /**
   * Topic of detections; placeholders `{region}`, `{device_id}`, `{stream_id}`, `{label}`,
   * `{class_id}`. With `{label}` or `{class_id}`, a frame is published to the topic of each distinct
   * value among its detections (`none` when it has none). Default `sluice/detections/{region}/{stream_id}/{label}`.
   */
  detectionTopic: z.string().default('sluice/detections/{region}/{stream_id}/{label}'),
  /** 0: at most once. 1: at least once (duplicates carry the same event id). 2: exactly once to the broker. Default 1. */
  qos: z.coerce
    .number()
    .pipe(z.union([z.literal(0), z.literal(1), z.literal(2)], 'must be 0, 1 or 2'))
    .default(1),
  /** Publish retained: a new subscriber gets the last record of each topic. Default false. */
  retain: bool(false),
  /** MQTT 5 message expiry: the broker drops an undelivered message after this long. Unset for none. */
  messageExpirySeconds: z.coerce.number().int().positive('must be greater than 0').optional(),
  /** `json` (the export record) or `protobuf` (one sluice.telemetry.v1.Event). Default `json`. */
  format: z.enum(EXPORT_FORMATS as ['json', 'protobuf']).default('json'),
  /** MQTT 5: how long the broker keeps the session (unacknowledged QoS 2 state) after a disconnect. Default 3600. */
  sessionExpirySeconds: positiveInt(3_600),
  /** Keep-alive: how fast a dead connection is noticed (about 1.5 × this). Default 15 s. */
  keepaliveSeconds: positiveInt(15),
  /** How long connecting may take before `connect()` fails (retriably; the client keeps trying). Default 5000 ms. */
  connectTimeoutMs: positiveInt(5_000),
  /** Pause between reconnect attempts. Default 1000 ms. */
  reconnectPeriodMs: positiveInt(1_000),
  /** Records being published at once (a bounded buffer); the broker's receive maximum also bounds QoS ≥ 1 publishes. Default 1000. */
  maxInFlight: positiveInt(1_000),
  /** Event ids remembered as acknowledged, so a redelivered record is not published again; 0 turns it off. Default 100000. */
  recentIds: z.coerce.number().int().min(0).default(100_000),
  /** Sink name (metrics label, default durable). Default `mqtt`. */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be lowercase letters, digits, "_" or "-"')
    .default('mqtt'),
});

/** Options of {@link MqttSink}, as written in a config file. */
export type MqttSinkOptions = z.input<typeof mqttSinkOptionsSchema>;

/** Options with defaults applied and the topic templates parsed. */
export type ResolvedMqttOptions = Omit<
  z.output<typeof mqttSinkOptionsSchema>,
  'telemetryTopic' | 'detectionTopic' | 'clientId'
> & { clientId: string; telemetryTopic: RouteTemplate; detectionTopic: RouteTemplate };

/** Applies defaults and validates; throws a ConfigError naming each bad option. */
export function resolveMqttOptions(
  options: MqttSinkOptions,
  setting?: string,
): ResolvedMqttOptions {
  const o = parseSinkOptions(mqttSinkOptionsSchema, options, setting);
  const at = (name: string) => (setting ? `${setting}.${name}` : name);
  if (o.protocolVersion === '3.1.1' && o.messageExpirySeconds !== undefined)
    throw new ConfigError(at('messageExpirySeconds'), 'message expiry needs protocolVersion 5');
  return {
    ...o,
    clientId:
      o.clientId ?? `sluice-${o.name}-${hostname()}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64),
    telemetryTopic: parseTopicTemplate(o.telemetryTopic, 'telemetry', at('telemetryTopic')),
    detectionTopic: parseTopicTemplate(o.detectionTopic, 'detection', at('detectionTopic')),
  };
}

// The destination types the exporter can run: for each, how its `options` are validated (the sink's
// own zod schema or resolver, so an error names `destinations[i].options.<option>`), which `format`
// values it takes, and how its sink is built.
import { bool, durationMs, positiveInt, z, type ConfigIssue } from '@sluice/config';
import { ConfigError } from '@sluice/errors';
import type { Logger } from '@sluice/observability';
import {
  AmqpSink,
  amqpSinkOptionsSchema,
  resolveAmqpOptions,
  type AmqpSinkOptions,
} from '@sluice/sinks-amqp';
import type { Sink } from '@sluice/sinks-core';
import {
  MqttSink,
  mqttSinkOptionsSchema,
  resolveMqttOptions,
  type MqttSinkOptions,
} from '@sluice/sinks-mqtt';
import {
  FileSink,
  fileSinkOptionsSchema,
  resolveFileOptions,
  type FileSinkOptions,
} from '@sluice/sinks-file';
import { MongoSink, resolveMongoOptions, type MongoSinkOptions } from '@sluice/sinks-mongodb';
import {
  PostgresSink,
  postgresSinkOptionsSchema,
  resolvePostgresOptions,
  type PostgresSinkOptions,
} from '@sluice/sinks-postgres';

export interface SinkType {
  /**
   * Values of the destination's `format` and the sink option each becomes (`options.format`); absent
   * when the destination stores typed rows or documents and has no format to choose.
   */
  formats?: Readonly<Record<string, string>>;
  /** The sink's options schema: unknown options, types and ranges (`name` and `format` already set). */
  schema: z.ZodType;
  /** The checks beyond the schema (templates, combinations); throws ConfigError naming `<at>.<option>`. */
  validate(options: Record<string, unknown>, at: string): void;
  /** The sink, from validated options. */
  create(options: Record<string, unknown>, log: Logger): Sink;
}

/** Prefixes every issue of a ConfigError thrown by a resolver that does not take a setting path. */
function prefixed(at: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw ConfigError.of(
      err.issues.map((i: ConfigIssue) => ({
        variable: i.variable.startsWith(`${at}.`) ? i.variable : `${at}.${i.variable}`,
        reason: i.reason,
      })),
    );
  }
}

const nonNegativeMs = durationMs(0);

// MongoSinkOptions is a plain interface: this schema gives its options the strictness (unknown keys
// refused) and coercion (`${VAR}` values are strings) of the zod-based sinks.
const mongoOptionsSchema = z.strictObject({
  url: z.string().min(1, 'must be a mongodb:// URL'),
  database: z.string().optional(),
  telemetryCollection: z.string().optional(),
  detectionCollection: z.string().optional(),
  writeConcernW: z
    .union([z.number(), z.string()])
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === 'majority') return v;
      const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
      if (!Number.isInteger(n) || n < 0) {
        ctx.addIssue({ code: 'custom', message: 'must be "majority" or a whole number >= 0' });
        return z.NEVER;
      }
      return n;
    }),
  writeConcernJournal: bool(true).optional(),
  writeConcernTimeoutMs: nonNegativeMs.optional(),
  ttlDays: z.coerce.number().int().min(0).optional(),
  timeseries: bool(false).optional(),
  serverSelectionTimeoutMs: nonNegativeMs.optional(),
  connectTimeoutMs: nonNegativeMs.optional(),
  socketTimeoutMs: nonNegativeMs.optional(),
  maxPoolSize: positiveInt(10).optional(),
  name: z.string(),
});

function mongoOptions(options: Record<string, unknown>): MongoSinkOptions {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(mongoOptionsSchema.parse(options)))
    if (v !== undefined) out[k] = v;
  return out as unknown as MongoSinkOptions;
}

/** Every destination type with a sink in this build, by the name written in `type`. */
export const SINK_TYPES: Readonly<Record<string, SinkType>> = {
  mqtt: {
    formats: { json: 'json', protobuf: 'protobuf' },
    schema: mqttSinkOptionsSchema,
    validate: (o, at) => void resolveMqttOptions(o as MqttSinkOptions, at),
    create: (o) => new MqttSink(o as MqttSinkOptions),
  },
  amqp: {
    formats: { json: 'json', protobuf: 'protobuf' },
    schema: amqpSinkOptionsSchema,
    validate: (o, at) => void resolveAmqpOptions(o as AmqpSinkOptions, at),
    create: (o) => new AmqpSink(o as AmqpSinkOptions),
  },
  postgres: {
    schema: postgresSinkOptionsSchema,
    validate: (o, at) => void resolvePostgresOptions(o as PostgresSinkOptions, at),
    create: (o, log) =>
      new PostgresSink(o as PostgresSinkOptions, {
        info: (fields, msg) => log.info(fields, msg),
        warn: (fields, msg) => log.warn(fields, msg),
      }),
  },
  mongodb: {
    schema: mongoOptionsSchema,
    validate: (o, at) => prefixed(at, () => void resolveMongoOptions(mongoOptions(o))),
    create: (o) => new MongoSink(mongoOptions(o)),
  },
  file: {
    formats: { json: 'jsonl', csv: 'csv' },
    schema: fileSinkOptionsSchema,
    validate: (o, at) => void resolveFileOptions(o as FileSinkOptions, at),
    create: (o) => new FileSink(o as FileSinkOptions),
  },
};

export const DESTINATION_TYPES: readonly string[] = Object.keys(SINK_TYPES);

import { mongoTlsProblems } from '@sluice/config';
import { ConfigError } from '@sluice/errors';
import { assertDatabaseName, parseCollectionTemplate, type CollectionTemplate } from './naming';

export interface MongoSinkOptions {
  /** Connection string, e.g. `mongodb://user:pass@host:27017/?authSource=admin`. Required. */
  url: string;
  /** Database. Default `sluice`. */
  database?: string;
  /** Telemetry collection template; placeholders `{region}`, `{sensor_type}`. Default `telemetry_{region}`. */
  telemetryCollection?: string;
  /** Detection collection template; placeholders `{region}`, `{stream_id}`. Default `detections_{region}`. */
  detectionCollection?: string;
  /** Write concern `w`: a number of nodes or `majority`. Default `majority`. */
  writeConcernW?: number | 'majority';
  /** Wait for the journal. Default true. */
  writeConcernJournal?: boolean;
  /** `wtimeout` of the write concern. Default 10 s. */
  writeConcernTimeoutMs?: number;
  /** Documents expire this many days after their event time (TTL index); 0 keeps them. Default 0. */
  ttlDays?: number;
  /**
   * Telemetry collections as time-series collections (timeField `event_time`, metaField `device_id`).
   * Time-series collections have no unique `_id`: a redelivered batch can store a duplicate (see
   * docs/SINKS.md). Refused at `connect()` when the server lacks them. Default false.
   */
  timeseries?: boolean;
  /** Driver server selection timeout: how fast an outage surfaces as an error. Default 5 s. */
  serverSelectionTimeoutMs?: number;
  /** Driver connect timeout. Default 5 s. */
  connectTimeoutMs?: number;
  /** Driver socket timeout. Default 30 s. */
  socketTimeoutMs?: number;
  /** Connection pool size. Default 10. */
  maxPoolSize?: number;
  /** Sink name (metrics label, default durable). Default `mongodb`. */
  name?: string;
  /**
   * What the deployer calls `url` (e.g. `MONGO_URL`), named by a failed TLS handshake's error
   * together with the URL's `tlsCAFile` or `tlsCertificateKeyFile`. Default `url`.
   */
  urlSetting?: string;
}

/** Options with defaults applied and templates parsed. */
export interface ResolvedMongoOptions {
  url: string;
  database: string;
  telemetry: CollectionTemplate;
  detection: CollectionTemplate;
  writeConcern: { w: number | 'majority'; journal: boolean; wtimeoutMS: number };
  ttlDays: number;
  timeseries: boolean;
  serverSelectionTimeoutMs: number;
  connectTimeoutMs: number;
  socketTimeoutMs: number;
  maxPoolSize: number;
  name: string;
  urlSetting: string;
}

function nonNegative(v: number, setting: string): number {
  if (!Number.isFinite(v) || v < 0)
    throw new ConfigError(setting, `must be a number >= 0, got ${v}`);
  return v;
}

/** Applies defaults and validates everything; throws {@link ConfigError} naming the option. */
export function resolveMongoOptions(o: MongoSinkOptions): ResolvedMongoOptions {
  if (!/^mongodb(\+srv)?:\/\//.test(o.url ?? ''))
    throw new ConfigError('url', 'must start with mongodb:// or mongodb+srv://');
  const urlSetting = o.urlSetting ?? 'url';
  const tlsProblems = mongoTlsProblems(o.url);
  if (tlsProblems.length > 0)
    throw ConfigError.of(tlsProblems.map((reason) => ({ variable: urlSetting, reason })));
  const database = o.database ?? 'sluice';
  assertDatabaseName(database, 'database');
  const w = o.writeConcernW ?? 'majority';
  if (w !== 'majority' && (!Number.isInteger(w) || w < 0))
    throw new ConfigError('writeConcernW', `must be "majority" or a whole number >= 0, got ${w}`);
  const name = o.name ?? 'mongodb';
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(name))
    throw new ConfigError('name', `"${name}" must be lowercase letters, digits, "_" or "-"`);
  const ttlDays = nonNegative(o.ttlDays ?? 0, 'ttlDays');
  return {
    url: o.url,
    database,
    telemetry: parseCollectionTemplate(
      o.telemetryCollection ?? 'telemetry_{region}',
      'telemetry',
      'telemetryCollection',
    ),
    detection: parseCollectionTemplate(
      o.detectionCollection ?? 'detections_{region}',
      'detection',
      'detectionCollection',
    ),
    writeConcern: {
      w,
      journal: o.writeConcernJournal ?? true,
      wtimeoutMS: nonNegative(o.writeConcernTimeoutMs ?? 10_000, 'writeConcernTimeoutMs'),
    },
    ttlDays,
    timeseries: o.timeseries ?? false,
    serverSelectionTimeoutMs: nonNegative(
      o.serverSelectionTimeoutMs ?? 5_000,
      'serverSelectionTimeoutMs',
    ),
    connectTimeoutMs: nonNegative(o.connectTimeoutMs ?? 5_000, 'connectTimeoutMs'),
    socketTimeoutMs: nonNegative(o.socketTimeoutMs ?? 30_000, 'socketTimeoutMs'),
    maxPoolSize: Math.max(1, Math.floor(o.maxPoolSize ?? 10)),
    name,
    urlSetting,
  };
}

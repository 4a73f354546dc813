import { randomBytes } from 'node:crypto';
import {
  BSON,
  MongoBulkWriteError,
  MongoClient,
  MongoInvalidArgumentError,
  MongoServerError,
  type Db,
  type Document,
} from 'mongodb';
import {
  RecordRejectedError,
  SinkUnsupportedError,
  type RejectedRecord,
  type Sink,
  type SinkHealth,
  type SinkRecord,
  type WriteResult,
} from '@sluice/sinks-core';
import { TlsConnectError, type TlsPeer } from '@sluice/config';
import { toDocument } from './documents';
import {
  DOCUMENT_ERROR_CODES,
  DUPLICATE_KEY,
  DocumentEncodingError,
  DocumentRejectedError,
  TransientWriteError,
  isRetriableMongoError,
} from './errors';
import type { TemplateKind } from './naming';
import { resolveMongoOptions, type MongoSinkOptions, type ResolvedMongoOptions } from './options';

const DEFAULT_MAX_BSON = 16 * 1024 * 1024;
const NAMESPACE_EXISTS = 48;

interface Group {
  kind: TemplateKind;
  docs: Document[];
  /** Index of each document's record in the `write()` input. */
  idx: number[];
}

function timeField(kind: TemplateKind): string {
  return kind === 'telemetry' ? 'event_time' : 'frame_time';
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The owner's MongoDB as system of record: one document per event, `_id = event_id`, unordered bulk
 * inserts where duplicate keys count as success, so any redelivery stores nothing twice.
 */
export class MongoSink implements Sink {
  readonly name: string;
  readonly options: ResolvedMongoOptions;
  private client: MongoClient | undefined;
  private connecting: Promise<void> | undefined;
  private maxBsonObjectSize = DEFAULT_MAX_BSON;
  private capabilitiesChecked = false;
  private readonly collections = new Map<string, Promise<void>>();

  /** Validates `options` now; throws ConfigError naming the bad option. */
  constructor(options: MongoSinkOptions) {
    this.options = resolveMongoOptions(options);
    this.name = this.options.name;
  }

  connect(): Promise<void> {
    this.connecting ??= this.open().catch((err) => {
      this.connecting = undefined;
      throw err;
    });
    return this.connecting;
  }

  private async open(): Promise<void> {
    const o = this.options;
    const client = new MongoClient(o.url, {
      serverSelectionTimeoutMS: o.serverSelectionTimeoutMs,
      connectTimeoutMS: o.connectTimeoutMs,
      socketTimeoutMS: o.socketTimeoutMs,
      maxPoolSize: o.maxPoolSize,
      appName: `sluice-${o.name}`,
    });
    try {
      await client.connect();
      const hello = await client.db('admin').command({ hello: 1 });
      if (typeof hello['maxBsonObjectSize'] === 'number')
        this.maxBsonObjectSize = hello['maxBsonObjectSize'];
      if (!this.capabilitiesChecked) {
        await this.checkCapabilities(client.db(o.database));
        this.capabilitiesChecked = true;
      }
    } catch (err) {
      await client.close().catch(() => undefined);
      throw TlsConnectError.from(err, this.tlsPeer()) ?? err;
    }
    this.client = client;
  }

  /** The names of the TLS settings, for a failed handshake's {@link TlsConnectError}. */
  private tlsPeer(): TlsPeer {
    const { url, urlSetting } = this.options;
    const hosts = /^mongodb(?:\+srv)?:\/\/(?:[^@/]*@)?([^/?]+)/.exec(url)?.[1] ?? '?';
    const param = (name: string) =>
      [...new URLSearchParams(url.split('?')[1] ?? '')].find(
        ([k]) => k.toLowerCase() === name.toLowerCase(),
      )?.[1];
    return {
      peer: `MongoDB at ${hosts}`,
      ca: `tlsCAFile in ${urlSetting}`,
      caFile: param('tlsCAFile'),
      clientCert: `tlsCertificateKeyFile in ${urlSetting}`,
    };
  }

  /**
   * Refuses, at connect, modes the server cannot honour, by trying them on a throw-away collection:
   * silently ignoring a TTL or time-series request would break the owner's retention or layout.
   */
  private async checkCapabilities(db: Db): Promise<void> {
    const o = this.options;
    if (!o.timeseries && o.ttlDays === 0) return;
    const probe = `sluice_probe_${randomBytes(4).toString('hex')}`;
    const refused = (what: string, setting: string, err: unknown) => {
      if (!(err instanceof MongoServerError)) throw err;
      return new SinkUnsupportedError(
        `${what} are not supported by this server (${err.message}); unset ${setting} or use a server that has them (MongoDB >= 5.0)`,
      );
    };
    try {
      if (o.timeseries) {
        try {
          await db.createCollection(probe, {
            timeseries: { timeField: 'event_time', metaField: 'device_id', granularity: 'seconds' },
          });
        } catch (err) {
          throw refused('time-series collections', 'timeseries', err);
        }
      }
      if (o.ttlDays > 0) {
        try {
          await db
            .collection(`${probe}_ttl`)
            .createIndex({ event_time: 1 }, { expireAfterSeconds: 60, name: 'ttl_probe' });
        } catch (err) {
          throw refused('TTL indexes (expireAfterSeconds)', 'ttlDays', err);
        }
      }
    } finally {
      await db
        .collection(probe)
        .drop()
        .catch(() => undefined);
      await db
        .collection(`${probe}_ttl`)
        .drop()
        .catch(() => undefined);
    }
  }

  async close(deadline: number): Promise<void> {
    const client = this.client;
    const pending = this.connecting;
    this.client = undefined;
    this.connecting = undefined;
    this.collections.clear();
    if (!client) {
      await pending?.then(
        () => this.close(deadline),
        () => undefined,
      );
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      client.close().catch(() => undefined),
      new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
    ]);
    clearTimeout(timer);
  }

  async health(): Promise<SinkHealth> {
    const client = this.client;
    if (!client) return { ok: false, detail: 'not connected' };
    let timer: NodeJS.Timeout | undefined;
    try {
      const ok = await Promise.race([
        client
          .db('admin')
          .command({ ping: 1 })
          .then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 2_000))),
      ]);
      return ok ? { ok } : { ok, detail: 'ping timed out after 2 s' };
    } catch (err) {
      return { ok: false, detail: message(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  isRetriable(error: unknown): boolean {
    return isRetriableMongoError(error);
  }

  async write(records: ReadonlyArray<SinkRecord>): Promise<WriteResult> {
    await this.connect();
    const client = this.client;
    if (!client) throw new TransientWriteError('sink closed during write');
    const rejected: RejectedRecord[] = [];
    const groups = new Map<string, Group>();
    const now = new Date();
    records.forEach((r, index) => {
      try {
        const d = toDocument(r, now);
        const name = (
          d.kind === 'telemetry' ? this.options.telemetry : this.options.detection
        ).render(d.values);
        const size = BSON.calculateObjectSize(d.doc as unknown as Document);
        if (size > this.maxBsonObjectSize) {
          throw new DocumentEncodingError(
            `document of ${size} bytes exceeds the server's limit of ${this.maxBsonObjectSize} bytes`,
          );
        }
        let g = groups.get(name);
        if (!g) groups.set(name, (g = { kind: d.kind, docs: [], idx: [] }));
        g.docs.push(d.doc as unknown as Document);
        g.idx.push(index);
      } catch (err) {
        if (!(err instanceof RecordRejectedError)) throw err;
        rejected.push({ index, error: err });
      }
    });
    const db = client.db(this.options.database);
    await Promise.all([...groups].map(([name, g]) => this.insert(db, name, g, rejected, true)));
    return { rejected };
  }

  private ensureCollection(db: Db, name: string, kind: TemplateKind): Promise<void> {
    let p = this.collections.get(name);
    if (!p) {
      p = this.prepareCollection(db, name, kind).catch((err) => {
        this.collections.delete(name);
        throw err;
      });
      this.collections.set(name, p);
    }
    return p;
  }

  private async prepareCollection(db: Db, name: string, kind: TemplateKind): Promise<void> {
    const o = this.options;
    const field = timeField(kind);
    const ttlSeconds = o.ttlDays * 86_400;
    const coll = db.collection(name);
    if (o.timeseries && kind === 'telemetry') {
      try {
        await db.createCollection(name, {
          timeseries: { timeField: 'event_time', metaField: 'device_id', granularity: 'seconds' },
          ...(ttlSeconds > 0 ? { expireAfterSeconds: ttlSeconds } : {}),
        });
      } catch (err) {
        if (!(err instanceof MongoServerError && err.code === NAMESPACE_EXISTS)) throw err;
      }
      await coll.createIndex({ device_id: 1, event_time: 1 }, { name: 'device_time' });
      return;
    }
    await coll.createIndex({ device_id: 1, [field]: 1 }, { name: 'device_time' });
    if (ttlSeconds > 0)
      await coll.createIndex(
        { [field]: 1 },
        { name: `ttl_${field}`, expireAfterSeconds: ttlSeconds },
      );
  }

  private async insert(
    db: Db,
    name: string,
    g: Group,
    rejected: RejectedRecord[],
    firstTry: boolean,
  ): Promise<void> {
    await this.ensureCollection(db, name, g.kind);
    const w = this.options.writeConcern;
    try {
      await db.collection(name).insertMany(g.docs, {
        ordered: false,
        writeConcern: { w: w.w, journal: w.journal, wtimeoutMS: w.wtimeoutMS },
      });
    } catch (err) {
      if (err instanceof MongoBulkWriteError) return this.sortWriteErrors(err, g, rejected);
      if (firstTry && (err instanceof BSON.BSONError || err instanceof MongoInvalidArgumentError)) {
        // The driver refused the whole batch before sending it: find the documents it cannot encode.
        const keep: Group = { kind: g.kind, docs: [], idx: [] };
        g.docs.forEach((doc, j) => {
          try {
            BSON.serialize(doc);
            keep.docs.push(doc);
            keep.idx.push(g.idx[j]!);
          } catch (e) {
            rejected.push({
              index: g.idx[j]!,
              error: new DocumentEncodingError(`cannot encode the document: ${message(e)}`),
            });
          }
        });
        if (keep.docs.length === g.docs.length) throw err;
        if (keep.docs.length > 0) await this.insert(db, name, keep, rejected, false);
        return;
      }
      throw err;
    }
  }

  /** Unordered insert: every document without a write error is stored; sort the errors out. */
  private sortWriteErrors(err: MongoBulkWriteError, g: Group, rejected: RejectedRecord[]): void {
    const wce = err.result?.getWriteConcernError?.();
    if (wce)
      throw new TransientWriteError(`write concern not satisfied: ${wce.errmsg ?? 'unknown'}`, {
        cause: err,
      });
    const errors = err.writeErrors
      ? Array.isArray(err.writeErrors)
        ? err.writeErrors
        : [err.writeErrors]
      : [];
    if (errors.length === 0) throw err;
    let transient: { code: number; errmsg?: string | undefined } | undefined;
    for (const we of errors) {
      if (we.code === DUPLICATE_KEY) continue;
      const index = g.idx[we.index];
      if (index !== undefined && DOCUMENT_ERROR_CODES.has(we.code))
        rejected.push({
          index,
          error: new DocumentRejectedError(we.code, we.errmsg ?? 'no reason given'),
        });
      else transient ??= we;
    }
    if (transient)
      throw new TransientWriteError(
        `write error code ${transient.code}: ${transient.errmsg ?? 'no reason given'}`,
        { cause: err },
      );
  }
}

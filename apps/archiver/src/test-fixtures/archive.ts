// Shared setup of the archiver's integration tests: unique namespaces, the archiver as a real child
// process, events published as clean batches, and an independent reader of the archive (DuckDB).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { CONTENT_TYPES, encodeBatch, topology, type Event, type Topology } from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import {
  natsFixture,
  spawnService,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
} from '@sluice/testing';
import {
  FsStore,
  partitionKey,
  readBatches,
  S3Store,
  selectFiles,
  type ArchiveSelection,
  type ObjectStore,
} from '@sluice/archive';
import { s3ServiceEnv, seaweedfs, type S3Env } from '@sluice/testing';
import { leaseBucket } from '../lease';

export const ARCHIVER_MAIN = 'apps/archiver/src/main.ts';

/** A unique namespace whose streams (and the default durable's lease bucket) `nats` deletes on cleanup. */
export function newTopology(nats: NatsFixture, prefix: string): Topology {
  const t = topology(uniqueId(prefix));
  for (const s of Object.values(t.streams)) nats.track(s.name);
  trackLease(nats, t, 'archiver');
  return t;
}

/** Deletes the lease bucket of `durable` in `t`'s namespace on cleanup. */
export function trackLease(nats: NatsFixture, t: Topology, durable: string): string {
  return nats.track(`KV_${leaseBucket(t.namespace, durable)}`);
}

/** Publishes one clean EventBatch to `<ns>.telemetry.clean.<region>`. */
export async function publishClean(
  nats: NatsFixture,
  t: Topology,
  region: string,
  events: Event[],
  batchId = uniqueId('b'),
): Promise<void> {
  await publishDurable(nats.js, t.clean(region), encodeBatch({ batchId, events }), {
    msgId: batchId,
    contentType: CONTENT_TYPES.EVENT_BATCH,
  });
}

/** Waits until the durable has delivered and settled everything the stream holds. */
export async function settled(
  nats: NatsFixture,
  t: Topology,
  durable = 'archiver',
  timeoutMs = 90_000,
): Promise<void> {
  await waitFor(
    `${durable} settled`,
    async () => {
      const [c, s] = await Promise.all([
        nats.jsm.consumers.info(t.streams.clean.name, durable),
        nats.jsm.streams.info(t.streams.clean.name),
      ]);
      return (
        c.num_pending === 0 && c.num_ack_pending === 0 && c.delivered.stream_seq >= s.state.last_seq
      );
    },
    { timeoutMs, intervalMs: 200 },
  );
}

/** Archiver child processes of one test; {@link stopAll} kills what is left. */
export class Children {
  private readonly list: ChildService[] = [];

  async start(env: Record<string, string>): Promise<ChildService> {
    const c = spawnService(ARCHIVER_MAIN, {
      OTEL_SDK_DISABLED: 'true',
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      // A process started after one was killed takes over within seconds.
      ARCHIVER_LEASE_TTL: '3s',
      ...env,
    });
    this.list.push(c);
    await c.waitForLine(/archiver running/, 60_000);
    return c;
  }

  async kill(c: ChildService): Promise<void> {
    c.kill('SIGKILL');
    await c.exited;
  }

  async stopAll(): Promise<void> {
    for (const c of this.list.splice(0)) {
      c.kill('SIGKILL');
      await c.exited;
    }
  }
}

/** Copies every object of a store into a local folder (S3 → DuckDB without network extensions). */
export async function mirror(store: ObjectStore): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-archive-mirror-'));
  for (const o of await store.list('')) {
    const body = await store.get(o.key);
    if (!body) continue;
    const p = join(dir, ...o.key.split('/'));
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, body);
  }
  return dir;
}

type Plain = Record<string, unknown>;

function normalize(v: unknown): unknown {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) {
    // DuckDB gives a MAP as [{key, value}, ...].
    if (
      v.length > 0 &&
      v.every(
        (x) =>
          x && typeof x === 'object' && Object.keys(x).length === 2 && 'key' in x && 'value' in x,
      )
    ) {
      return Object.fromEntries(
        (v as Array<{ key: string; value: unknown }>).map((e) => [e.key, normalize(e.value)]),
      );
    }
    return v.map(normalize);
  }
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}

/** Runs SQL on an in-memory DuckDB and returns plain rows (times as epoch ms, maps as objects). */
export async function duck(sql: string): Promise<Plain[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const reader = await conn.runAndReadAll(sql);
    return reader.getRowObjectsJS().map((r) => normalize(r) as Plain);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/** Every row of a dataset under `root`, through DuckDB's Hive partitioning, with the file each came from. */
export async function readDataset(
  root: string,
  dataset: 'telemetry' | 'detections',
): Promise<Plain[]> {
  const glob = join(root, dataset, '**', '*.parquet');
  const rows = await duck(
    `SELECT *, filename FROM read_parquet('${glob}', hive_partitioning = true, hive_types_autocast = false, filename = true) ORDER BY event_id`,
  );
  // An empty MAP comes back as an empty list.
  for (const r of rows) if (Array.isArray(r.attributes)) r.attributes = {};
  return rows;
}

/** The row DuckDB should return for a telemetry event (field by field, partition columns included). */
export function expectedTelemetry(e: Event, seqOf?: (id: string) => number): Plain {
  const v = e.kind!.$case === 'telemetry' ? e.kind!.value : undefined;
  if (!v) throw new Error('not telemetry');
  return {
    event_id: v.eventId,
    device_id: v.deviceId,
    event_time: v.eventTime!.getTime(),
    sensor_type: v.sensorType,
    value: v.value,
    unit: v.unit,
    firmware_version: v.firmwareVersion,
    schema_version: v.schemaVersion,
    attributes: v.attributes,
    region: v.region,
    event_date: v.eventTime!.toISOString().slice(0, 10),
    ...(seqOf ? { stream_seq: seqOf(v.eventId) } : {}),
  };
}

export function expectedDetection(e: Event): Plain {
  const v = e.kind!.$case === 'detection' ? e.kind!.value : undefined;
  if (!v) throw new Error('not a detection');
  return {
    event_id: v.eventId,
    device_id: v.deviceId,
    stream_id: v.streamId,
    frame_time: v.frameTime!.getTime(),
    firmware_version: v.firmwareVersion,
    schema_version: v.schemaVersion,
    attributes: v.attributes,
    detections: v.detections.map((d) => ({
      object_id: d.objectId,
      class_id: d.classId,
      label: d.label,
      confidence: Math.fround(d.confidence),
      tracker_id: d.trackerId,
      bbox: d.bbox
        ? {
            left: Math.fround(d.bbox.left),
            top: Math.fround(d.bbox.top),
            width: Math.fround(d.bbox.width),
            height: Math.fround(d.bbox.height),
          }
        : null,
    })),
    region: v.region,
    event_date: v.frameTime!.toISOString().slice(0, 10),
  };
}

/** Picks `keys` of a row (DuckDB rows carry provenance and `filename` besides the event's fields). */
export function pick(row: Plain, keys: readonly string[]): Plain {
  return Object.fromEntries(keys.map((k) => [k, row[k]]));
}

/** One event as libs/archive's reader gives it back (replay's view), with where it was archived. */
export interface ArchivedEvent {
  /** The Parquet file's object key. */
  key: string;
  /** Stream sequence, batch id and position in the batch of the message that carried it. */
  seq: number;
  batchId: string;
  index: number;
  event: Event;
}

const EVERYTHING: ArchiveSelection = { from: 0, to: Date.UTC(10000, 0, 1) };

/**
 * Every event of every Parquet file the manifests list, per partition key, read by libs/archive's
 * reader (checksums checked): what a replay would re-publish. A file no manifest lists is not read.
 */
export async function readArchive(store: ObjectStore): Promise<Map<string, ArchivedEvent[]>> {
  const out = new Map<string, ArchivedEvent[]>();
  for (const f of await selectFiles(store, EVERYTHING)) {
    const k = partitionKey(f.partition);
    const list = out.get(k) ?? out.set(k, []).get(k)!;
    for (const b of (await readBatches(store, f, EVERYTHING)).batches)
      b.events.forEach((event, i) =>
        list.push({ key: f.key, seq: b.seq, batchId: b.batchId, index: b.indexes[i]!, event }),
      );
  }
  return out;
}

/** Event ids found in more than one row. */
export function duplicates(ids: readonly string[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const id of ids) (seen.has(id) ? twice : seen).add(id);
  return [...twice].sort();
}

/** A bucket name unique to one test (S3 allows lowercase letters, digits and dashes). */
export function testBucket(prefix: string): string {
  return `${prefix}-${uniqueId('b')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 30)}`;
}

/** Where one test's archive lives, on either store. */
export interface ArchiveTarget {
  dir: string;
  bucket: string;
  /** The archiver's store variables for this target. */
  storeEnv: Record<string, string>;
  /** The same store, opened by the test. */
  store: ObjectStore;
  /** What the archiver logs as its archive (`file://…` or `s3://…`). */
  location: string;
}

/**
 * One spec file's archive world, with its jest hooks registered: NATS, SeaweedFS started on first use
 * (the first start builds it, which filesystem cases need not wait for), the archiver processes
 * (stopped after each test) and the temporary folders (removed after the file).
 */
export function archiveSuite() {
  let nats: NatsFixture | undefined;
  let s3Env: S3Env | undefined;
  const s3 = () => (s3Env ??= seaweedfs());
  const children = new Children();
  const dirs: string[] = [];
  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterEach(async () => {
    await children.stopAll();
  });
  afterAll(async () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await nats?.cleanup();
  });
  return {
    get nats(): NatsFixture {
      if (!nats) throw new Error('archiveSuite: NATS is connected in beforeAll');
      return nats;
    },
    s3,
    children,
    /** Removes `dir` with the suite's other folders. */
    track(dir: string): string {
      dirs.push(dir);
      return dir;
    },
    target(kind: 'fs' | 's3', prefix: string): ArchiveTarget {
      const dir = mkdtempSync(join(tmpdir(), `sluice-${prefix}-`));
      dirs.push(dir);
      const bucket = testBucket(`sluice-${prefix}`);
      return {
        dir,
        bucket,
        storeEnv: kind === 'fs' ? { ARCHIVER_DIR: dir } : s3ServiceEnv(s3(), bucket),
        store:
          kind === 'fs'
            ? new FsStore({ root: dir })
            : new S3Store({ bucket, endpoint: s3().endpoint, forcePathStyle: true }),
        location: kind === 'fs' ? `file://${dir}` : `s3://${bucket}`,
      };
    },
  };
}

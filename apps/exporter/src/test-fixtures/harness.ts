// The exporter as a real child process against the real servers: a namespace of its own on the test
// NATS, a PostgreSQL schema, a MongoDB database and folders per test, a destinations file it can
// rewrite, and readers of what each destination holds.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureStream, publishDurable } from '@sluice/jetstream';
import { CONTENT_TYPES, encodeBatch, topology, type Event, type Topology } from '@sluice/contracts';
import {
  EXPORT_SCHEMA_VERSION,
  float32,
  type DetectionRecord,
  type ExportRecord,
} from '@sluice/sinks-core';
import { readExportFiles } from '@sluice/sinks-file/testing';
import { createMongoTestDatabase, type MongoTestDatabase } from '@sluice/sinks-mongodb/testing';
import { createPgTestSchema, type PgTestSchema } from '@sluice/sinks-postgres/testing';
import {
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
} from '@sluice/testing';
import { stringify } from 'yaml';

export const MAIN = 'apps/exporter/src/main.ts';

/** Settings every test destination gets: prefetched messages of a stopped process come back fast. */
export const FAST = {
  batch: { max_messages: 4, linger: '5ms' },
  retry: { ack_wait: '3s', budget: '500ms', initial: '50ms', max: '200ms' },
};

export interface ExporterHarness {
  ns: string;
  topo: Topology;
  root: string;
  configFile: string;
  pg: PgTestSchema;
  mongo: MongoTestDatabase;
  env: Record<string, string>;
  /** A folder for a file destination. */
  dir(name: string): string;
  /** Writes the destinations file atomically (temp + rename), as YAML. */
  writeConfig(doc: unknown): Promise<void>;
  /** Writes raw text as the destinations file (atomically). */
  writeText(text: string): Promise<void>;
  /** Starts an exporter process and waits until it serves. */
  start(extra?: Record<string, string>): Promise<ChildService>;
  /** Publishes one clean batch of `events` (unique message id). */
  publish(events: Event[], region?: string): Promise<void>;
  /** Every event id in a file destination's folder, one entry per line (duplicates show). */
  fileIds(name: string): Promise<string[]>;
  fileRecords(name: string): Promise<ExportRecord[]>;
  /** The documents of the MongoDB database, as export records. */
  mongoRecords(): Promise<ExportRecord[]>;
  /** The ops port of a started process (from its start line). */
  opsPort(p: ChildService): Promise<number>;
  cleanup(): Promise<void>;
}

/** The export record of a document the MongoDB sink stored (BSON dates, doubles, `_id`). */
export function recordOfDocument(doc: Record<string, unknown>): ExportRecord {
  const { _id, ingest: _ingest, event_time, frame_time, detections, ...rest } = doc;
  const iso = (d: unknown) => (d instanceof Date ? d.toISOString() : String(d));
  if (frame_time !== undefined) {
    return {
      export_schema_version: EXPORT_SCHEMA_VERSION,
      kind: 'detection',
      event_id: String(_id),
      ...(rest as object),
      frame_time: iso(frame_time),
      detections: (detections as DetectionRecord[]).map((d) => ({
        ...d,
        confidence: float32(d.confidence),
        bbox: d.bbox
          ? {
              left: float32(d.bbox.left),
              top: float32(d.bbox.top),
              width: float32(d.bbox.width),
              height: float32(d.bbox.height),
            }
          : null,
      })),
    } as ExportRecord;
  }
  return {
    export_schema_version: EXPORT_SCHEMA_VERSION,
    kind: 'telemetry',
    event_id: String(_id),
    ...(rest as object),
    event_time: iso(event_time),
  } as ExportRecord;
}

export async function exporterHarness(nats: NatsFixture): Promise<ExporterHarness> {
  const ns = uniqueId('exp');
  const topo = topology(ns);
  for (const s of [topo.streams.clean, topo.streams.dlq, topo.streams.replay]) nats.track(s.name);
  // Published to before an exporter runs (the exporter provisions it too, idempotently).
  await ensureStream(nats.jsm, topo.streams.clean);
  const root = await mkdtemp(join(tmpdir(), 'sluice-exporter-'));
  const configFile = join(root, 'exporter.yaml');
  const pg = await createPgTestSchema('exp');
  const mongo = await createMongoTestDatabase('exp');
  const env = {
    NATS_URL: testUrls.nats,
    SLUICE_NAMESPACE: ns,
    EXPORTER_CONFIG: configFile,
    EXPORTER_RELOAD_POLL: '200ms',
    EXPORTER_DRAIN_TIMEOUT: '5s',
    EXPORTER_START_TIMEOUT: '15s',
    OPS_PORT: '0',
    OPS_HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    OTEL_SDK_DISABLED: 'true',
  };
  const procs: ChildService[] = [];
  let n = 0;
  const writeText = async (text: string) => {
    const tmp = `${configFile}.${n++}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, configFile);
  };
  const dir = (name: string) => join(root, 'files', name);
  const h: ExporterHarness = {
    ns,
    topo,
    root,
    configFile,
    pg,
    mongo,
    env,
    dir,
    writeText,
    writeConfig: (doc) => writeText(stringify(doc)),
    async start(extra = {}) {
      const p = spawnService(MAIN, { ...env, ...extra });
      procs.push(p);
      await p.waitForLine(/exporter running/, 60_000);
      return p;
    },
    async publish(events, region = 'eu-west') {
      const id = uniqueId('b');
      await publishDurable(nats.js, topo.clean(region), encodeBatch({ batchId: id, events }), {
        msgId: id,
        contentType: CONTENT_TYPES.EVENT_BATCH,
      });
    },
    async fileRecords(name) {
      // A temp file may be finalised between the listing and the read: read until a stable view.
      for (let attempt = 0; ; attempt++) {
        try {
          return (await readExportFiles(dir(name))).flatMap((f) => f.records);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw err;
        }
      }
    },
    async fileIds(name) {
      return (await h.fileRecords(name)).map((r) => r.event_id);
    },
    async mongoRecords() {
      const out: ExportRecord[] = [];
      for (const c of await mongo.db.listCollections({}, { nameOnly: true }).toArray()) {
        if (c.name.startsWith('system.') || c.name.startsWith('sluice_probe_')) continue;
        for (const d of await mongo.db.collection(c.name).find({}).toArray())
          out.push(recordOfDocument(d as Record<string, unknown>));
      }
      return out;
    },
    async opsPort(p) {
      const line = await p.waitForLine(/exporter running/);
      return (JSON.parse(line) as { opsPort: number }).opsPort;
    },
    async cleanup() {
      for (const p of procs.splice(0)) {
        p.kill('SIGKILL');
        await p.exited;
      }
      await pg.drop();
      await mongo.drop();
      await rm(root, { recursive: true, force: true });
    },
  };
  return h;
}

/** Waits until `read()` holds every id of `expected` (returns what it read then). */
export function waitForIds(
  what: string,
  read: () => Promise<string[]>,
  expected: ReadonlySet<string>,
  timeoutMs = 60_000,
): Promise<string[]> {
  return waitFor(
    what,
    async () => {
      const ids = await read();
      const have = new Set(ids);
      for (const id of expected) if (!have.has(id)) return undefined;
      return ids;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/** How many entries of `ids` repeat an earlier one. */
export function duplicates(ids: string[]): number {
  return ids.length - new Set(ids).size;
}

/** Reads a metric's value from the Prometheus text of the ops server. */
export async function metric(port: number, name: string, labels = ''): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const [key, value] = line.split(' ');
    if (key === name || (key!.startsWith(`${name}{`) && key!.includes(labels)))
      return Number(value);
  }
  return undefined;
}

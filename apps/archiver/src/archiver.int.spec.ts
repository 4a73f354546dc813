import { HEADERS, type Event, type TelemetryEvent } from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import { testUrls, uniqueId } from '@sluice/testing';
import { manifestKey, parsePartition, readManifest, decodeJsonlGz } from '@sluice/archive';
import {
  archiveSuite,
  duck,
  expectedDetection,
  expectedTelemetry,
  mirror,
  newTopology,
  pick,
  publishClean,
  readDataset,
  settled,
} from './test-fixtures/archive';
import { sampleBatches } from './test-fixtures/events';
import { createHash } from 'node:crypto';

const TELEMETRY_KEYS = [
  'event_id',
  'device_id',
  'event_time',
  'sensor_type',
  'value',
  'unit',
  'firmware_version',
  'schema_version',
  'attributes',
  'region',
  'event_date',
];
const DETECTION_KEYS = [
  'event_id',
  'device_id',
  'stream_id',
  'frame_time',
  'firmware_version',
  'schema_version',
  'attributes',
  'detections',
  'region',
  'event_date',
];

describe('archiver: clean events to Parquet, read back by DuckDB', () => {
  const suite = archiveSuite();

  async function scenario(kind: 'fs' | 's3') {
    const { nats, children } = suite;
    const t = newTopology(nats, `arch${kind}`);
    const { dir, store, storeEnv, location } = suite.target(kind, 'archive');
    const env = {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: t.namespace,
      ARCHIVER_FILE_MAX_AGE: '300ms',
      ARCHIVER_FORMATS: 'parquet,jsonl.gz',
      ...storeEnv,
    };
    const child = await children.start(env);
    expect(await child.waitForLine(/archiving .* to /)).toContain(location);
    const batches = sampleBatches(uniqueId('ev'), 40, 25);
    for (const b of batches) await publishClean(nats, t, b.region, b.events);
    // Hostile input: not an EventBatch at all, and a batch with one event the archive cannot hold.
    await publishDurable(
      nats.js,
      t.clean('eu-west'),
      new TextEncoder().encode('{"not":"protobuf"}'),
      { msgId: uniqueId('junk'), contentType: 'application/json' },
    );
    const base = batches[1]!.events.find((e) => e.kind?.$case === 'telemetry')!.kind!
      .value as TelemetryEvent;
    const noTime: Event = {
      kind: {
        $case: 'telemetry',
        value: { ...base, eventId: uniqueId('notime'), eventTime: undefined },
      },
    };
    const good: Event = batches[2]!.events[0]!;
    const goodCopy: Event = JSON.parse(JSON.stringify(good), (k, v) =>
      k === 'eventTime' || k === 'frameTime' ? new Date(v) : v,
    );
    (goodCopy.kind!.value as { eventId: string }).eventId = uniqueId('ok');
    await publishClean(nats, t, batches[2]!.region, [noTime, goodCopy]);
    await settled(nats, t);
    const events = [...batches.flatMap((b) => b.events), goodCopy];
    return { t, dir, store, events, root: kind === 'fs' ? dir : await mirror(store), noTime };
  }

  it.each(['fs', 's3'] as const)(
    '%s: every event once, field by field; Hive partitions; ZSTD, sorted, statistics; manifests; JSONL.gz; bad input dead-lettered',
    async (kind) => {
      const { t, store, events, root, noTime } = await scenario(kind);
      if (kind === 's3') suite.track(root);

      const telemetry = events.filter((e) => e.kind!.$case === 'telemetry');
      const detections = events.filter((e) => e.kind!.$case === 'detection');
      const gotT = await readDataset(root, 'telemetry');
      const gotD = await readDataset(root, 'detections');
      expect(gotT.map((r) => pick(r, TELEMETRY_KEYS))).toEqual(
        telemetry
          .map((e) => expectedTelemetry(e))
          .sort((a, b) => ((a.event_id as string) < (b.event_id as string) ? -1 : 1)),
      );
      expect(gotD.map((r) => pick(r, DETECTION_KEYS))).toEqual(
        detections
          .map(expectedDetection)
          .sort((a, b) => ((a.event_id as string) < (b.event_id as string) ? -1 : 1)),
      );
      // Hive layout: the path names the partition of every row.
      for (const r of [...gotT, ...gotD])
        expect(r.filename as string).toContain(
          `/region=${r.region as string}/event_date=${r.event_date as string}/`,
        );

      // Inside each file rows are sorted by (device_id, event time); the files are ZSTD with statistics.
      const files = [...new Set(gotT.map((r) => r.filename as string))];
      expect(files.length).toBeGreaterThan(1);
      for (const f of files) {
        const order = await duck(`SELECT device_id, event_time FROM read_parquet('${f}')`);
        const sorted = [...order].sort((a, b) =>
          (a.device_id as string) < (b.device_id as string)
            ? -1
            : (a.device_id as string) > (b.device_id as string)
              ? 1
              : (a.event_time as number) - (b.event_time as number),
        );
        expect(order).toEqual(sorted);
        const meta = await duck(
          `SELECT DISTINCT compression, stats_min_value IS NOT NULL AS has_stats FROM parquet_metadata('${f}') WHERE path_in_schema = 'device_id'`,
        );
        expect(meta).toEqual([{ compression: 'ZSTD', has_stats: true }]);
      }

      // Manifests list exactly the files of their partition, with rows, times and checksums that hold.
      const objects = (await store.list('')).map((o) => o.key);
      const partitions = [
        ...new Set(
          objects
            .map((k) => parsePartition(k))
            .filter((p) => p !== undefined)
            .map((p) => JSON.stringify(p)),
        ),
      ].map((s) => JSON.parse(s));
      let manifestRows = 0;
      for (const p of partitions) {
        const { manifest } = await readManifest(store, p);
        const inFolder = objects
          .filter(
            (k) =>
              k.startsWith(manifestKey(p).replace('_manifest.json', '')) &&
              !k.endsWith('_manifest.json'),
          )
          .map((k) => k.split('/').pop());
        expect(manifest.files.map((f) => f.name).sort()).toEqual(inFolder.sort());
        for (const f of manifest.files) {
          const body = (await store.get(
            `${manifestKey(p).replace('/_manifest.json', '')}/${f.name}`,
          ))!;
          expect(createHash('sha256').update(body).digest('hex')).toBe(f.sha256);
          expect(body.length).toBe(f.bytes);
        }
        manifestRows += manifest.rows;
        expect(manifest.minEventTime! <= manifest.maxEventTime!).toBe(true);
      }
      expect(manifestRows).toBe(events.length);

      // The JSONL.gz copies hold the same events.
      const jsonlIds = (
        await Promise.all(
          objects
            .filter((k) => k.endsWith('.jsonl.gz'))
            .map(async (k) =>
              decodeJsonlGz((await store.get(k))!).map((r) => r.event_id as string),
            ),
        )
      ).flat();
      expect(jsonlIds.sort()).toEqual(events.map((e) => e.kind!.value.eventId).sort());

      // The junk message went to the DLQ whole; the event without a time alone, with a clear reason.
      const dead = await suite.nats.readAll(t.streams.dlq.name);
      const classes = dead.map((m) => m.headers!.get(HEADERS.DLQ_ERROR_CLASS)).sort();
      expect(classes).toEqual(['ArchiveRecordError', 'PoisonMessageError']);
      const record = dead.find(
        (m) => m.headers!.get(HEADERS.DLQ_ERROR_CLASS) === 'ArchiveRecordError',
      )!;
      expect(record.headers!.get(HEADERS.DLQ_ERROR)).toBe(
        `event ${noTime.kind!.value.eventId} has no event_time`,
      );
      await store.close();
    },
    45 * 60_000,
  );
});

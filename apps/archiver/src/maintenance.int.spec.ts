// Retention and compaction against the real filesystem and the real S3-compatible server, on an
// archive the real service wrote.
import {
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
} from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { ensureStream } from '@sluice/jetstream';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { testUrls, uniqueId } from '@sluice/testing';
import { compactPartition } from './compaction';
import {
  journalKey,
  manifestKey,
  type PartitionRef,
  readManifest,
  S3Store,
  type ObjectStore,
  listPartitions,
} from '@sluice/archive';
import { expirePartitions, lifecycleConfiguration } from './retention';
import {
  archiveSuite,
  duck,
  duplicates,
  mirror,
  newTopology,
  publishClean,
  settled,
} from './test-fixtures/archive';
import { sampleBatches } from './test-fixtures/events';

const DAY = 86_400_000;
const log = createLogger({
  service: 'archiver-test',
  level: 'silent',
  hashDeviceId: createDeviceHasher('archiver-test-key-0123'),
});

describe('archive retention and compaction', () => {
  const suite = archiveSuite();

  async function archive(kind: 'fs' | 's3', extra: Record<string, string>) {
    const t = newTopology(suite.nats, `maint${kind}`);
    await ensureStream(suite.nats.jsm, t.streams.clean);
    const { store, storeEnv, bucket } = suite.target(kind, 'maint');
    const env = {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: t.namespace,
      ARCHIVER_RETENTION_INTERVAL: '0',
      ARCHIVER_COMPACTION_INTERVAL: '0',
      ...storeEnv,
      ...extra,
    };
    return { t, env, store, bucket };
  }

  async function rowsOf(
    store: ObjectStore,
    ref: PartitionRef,
  ): Promise<Array<Record<string, unknown>>> {
    const root = await mirror(store);
    suite.track(root);
    const glob = join(root, manifestKey(ref).replace('/_manifest.json', ''), '*.parquet');
    return duck(
      `SELECT * EXCLUDE (attributes), map_keys(attributes) AS k, map_values(attributes) AS v FROM read_parquet('${glob}') ORDER BY event_id`,
    );
  }

  it.each(['fs', 's3'] as const)(
    '%s: retention removes only partitions whose whole day is past the window',
    async (kind) => {
      const { t, env, store } = await archive(kind, { ARCHIVER_FILE_MAX_AGE: '200ms' });
      const now = Date.UTC(2026, 11, 15, 12);
      const days = [45, 31, 30, 29, 1];
      await suite.children.start(env);
      for (const d of days) {
        const at = new Date(now - d * DAY - 3_600_000);
        const events = sampleBatches(uniqueId(`r${d}`), 1, 5)[0]!
          .events.filter((e) => e.kind!.$case === 'telemetry')
          .map(
            (e) =>
              ({
                kind: { ...e.kind!, value: { ...e.kind!.value, eventTime: at, region: 'eu-west' } },
              }) as typeof e,
          );
        await publishClean(suite.nats, t, 'eu-west', events);
      }
      await settled(suite.nats, t);
      const before = (await listPartitions(store)).map((p) => p.eventDate).sort();
      expect(before).toEqual([
        '2026-10-31',
        '2026-11-14',
        '2026-11-15',
        '2026-11-16',
        '2026-12-14',
      ]);
      const removed = await expirePartitions(store, { retentionMs: 30 * DAY, now, log });
      // 2026-11-15 ends at 11-16 00:00, less than 30 days before 12-15 12:00: it stays.
      expect(removed.map((p) => p.eventDate).sort()).toEqual(['2026-10-31', '2026-11-14']);
      expect((await listPartitions(store)).map((p) => p.eventDate).sort()).toEqual([
        '2026-11-15',
        '2026-11-16',
        '2026-12-14',
      ]);
      expect((await store.list('telemetry/region=eu-west/event_date=2026-10-31/')).length).toBe(0);
      expect(
        (await store.list('telemetry/region=eu-west/event_date=2026-11-15/')).length,
      ).toBeGreaterThan(1);
      // The journal is never touched by retention.
      expect(await store.get(journalKey('archiver'))).toBeDefined();
      await store.close();
    },
    45 * 60_000,
  );

  it(
    's3: the generated lifecycle rule is accepted by the server and reads back',
    async () => {
      const { store, bucket } = await archive('s3', {});
      const s = store as S3Store;
      await s.ensureBucket().catch(() => undefined);
      await new S3Store({
        bucket,
        endpoint: suite.s3().endpoint,
        forcePathStyle: true,
        createBucket: true,
      }).ensureBucket();
      const config = lifecycleConfiguration('', 30 * DAY);
      await s.client.send(
        new PutBucketLifecycleConfigurationCommand({
          Bucket: bucket,
          LifecycleConfiguration: config,
        }),
      );
      const got = await s.client.send(
        new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }),
      );
      expect(
        (got.Rules ?? []).map((r) => [r.ID, r.Filter?.Prefix, r.Expiration?.Days]).sort(),
      ).toEqual([
        ['sluice-archive-detections-retention', 'detections/', 31],
        ['sluice-archive-telemetry-retention', 'telemetry/', 31],
      ]);
      await store.close();
    },
    45 * 60_000,
  );

  it.each(['fs', 's3'] as const)(
    '%s: compaction merges small files with the row set unchanged, is idempotent and safe while the archiver writes',
    async (kind) => {
      // Small segments: many small files in the same partition.
      const { t, env, store } = await archive(kind, {
        ARCHIVER_FILE_MAX_AGE: '100ms',
        ARCHIVER_BATCH_MESSAGES: '1',
        ARCHIVER_BATCH_CONCURRENCY: '1',
      });
      const base = Date.UTC(2026, 10, 3, 1);
      const batches = sampleBatches(uniqueId('cp'), 30, 10, base).map((b) => ({
        ...b,
        region: 'eu-west',
        events: b.events
          .filter((e) => e.kind!.$case === 'telemetry')
          .map(
            (e) =>
              ({
                kind: {
                  ...e.kind!,
                  value: {
                    ...e.kind!.value,
                    region: 'eu-west',
                    eventTime: new Date(
                      base + Number(e.kind!.value.eventId.split('-').pop()) * 1000,
                    ),
                  },
                },
              }) as typeof e,
          ),
      }));
      await suite.children.start(env);
      for (const b of batches.slice(0, 20)) await publishClean(suite.nats, t, b.region, b.events);
      await settled(suite.nats, t);
      const ref: PartitionRef = {
        dataset: 'telemetry',
        region: 'eu-west',
        eventDate: '2026-11-03',
      };
      const before = await readManifest(store, ref);
      expect(before.manifest.files.length).toBeGreaterThan(3);
      const rowsBefore = await rowsOf(store, ref);

      // Compaction while the archiver keeps writing into the same partition.
      const writing = (async () => {
        for (const b of batches.slice(20)) await publishClean(suite.nats, t, b.region, b.events);
      })();
      const result = await compactPartition(store, ref, {
        smallFileBytes: 1 << 30,
        targetBytes: 1 << 30,
        log,
      });
      await writing;
      await settled(suite.nats, t);
      expect(result.merged.length).toBeGreaterThan(1);
      const after = await readManifest(store, ref);
      // The manifest lists exactly the objects in the folder, and they hold every event once.
      const folder = (await store.list(`${manifestKey(ref).replace('_manifest.json', '')}`))
        .map((o) => o.key.split('/').pop()!)
        .filter((n) => n !== '_manifest.json');
      expect(after.manifest.files.map((f) => f.name).sort()).toEqual(folder.sort());
      const all = await rowsOf(store, ref);
      expect(duplicates(all.map((r) => r.event_id as string))).toEqual([]);
      const expected = batches.flatMap((b) => b.events.map((e) => e.kind!.value.eventId)).sort();
      expect(all.map((r) => r.event_id as string).sort()).toEqual(expected);
      // The rows compacted are the rows that were there, column by column.
      const ids = new Set(rowsBefore.map((r) => r.event_id));
      expect(all.filter((r) => ids.has(r.event_id))).toEqual(rowsBefore);
      expect(after.manifest.rows).toBe(expected.length);

      // Idempotent: compacting what is left merges the new small files at most once; a third pass is a no-op.
      await compactPartition(store, ref, { smallFileBytes: 1 << 30, targetBytes: 1 << 30, log });
      const third = await compactPartition(store, ref, {
        smallFileBytes: 1 << 30,
        targetBytes: 1 << 30,
        log,
      });
      expect(third.merged).toEqual([]);
      expect((await rowsOf(store, ref)).map((r) => r.event_id as string).sort()).toEqual(expected);
      await store.close();
    },
    45 * 60_000,
  );
});

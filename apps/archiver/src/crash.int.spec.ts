// SIGKILL at each point of a segment commit, then a restart that cuts batches differently: nothing
// is lost and no event_id appears twice in any file of the archive (read as a glob, not through the
// manifests, so an orphaned file would count).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureStream } from '@sluice/jetstream';
import { natsFixture, testUrls, uniqueId, type NatsFixture } from '@sluice/testing';
import { FAILPOINTS } from './archiver';
import { FsStore, S3Store, type ObjectStore } from './store';
import {
  Children,
  duplicates,
  mirror,
  newTopology,
  publishClean,
  readDataset,
  settled,
} from './test-fixtures/archive';
import { sampleBatches } from './test-fixtures/events';
import { s3ServiceEnv, seaweedfs, type S3Env } from './test-fixtures/seaweedfs';

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

describe('archiver killed during a commit', () => {
  let nats: NatsFixture;
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
    await nats.cleanup();
  });

  const cases = (['fs', 's3'] as const).flatMap((store) =>
    FAILPOINTS.map((point) => [store, point] as const),
  );

  it.each(cases)(
    '%s, killed at %s: restart archives every event exactly once',
    async (kind, point) => {
      const t = newTopology(nats, `crash${kind}`);
      const dir = mkdtempSync(join(tmpdir(), 'sluice-archive-crash-'));
      dirs.push(dir);
      const bucket = `sluice-crash-${uniqueId('b')
        .toLowerCase()
        .replace(/[^a-z0-9]/g, '')
        .slice(0, 30)}`;
      const env = {
        NATS_URL: testUrls.nats,
        SLUICE_NAMESPACE: t.namespace,
        ARCHIVER_FILE_MAX_AGE: '400ms',
        // Messages the killed process held come back soon.
        ARCHIVER_ACK_WAIT: '3s',
        ...(kind === 'fs' ? { ARCHIVER_DIR: dir } : s3ServiceEnv(s3(), bucket)),
      };
      const store: ObjectStore =
        kind === 'fs'
          ? new FsStore({ root: dir })
          : new S3Store({ bucket, endpoint: s3().endpoint, forcePathStyle: true });
      await ensureStream(nats.jsm, t.streams.clean);
      const batches = sampleBatches(uniqueId('c'), 60, 20);
      for (const b of batches.slice(0, 40)) await publishClean(nats, t, b.region, b.events);

      const first = await children.start({
        ...env,
        ARCHIVER_FAILPOINT: point,
        ARCHIVER_BATCH_MESSAGES: '7',
      });
      await first.waitForLine(new RegExp(`failpoint ${point} reached`), 60_000);
      await children.kill(first);
      if (kind === 'fs' && point === 'during-upload') {
        // Really killed mid-write: a partial temp file, no finished object under its name.
        expect(walk(dir).some((p) => /\/\.part-.*\.tmp-/.test(p))).toBe(true);
      }
      if (point === 'after-upload' || point === 'before-ack') {
        // The files were durable and the messages unacknowledged: a naive restart would duplicate them.
        expect((await store.list('telemetry/')).some((o) => o.key.endsWith('.parquet'))).toBe(true);
      }

      for (const b of batches.slice(40)) await publishClean(nats, t, b.region, b.events);
      // Batches cut differently after the restart: other messages share a segment than before.
      const second = await children.start({ ...env, ARCHIVER_BATCH_MESSAGES: '3' });
      await settled(nats, t);
      if (point !== 'before-ack')
        expect(second.lines.some((l) => l.includes('undid a segment commit'))).toBe(true);

      const root = kind === 'fs' ? dir : await mirror(store);
      if (kind === 's3') dirs.push(root);
      const rows = [
        ...(await readDataset(root, 'telemetry')),
        ...(await readDataset(root, 'detections')),
      ];
      const ids = rows.map((r) => r.event_id as string);
      expect(duplicates(ids)).toEqual([]);
      expect(ids.sort()).toEqual(
        batches.flatMap((b) => b.events.map((e) => e.kind!.value.eventId)).sort(),
      );
      await store.close();
    },
    45 * 60_000,
  );
});

// SIGKILL at each point of a segment commit, then a restart that cuts batches differently: nothing
// is lost and no event_id appears twice in any file of the archive (read as a glob, not through the
// manifests, so an orphaned file would count).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureStream } from '@sluice/jetstream';
import { testUrls, uniqueId } from '@sluice/testing';
import { FAILPOINTS } from './archiver';
import {
  archiveSuite,
  duplicates,
  mirror,
  newTopology,
  publishClean,
  readDataset,
  settled,
} from './test-fixtures/archive';
import { sampleBatches } from './test-fixtures/events';

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

describe('archiver killed during a commit', () => {
  const suite = archiveSuite();

  const cases = (['fs', 's3'] as const).flatMap((store) =>
    FAILPOINTS.map((point) => [store, point] as const),
  );

  it.each(cases)(
    '%s, killed at %s: restart archives every event exactly once',
    async (kind, point) => {
      const t = newTopology(suite.nats, `crash${kind}`);
      const { dir, store, storeEnv } = suite.target(kind, 'crash');
      const env = {
        NATS_URL: testUrls.nats,
        SLUICE_NAMESPACE: t.namespace,
        ARCHIVER_FILE_MAX_AGE: '400ms',
        // Messages the killed process held come back soon.
        ARCHIVER_ACK_WAIT: '3s',
        ...storeEnv,
      };
      await ensureStream(suite.nats.jsm, t.streams.clean);
      const batches = sampleBatches(uniqueId('c'), 60, 20);
      for (const b of batches.slice(0, 40)) await publishClean(suite.nats, t, b.region, b.events);

      const first = await suite.children.start({
        ...env,
        ARCHIVER_FAILPOINT: point,
        ARCHIVER_BATCH_MESSAGES: '7',
      });
      await first.waitForLine(new RegExp(`failpoint ${point} reached`), 60_000);
      await suite.children.kill(first);
      if (kind === 'fs' && point === 'during-upload') {
        // Really killed mid-write: a partial temp file, no finished object under its name.
        expect(walk(dir).some((p) => /\/\.part-.*\.tmp-/.test(p))).toBe(true);
      }
      if (point === 'after-upload' || point === 'before-ack') {
        // The files were durable and the messages unacknowledged: a naive restart would duplicate them.
        expect((await store.list('telemetry/')).some((o) => o.key.endsWith('.parquet'))).toBe(true);
      }

      for (const b of batches.slice(40)) await publishClean(suite.nats, t, b.region, b.events);
      // Batches cut differently after the restart: other messages share a segment than before.
      const second = await suite.children.start({ ...env, ARCHIVER_BATCH_MESSAGES: '3' });
      await settled(suite.nats, t);
      if (point !== 'before-ack')
        expect(second.lines.some((l) => l.includes('undid a segment commit'))).toBe(true);

      const root = kind === 'fs' ? dir : await mirror(store);
      if (kind === 's3') suite.track(root);
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

// The S3 store goes down (SIGKILL of a private SeaweedFS) while events keep arriving, then comes back:
// the archiver holds its commit, then archives everything exactly once.
import { ensureStream } from '@sluice/jetstream';
import { natsFixture, testUrls, uniqueId, type NatsFixture } from '@sluice/testing';
import { S3Store } from '@sluice/archive';
import {
  Children,
  duplicates,
  mirror,
  newTopology,
  publishClean,
  readDataset,
  settled,
  testBucket,
} from './test-fixtures/archive';
import { sampleBatches } from './test-fixtures/events';
import { privateSeaweedfs, s3ServiceEnv, seaweedfs, type PrivateSeaweedfs } from '@sluice/testing';
import { rmSync } from 'node:fs';

describe('archiver with the S3 store down, then back', () => {
  let nats: NatsFixture;
  let server: PrivateSeaweedfs;
  const children = new Children();

  beforeAll(async () => {
    nats = await natsFixture();
    server = await privateSeaweedfs();
    await server.start();
  }, 45 * 60_000);
  afterAll(async () => {
    await children.stopAll();
    await server.destroy();
    await nats.cleanup();
  });

  it(
    'holds the commit through the outage and loses nothing, duplicates nothing',
    async () => {
      const t = newTopology(nats, 'outage');
      await ensureStream(nats.jsm, t.streams.clean);
      const bucket = testBucket('sluice-outage');
      const env = {
        NATS_URL: testUrls.nats,
        SLUICE_NAMESPACE: t.namespace,
        ARCHIVER_FILE_MAX_AGE: '300ms',
        ARCHIVER_S3_REQUEST_TIMEOUT: '2s',
        ...s3ServiceEnv({ ...seaweedfs(), endpoint: server.endpoint }, bucket),
      };
      const batches = sampleBatches(uniqueId('o'), 30, 10);
      const svc = await children.start(env);
      for (const b of batches.slice(0, 10)) await publishClean(nats, t, b.region, b.events);
      await settled(nats, t);

      await server.stop();
      for (const b of batches.slice(10)) await publishClean(nats, t, b.region, b.events);
      await svc.waitForLine(/store_down|store down|outage|unavailable/i, 60_000);
      await server.start();
      await settled(nats, t, 'archiver', 180_000);

      const store = new S3Store({ bucket, endpoint: server.endpoint, forcePathStyle: true });
      const root = await mirror(store);
      const ids = [
        ...(await readDataset(root, 'telemetry')),
        ...(await readDataset(root, 'detections')),
      ].map((r) => r.event_id as string);
      expect(duplicates(ids)).toEqual([]);
      expect(ids.sort()).toEqual(
        batches.flatMap((b) => b.events.map((e) => e.kind!.value.eventId)).sort(),
      );
      await store.close();
      rmSync(root, { recursive: true, force: true });
    },
    45 * 60_000,
  );
});

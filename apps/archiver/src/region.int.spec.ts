// ARCHIVER_REGION: two archivers with their own durables and regions share one archive. Each
// consumes only its region's clean subject (the durable's one filter subject), and together they
// archive every event once.
import { ensureStream } from '@sluice/jetstream';
import { testUrls, uniqueId } from '@sluice/testing';
import {
  archiveSuite,
  duplicates,
  newTopology,
  publishClean,
  readArchive,
  settled,
  trackLease,
} from './test-fixtures/archive';
import { sampleBatches } from './test-fixtures/events';

describe('archiver: one region per durable (ARCHIVER_REGION)', () => {
  const suite = archiveSuite();

  it('each archives only its region; together every event once', async () => {
    const { nats, children } = suite;
    const t = newTopology(nats, 'aregion');
    for (const d of ['archiver-eu', 'archiver-us']) trackLease(nats, t, d);
    const { store, storeEnv } = suite.target('fs', 'region');
    await ensureStream(nats.jsm, t.streams.clean);
    const env = {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: t.namespace,
      ARCHIVER_FILE_MAX_AGE: '300ms',
      ...storeEnv,
    };
    const batches = sampleBatches(uniqueId('r'), 30, 10);
    for (const b of batches) await publishClean(nats, t, b.region, b.events);
    const idsOf = (region?: string) =>
      batches
        .filter((b) => region === undefined || b.region === region)
        .flatMap((b) => b.events.map((e) => e.kind!.value.eventId))
        .sort();
    const archived = async () =>
      [...(await readArchive(store)).values()].flat().map((r) => r.event.kind!.value.eventId);

    await children.start({ ...env, ARCHIVER_DURABLE: 'archiver-eu', ARCHIVER_REGION: 'eu-west' });
    await settled(nats, t, 'archiver-eu');
    const eu = await nats.jsm.consumers.info(t.streams.clean.name, 'archiver-eu');
    expect(eu.config.filter_subject).toBe(t.clean('eu-west'));
    expect(eu.delivered.consumer_seq).toBe(batches.filter((b) => b.region === 'eu-west').length);
    expect((await archived()).sort()).toEqual(idsOf('eu-west'));

    await children.start({ ...env, ARCHIVER_DURABLE: 'archiver-us', ARCHIVER_REGION: 'us-east' });
    await settled(nats, t, 'archiver-us');
    const ids = await archived();
    expect(duplicates(ids)).toEqual([]);
    expect(ids.sort()).toEqual(idsOf());
    await store.close();
  }, 300_000);
});

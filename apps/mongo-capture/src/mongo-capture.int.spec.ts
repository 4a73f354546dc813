import { ensureStream, publishDurable } from '@sluice/jetstream';
import { CONTENT_TYPES, HEADERS, encodeBatch, topology, type Event } from '@sluice/contracts';
import { telemetryEvent, detectionEvent } from '@sluice/sinks-core/testing';
import {
  createMongoTestDatabase,
  mongoTestUrl,
  type MongoTestDatabase,
} from '@sluice/sinks-mongodb/testing';
import {
  natsFixture,
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
} from '@sluice/testing';

const MAIN = 'apps/mongo-capture/src/main.ts';

async function crash(svc: ChildService): Promise<void> {
  svc.kill('SIGKILL');
  expect(await svc.exited).toBe('SIGKILL');
}

describe('mongo-capture process', () => {
  let nats: NatsFixture;
  let mdb: MongoTestDatabase;
  const procs: ChildService[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
  });
  beforeEach(async () => {
    mdb = await createMongoTestDatabase('mcap');
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) await crash(p).catch(() => undefined);
    await mdb.drop();
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  function setup() {
    const ns = uniqueId('mcap');
    const topo = topology(ns);
    nats.track(topo.streams.clean.name);
    nats.track(topo.streams.dlq.name);
    nats.track(topo.streams.replay.name);
    const env = {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      MONGO_URL: mongoTestUrl(),
      MONGO_DATABASE: mdb.name,
      MONGO_WRITE_CONCERN: '1',
      MONGO_CAPTURE_BATCH_MESSAGES: '2',
      MONGO_CAPTURE_LINGER: '0',
      // Messages the killed process held come back quickly.
      MONGO_CAPTURE_ACK_WAIT: '3s',
      OPS_PORT: '0',
      LOG_LEVEL: 'info',
    };
    const start = async () => {
      const p = spawnService(MAIN, env);
      procs.push(p);
      await p.waitForLine(/mongo-capture running/, 30_000);
      return p;
    };
    const settled = () =>
      waitFor(
        'consumer settled',
        async () => {
          const info = await nats.jsm.consumers.info(topo.streams.clean.name, 'mongo-capture');
          return info.num_pending === 0 && info.num_ack_pending === 0;
        },
        { timeoutMs: 60_000 },
      );
    return { topo, env, start, settled };
  }

  it('killed mid-batch and restarted: every event stored exactly once; redelivery and garbage change nothing', async () => {
    const { topo, start, settled } = setup();
    await ensureStream(nats.jsm, topo.streams.clean);
    const batches: Event[][] = [];
    for (let b = 0; b < 200; b++) {
      batches.push(
        Array.from({ length: 25 }, (_, i) =>
          i === 0 && b % 10 === 0
            ? detectionEvent(`e-${b}-${i}`)
            : telemetryEvent(`e-${b}-${i}`, { deviceId: `dev-${i % 5}` }),
        ),
      );
    }
    const expected = batches
      .flat()
      .map((e) => e.kind!.value.eventId)
      .sort();
    const publish = (events: Event[], msgId: string) =>
      publishDurable(nats.js, topo.clean('eu-west'), encodeBatch({ batchId: msgId, events }), {
        msgId,
        contentType: CONTENT_TYPES.EVENT_BATCH,
      });
    for (let b = 0; b < batches.length; b++) {
      await publish(batches[b]!, `raw:${topo.streams.clean.name}:${b}`);
      if (b === 100) {
        // Hostile input in the middle: not an EventBatch at all.
        await publishDurable(
          nats.js,
          topo.clean('eu-west'),
          new TextEncoder().encode('{"not":"protobuf"}'),
          { msgId: uniqueId('junk'), contentType: 'application/json' },
        );
      }
    }

    const first = await start();
    const atKill = await waitFor(
      'some documents written',
      async () => {
        const n = (await mdb.allIds()).length;
        return n > 0 ? n : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 10 },
    );
    await crash(first);
    expect(atKill).toBeLessThan(expected.length);

    await start();
    await waitFor(
      'all documents after the restart',
      async () => (await mdb.allIds()).length >= expected.length,
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    await settled();
    const ids = (await mdb.allIds()).sort();
    expect(ids).toHaveLength(expected.length);
    expect(ids).toEqual(expected);

    // The garbage message went to the DLQ whole, with the reason.
    const dead = await nats.readAll(topo.streams.dlq.name);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.headers!.get(HEADERS.DLQ_ERROR_CLASS)).toBe('PoisonMessageError');

    // A redelivered batch (same payload, published again after the duplicate window) adds nothing.
    for (let b = 0; b < 5; b++) await publish(batches[b]!, uniqueId('again'));
    await settled();
    expect((await mdb.allIds()).length).toBe(expected.length);
  });
});

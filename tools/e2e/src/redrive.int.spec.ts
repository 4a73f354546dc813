// `sluice dlq redrive` end to end: mongo-capture dead-letters the events its configuration cannot
// store; after the fix (a restart with another collection template) exactly the selected dead letters
// are processed again, by mongo-capture only, and stored as the first attempt would have stored them.
import { CONTENT_TYPES, HEADERS, encodeBatch, topology } from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import { telemetryEvent } from '@sluice/sinks-core/testing';
import {
  createMongoTestDatabase,
  mongoTestUrl,
  type MongoTestDatabase,
} from '@sluice/sinks-mongodb/testing';
import { natsFixture, testUrls, uniqueId, waitFor, type NatsFixture } from '@sluice/testing';
import { runCli, startService, type Service } from './processes';

describe('sluice dlq redrive', () => {
  let nats: NatsFixture;
  let db: MongoTestDatabase;
  const services: Service[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
    db = await createMongoTestDatabase('redrive');
  });
  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await db.drop();
    await nats.cleanup();
  });

  it('re-processes exactly the selected dead letters after the fix', async () => {
    const ns = uniqueId('rdv');
    const topo = topology(ns);
    for (const s of Object.values(topo.streams)) nats.track(s.name);
    const env = {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      OPS_PORT: '0',
      MONGO_URL: mongoTestUrl(),
      MONGO_DATABASE: db.name,
      MONGO_WRITE_CONCERN: '1',
    };
    const capture = async (template: string) => {
      const s = startService('mongo-capture', { ...env, MONGO_TELEMETRY_COLLECTION: template });
      services.push(s);
      await s.waitForLog('mongo-capture running', 60_000);
      return s;
    };
    // A template the owner got wrong: a sensor type with a dot cannot name a collection.
    const wrong = await capture('telemetry_{sensor_type}');
    const events = [
      telemetryEvent('ok-1', { sensorType: 'speed' }),
      telemetryEvent('bad-1', { sensorType: 'engine.temp', value: 81 }),
      telemetryEvent('ok-2', { sensorType: 'speed' }),
      telemetryEvent('bad-2', { sensorType: 'engine.temp', value: 82 }),
      telemetryEvent('bad-3', { sensorType: 'engine.temp', value: 83 }),
    ];
    const ack = await publishDurable(
      nats.js,
      topo.clean('eu-west'),
      encodeBatch({ batchId: 'batch-1', events }),
      { msgId: 'batch-1', contentType: CONTENT_TYPES.EVENT_BATCH },
    );
    await waitFor(
      'three dead letters',
      async () =>
        (await nats.jsm.streams.info(topo.streams.dlq.name).catch(() => undefined))?.state
          .messages === 3,
      { timeoutMs: 60_000 },
    );
    expect((await db.allIds()).sort()).toEqual(['ok-1', 'ok-2']);
    const letters: Array<{ seq: number; id: string }> = [];
    for (let seq = 1; seq <= 3; seq++) {
      const m = await nats.jsm.streams.getMessage(topo.streams.dlq.name, { seq });
      letters.push({ seq, id: m!.header.get('Sluice-Dlq-Event-Id') });
    }
    expect(letters.map((l) => l.id).sort()).toEqual(['bad-1', 'bad-2', 'bad-3']);

    // The fix, then the redrive of two of the three.
    await wrong.stop();
    await capture('telemetry_{region}');
    const chosen = letters.filter((l) => l.id !== 'bad-2');
    const run = await runCli(
      ['dlq', 'redrive', '--seq', chosen.map((l) => l.seq).join(','), '--json'],
      { NATS_URL: testUrls.nats, SLUICE_NAMESPACE: ns },
    );
    if (run.code !== 0) throw new Error(`redrive exited ${run.code}: ${run.stderr}`);
    expect(JSON.parse(run.stdout)).toMatchObject({
      selected: 2,
      sent: 2,
      deleted: 2,
    });

    await waitFor('redriven events stored', async () => (await db.allIds()).length === 4, {
      timeoutMs: 60_000,
    });
    expect((await db.allIds()).sort()).toEqual(['bad-1', 'bad-3', 'ok-1', 'ok-2']);
    // Stored under their first provenance: the clean batch and each event's place in it.
    const docs = await db.db
      .collection('telemetry_eu-west')
      .find({ _id: { $in: ['bad-1', 'bad-3'] } as never })
      .sort({ _id: 1 })
      .toArray();
    expect(docs.map((d) => [d._id, d['ingest']['seq'], d['ingest']['index'], d['value']])).toEqual([
      ['bad-1', ack.seq, 1, 81],
      ['bad-3', ack.seq, 4, 83],
    ]);
    expect(docs.every((d) => d['ingest']['stream'] === topo.streams.clean.name)).toBe(true);
    // The one not chosen is still dead, and only it.
    const dlq = await nats.jsm.streams.info(topo.streams.dlq.name);
    expect(dlq.state.messages).toBe(1);
    const left = await nats.jsm.streams.getMessage(topo.streams.dlq.name, {
      seq: letters.find((l) => l.id === 'bad-2')!.seq,
    });
    expect(left!.header.get(HEADERS.DLQ_SERVICE)).toBe('mongo-capture');
    await waitFor('nothing pending', async () => {
      const c = await nats.jsm.consumers.info(topo.streams.replay.name, 'mongo-capture-replay');
      return c.num_pending === 0 && c.num_ack_pending === 0;
    });
  }, 180_000);
});

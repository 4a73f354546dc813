// Three mongo-capture processes on one durable consumer (the platform's way to scale it), against
// the real NATS and the MongoDB-compatible server on 127.0.0.1. The same clean batches go through one
// replica into one database and through three into another while one of the three is SIGKILLed
// mid-run: every captured document must be the same in both, each event stored once.
import { isDeepStrictEqual } from 'node:util';
import { ensureStream, publishDurable } from '@sluice/jetstream';
import { CONTENT_TYPES, encodeBatch, topology, type Event, type Topology } from '@sluice/contracts';
import { METRICS } from '@sluice/observability';
import { detectionEvent, telemetryEvent } from '@sluice/sinks-core/testing';
import {
  createMongoTestDatabase,
  mongoTestUrl,
  type MongoTestDatabase,
} from '@sluice/sinks-mongodb/testing';
import {
  natsFixture,
  ReplicaSet,
  rng,
  testUrls,
  uniqueId,
  waitFor,
  type NatsFixture,
  type Replica,
} from '@sluice/testing';
import type { Document } from 'mongodb';

const MAIN = 'apps/mongo-capture/src/main.ts';
const DURABLE = 'mongo-capture';

/**
 * 200 clean batches of 25 events: telemetry of 2 regions, 6 devices and 2 sensors (so 4 telemetry
 * collections), and a detection in every tenth batch.
 */
function input(): Array<{ id: string; region: string; events: Event[] }> {
  const rand = rng(19);
  const t0 = Date.UTC(2026, 10, 1, 12, 0, 0);
  return Array.from({ length: 200 }, (_, b) => {
    const region = b % 2 ? 'eu-west' : 'us-east';
    const events = Array.from({ length: 25 }, (_, i) =>
      i === 0 && b % 10 === 0
        ? detectionEvent(`e-${b}-${i}`, { region, time: new Date(t0 + b * 1_000) })
        : telemetryEvent(`e-${b}-${i}`, {
            region,
            deviceId: `dev-${Math.floor(rand() * 6)}`,
            sensorType: rand() < 0.5 ? 'engine_temp' : 'oil_pressure',
            time: new Date(t0 + b * 1_000 + i * 10),
            value: Math.round(rand() * 10_000) / 100,
            attributes: { site: `plant-${b % 3}` },
          }),
    );
    return { id: `raw:CLEAN:${b}`, region, events };
  });
}

/**
 * Every document of every collection, as `<collection>/<_id>` → document. `ingest.published_at`
 * (when JetStream stored the clean batch) and `ingest.captured_at` (when a replica built the
 * document) are left out: they are wall-clock times of each run. `ingest.stream` and `ingest.subject`
 * are kept with the run's namespace replaced, so the provenance (stream, subject, sequence, index,
 * batch id) is compared too.
 */
async function documents(mdb: MongoTestDatabase, t: Topology): Promise<Map<string, Document>> {
  const out = new Map<string, Document>();
  const names = (await mdb.db.listCollections({}, { nameOnly: true }).toArray())
    .map((c) => c.name)
    .filter((n) => !n.startsWith('system.') && !n.startsWith('sluice_probe_'));
  const generic = (s: string) =>
    s.replace(t.namespace, '<ns>').replace(t.streams.clean.name, '<CLEAN>');
  for (const name of names) {
    for (const d of await mdb.db.collection(name).find({}).toArray()) {
      const { published_at: _p, captured_at: _c, ...ingest } = d['ingest'] as Document;
      out.set(`${name}/${String(d._id)}`, {
        ...d,
        ingest: {
          ...ingest,
          stream: generic(String(ingest['stream'])),
          subject: generic(String(ingest['subject'])),
        },
      });
    }
  }
  return out;
}

describe('mongo-capture: 3 replicas capture what one does, one SIGKILLed mid-run changing nothing', () => {
  let nats: NatsFixture;
  const dbs: MongoTestDatabase[] = [];
  const sets: ReplicaSet[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterAll(async () => {
    for (const s of sets) await s.stop();
    for (const d of dbs) await d.drop();
    await nats?.cleanup();
  });

  /** A namespace with its own streams and database, and replicas for it. */
  async function run(prefix: string) {
    const t = topology(uniqueId(prefix));
    for (const s of [t.streams.clean, t.streams.dlq, t.streams.replay]) nats.track(s.name);
    await ensureStream(nats.jsm, t.streams.clean);
    const mdb = await createMongoTestDatabase(prefix);
    dbs.push(mdb);
    const set = new ReplicaSet({
      entry: MAIN,
      service: 'mongo-capture',
      env: {
        NATS_URL: testUrls.nats,
        SLUICE_NAMESPACE: t.namespace,
        MONGO_URL: mongoTestUrl(),
        MONGO_DATABASE: mdb.name,
        MONGO_WRITE_CONCERN: '1',
        // Small bulk inserts, so the three share the work; messages a killed replica held come back soon.
        MONGO_CAPTURE_BATCH_MESSAGES: '2',
        MONGO_CAPTURE_LINGER: '0',
        MONGO_CAPTURE_ACK_WAIT: '3s',
      },
    });
    sets.push(set);
    const settled = () =>
      waitFor(
        'every message settled',
        async () => {
          const [c, s] = await Promise.all([
            nats.jsm.consumers.info(t.streams.clean.name, DURABLE),
            nats.jsm.streams.info(t.streams.clean.name),
          ]);
          return (
            c.num_pending === 0 &&
            c.num_ack_pending === 0 &&
            c.delivered.stream_seq >= s.state.last_seq
          );
        },
        { timeoutMs: 120_000, intervalMs: 200 },
      );
    return { t, mdb, set, settled };
  }

  const processed = (r: Replica) => r.metric(METRICS.messagesProcessed, { consumer: DURABLE });

  it('the same documents, each event once; the kill loses and doubles nothing', async () => {
    const batches = input();
    const expectedIds = batches.flatMap((b) => b.events.map((e) => e.kind!.value.eventId)).sort();
    const publish = (t: Topology, b: (typeof batches)[number]) =>
      publishDurable(nats.js, t.clean(b.region), encodeBatch({ batchId: b.id, events: b.events }), {
        msgId: b.id,
        contentType: CONTENT_TYPES.EVENT_BATCH,
      });

    // One replica: all input first, then the replica.
    const single = await run('mcr1');
    for (const b of batches) await publish(single.t, b);
    await single.set.start(1);
    await single.settled();
    const want = await documents(single.mdb, single.t);
    expect((await single.mdb.allIds()).sort()).toEqual(expectedIds);

    // Three replicas, input arriving while they run.
    const trio = await run('mcr3');
    const replicas = await trio.set.start(3);
    const victim = replicas[1]!;
    // Input is published one batch at a time; once a quarter is out, the victim is killed at the
    // first look that finds it has written some batches and holds more it has not acked.
    let victimDone = 0;
    let killedAfter = -1;
    let atKill = 0;
    for (let i = 0; i < batches.length; i++) {
      await publish(trio.t, batches[i]!);
      if (killedAfter >= 0 || i < batches.length / 4) continue;
      const [done, held] = await Promise.all([
        processed(victim),
        victim.metric(METRICS.inFlightBytes, { consumer: DURABLE }),
      ]);
      if (done === 0 || held === 0) continue;
      await trio.set.kill(victim);
      [victimDone, killedAfter] = [done, i];
      atKill = (await trio.mdb.allIds()).length;
    }
    expect(killedAfter).toBeGreaterThanOrEqual(0);
    expect(atKill).toBeGreaterThan(0);
    expect(atKill).toBeLessThan(expectedIds.length);
    await trio.settled();

    // Each event once (one document per id across all collections), and every document the same.
    expect((await trio.mdb.allIds()).sort()).toEqual(expectedIds);
    const got = await documents(trio.mdb, trio.t);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    const differing = [...want]
      .filter(([k, d]) => !isDeepStrictEqual(got.get(k), d))
      .map(([k, d]) => ({ k, got: got.get(k), want: d }));
    // The first few in full, then how many.
    expect(differing.slice(0, 3)).toEqual([]);
    expect(differing).toHaveLength(0);

    // The work was spread: the victim wrote some before it died, and a survivor wrote some too.
    const survivors = await Promise.all(trio.set.live().map(processed));
    expect(survivors).toHaveLength(2);
    expect([victimDone, ...survivors].filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  }, 300_000);
});

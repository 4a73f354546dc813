// Three dedupe processes on one durable consumer of the raw stream (the platform's way to scale it),
// against the real NATS and Redis. The same raw batches (overlapping events, whole batches re-sent
// under new ids) go through one replica in one namespace and through three in another while one of
// the three is SIGKILLed mid-run: the clean stream must hold the same events, each exactly once.
import { ensureStream } from '@sluice/jetstream';
import { decodeBatch, eventId, HEADERS, type Topology } from '@sluice/contracts';
import { METRICS } from '@sluice/observability';
import {
  natsFixture,
  redisFixture,
  ReplicaSet,
  rng,
  testUrls,
  type NatsFixture,
  type RedisFixture,
  type Replica,
} from '@sluice/testing';
import {
  consumerSettled,
  DEDUPE_MAIN,
  dedupeEnv,
  newTopology,
  publishRaw,
  repeated,
  type Reading,
} from './test-fixtures/processes';

const DURABLE = 'dedupe';

/** One raw batch: its readings and its batch id (`Nats-Msg-Id`). */
interface Batch {
  id: string;
  readings: Reading[];
}

/**
 * Raw batches of 10 readings per region, each re-sending the last 5 of the one before (replicas race
 * for those claims), and every 20th batch re-sent whole under a new batch id (JetStream's duplicate
 * window passes it; only the claims stop it).
 */
function input(): Batch[] {
  const rand = rng(19);
  const t0 = Date.now() - 60_000;
  const perRegion = ['eu', 'us'].map((region) => {
    const readings: Reading[] = Array.from({ length: 800 }, (_, i) => ({
      id: `${region}-${i}`,
      device: `dev-${Math.floor(rand() * 8)}`,
      region,
      sensor: rand() < 0.5 ? 'temp' : 'volt',
      t: t0 + Math.floor(rand() * 30_000),
      value: Math.round(rand() * 10_000) / 100,
    }));
    const batches: Batch[] = [];
    for (let i = 0; i + 10 <= readings.length; i += 5)
      batches.push({ id: `b-${region}-${i}`, readings: readings.slice(i, i + 10) });
    return batches;
  });
  // Regions interleaved, as a gateway in front of both would publish them.
  const out: Batch[] = [];
  perRegion[0]!.forEach((b, i) => {
    for (const x of [b, perRegion[1]![i]!]) {
      out.push(x);
      if (out.length % 20 === 0) out.push({ id: `${x.id}-again`, readings: x.readings });
    }
  });
  return out;
}

interface Clean {
  /** Every event id, once per published copy. */
  ids: string[];
  /** Each event as published, by id (JSON of the decoded event). */
  events: Map<string, string>;
  /** `Nats-Msg-Id` of every clean message. */
  msgIds: string[];
}

async function readClean(nats: NatsFixture, t: Topology): Promise<Clean> {
  const msgs = await nats.readAll(t.streams.clean.name).catch(() => []);
  const out: Clean = { ids: [], events: new Map(), msgIds: [] };
  for (const m of msgs) {
    out.msgIds.push(m.headers!.get(HEADERS.MSG_ID));
    for (const e of decodeBatch(m.data).events) {
      out.ids.push(eventId(e));
      out.events.set(eventId(e), JSON.stringify(e));
    }
  }
  return out;
}

describe('dedupe: 3 replicas publish what one does, one SIGKILLed mid-run changing nothing', () => {
  let nats: NatsFixture;
  let redis: RedisFixture;
  const sets: ReplicaSet[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
    redis = await redisFixture();
  });
  afterAll(async () => {
    for (const s of sets) await s.stop();
    await redis?.cleanup();
    await nats?.cleanup();
  });

  /** A namespace with its own streams and claim keys, and replicas for it. */
  async function namespace(prefix: string) {
    const t = newTopology(nats, prefix);
    await ensureStream(nats.jsm, t.streams.raw);
    const set = new ReplicaSet({
      entry: DEDUPE_MAIN,
      service: 'dedupe',
      env: dedupeEnv(t, testUrls.redis, {
        DEDUPE_KEY_PREFIX: `${redis.prefix}${t.namespace}:`,
        // Small batches, so the three share the work; messages a killed replica held come back soon.
        DEDUPE_BATCH_MESSAGES: '2',
        DEDUPE_ACK_WAIT: '2s',
        DEDUPE_CLEAN_DUPLICATE_WINDOW: '2m',
      }),
    });
    sets.push(set);
    return { t, set };
  }
  const publishAll = async (t: Topology, batches: readonly Batch[]) => {
    for (const b of batches) await publishRaw(nats, t, b.readings, b.id);
  };
  const processed = (r: Replica) => r.metric(METRICS.messagesProcessed, { consumer: DURABLE });

  it('the same events, each once; the kill loses and doubles nothing', async () => {
    const batches = input();
    const distinct = new Map(batches.flatMap((b) => b.readings).map((r) => [r.id, r]));

    // One replica: all input first, then the replica.
    const single = await namespace('ddr1');
    await publishAll(single.t, batches);
    await single.set.start(1);
    await consumerSettled(nats, single.t.streams.raw.name, DURABLE);
    const want = await readClean(nats, single.t);
    expect(repeated(want.ids)).toEqual([]);
    expect([...want.events.keys()].sort()).toEqual([...distinct.keys()].sort());

    // Three replicas, input arriving while they run.
    const trio = await namespace('ddr3');
    const replicas = await trio.set.start(3);
    const victim = replicas[1]!;
    // A new key prefix has no seed guard: the first claim finds none, and one replica re-seeds
    // (after its fence) before any deduplicates. The rest of the input waits for that, or the victim
    // would hold some without handling any while all of it is published.
    await publishRaw(nats, trio.t, batches[0]!.readings, batches[0]!.id);
    await Promise.any(
      replicas.map((r) =>
        r.proc.waitForLine(/redis claims re-seeded; deduplicating again/, 60_000),
      ),
    );
    // Input is published one batch at a time; once a quarter is out, the victim is killed at the
    // first look that finds it has handled some messages and holds more it has not acked.
    let victimDone = 0;
    let killedAfter = -1;
    let atKill = 0;
    for (let i = 1; i < batches.length; i++) {
      await publishRaw(nats, trio.t, batches[i]!.readings, batches[i]!.id);
      if (killedAfter >= 0 || i < batches.length / 4) continue;
      const [done, held] = await Promise.all([
        processed(victim),
        victim.metric(METRICS.inFlightBytes, { consumer: DURABLE }),
      ]);
      if (done === 0 || held === 0) continue;
      await trio.set.kill(victim);
      [victimDone, killedAfter] = [done, i];
      atKill = new Set((await readClean(nats, trio.t)).ids).size;
    }
    expect(killedAfter).toBeGreaterThanOrEqual(0);
    expect(atKill).toBeGreaterThan(0);
    expect(atKill).toBeLessThan(distinct.size);
    await consumerSettled(nats, trio.t.streams.raw.name, DURABLE);
    const got = await readClean(nats, trio.t);

    // The same events with the same content, each exactly once. Which raw message's clean batch
    // carries an overlapping event is not compared: the replica that claims it first decides.
    expect(repeated(got.ids)).toEqual([]);
    expect(got.ids).toHaveLength(want.ids.length);
    expect(new Map([...got.events].sort())).toEqual(new Map([...want.events].sort()));
    // One clean message per raw message at most (a republish after the kill was dropped by its id).
    expect(repeated(got.msgIds)).toEqual([]);
    for (const id of got.msgIds)
      expect(id).toMatch(new RegExp(`^raw:${trio.t.streams.raw.name}:\\d+$`));

    // The work was spread: the victim handled some before it died, and a survivor handled some too.
    const survivors = await Promise.all(trio.set.live().map(processed));
    expect(survivors).toHaveLength(2);
    expect([victimDone, ...survivors].filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  }, 300_000);
});

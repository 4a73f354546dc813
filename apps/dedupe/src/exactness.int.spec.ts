// Issue 18: exactly-once roll-ups that survive the loss of Redis's claims. dedupe and the aggregator
// run as real processes (their main.ts), dedupe against a private Redis that the test restarts empty
// (`SHUTDOWN NOSAVE`) or makes evict keys. Known readings, some re-sent in other batches and some
// whole batches re-sent after the raw stream's duplicate window, must reach the clean stream once
// each, and the aggregator's roll-ups must equal a computation over the distinct readings.
//
// These tests fail without the re-seed: `EXACTNESS_DEDUPE_RESEED=false` runs dedupe with
// DEDUPE_RESEED=false (claims trusted, not re-seeded) and both exactness tests then fail (duplicate
// event ids in the clean stream, over-counted roll-ups).
import { ensureStream } from '@sluice/jetstream';
import type { Topology } from '@sluice/contracts';
import {
  createTestDatabase,
  groupByRollupCell,
  natsFixture,
  privateRedis,
  rng,
  sleep,
  testUrls,
  waitFor,
  type NatsFixture,
  type PgDatabase,
  type PrivateServer,
} from '@sluice/testing';
import { Client } from 'pg';
import {
  AGGREGATOR_MAIN,
  Children,
  cleanIds,
  consumerSettled,
  DEDUPE_MAIN,
  dedupeEnv,
  metricSum,
  newTopology,
  opsPort,
  publishRaw,
  redisAdmin,
  redisInfo,
  repeated,
  shutdownNosave,
  type Reading,
} from './test-fixtures/processes';

/** Roll-up resolutions compared: a fine one and a coarser one. */
const RESOLUTIONS: Record<string, number> = { '1s': 1_000, '5s': 5_000 };
/** Duplicate window of the raw stream: short, so a batch re-sent with its own id passes JetStream. */
const RAW_DUPLICATE_WINDOW_MS = 1_000;

interface Cell {
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** The roll-ups computed the plain way: every distinct reading (by id) into its windows. */
function expectedRollups(readings: readonly Reading[]): Map<string, Cell> {
  const distinct = new Map(readings.map((r) => [r.id, r]));
  const out = new Map<string, Cell>();
  for (const [k, rs] of groupByRollupCell(distinct.values(), RESOLUTIONS)) {
    const values = rs.map((r) => r.value);
    out.set(k, {
      count: rs.length,
      sum: values.reduce((a, b) => a + b, 0),
      min: Math.min(...values),
      max: Math.max(...values),
    });
  }
  return out;
}

async function storedRollups(pg: Client): Promise<Map<string, Cell>> {
  const { rows } = await pg.query<{
    resolution: string;
    scope: number;
    series_key: string;
    sensor: string;
    ws: number;
    count: string;
    sum: number;
    min: number;
    max: number;
  }>(
    `SELECT resolution, scope, series_key, sensor, (extract(epoch from window_start)*1000)::float8 AS ws, count, sum, min, max FROM rollups WHERE NOT derived`,
  );
  return new Map(
    rows.map((r) => [
      `${r.resolution}|${r.scope === 1 ? 'device' : 'region'}|${r.series_key}|${r.sensor}|${r.ws}`,
      { count: Number(r.count), sum: r.sum, min: r.min, max: r.max },
    ]),
  );
}

/** Rows that differ (sums to 1e-9 relative: float addition order differs); empty when equal. */
function differences(actual: Map<string, Cell>, expected: Map<string, Cell>): string[] {
  const out: string[] = [];
  for (const [k, e] of expected) {
    const a = actual.get(k);
    if (!a) out.push(`${k}: missing, want ${JSON.stringify(e)}`);
    else if (
      a.count !== e.count ||
      a.min !== e.min ||
      a.max !== e.max ||
      Math.abs(a.sum - e.sum) > 1e-9 * Math.max(1, Math.abs(e.sum))
    ) {
      out.push(`${k}: ${JSON.stringify(a)}, want ${JSON.stringify(e)}`);
    }
  }
  for (const k of actual.keys()) if (!expected.has(k)) out.push(`${k}: unexpected row`);
  return out;
}

/** A known data set: 6 devices in 2 regions, 2 sensors, event times over 15 s (15 1s and 3 5s windows). */
function dataSet(seed: number) {
  const rand = rng(seed);
  const t0 = Math.floor(Date.now() / 5_000) * 5_000 - 120_000;
  let n = 0;
  const reading = (): Reading => {
    const d = Math.floor(rand() * 6);
    return {
      id: `ev-${n++}`,
      device: `dev-${d}`,
      region: d < 3 ? 'eu' : 'us',
      sensor: rand() < 0.5 ? 'temp' : 'volt',
      t: t0 + Math.floor(rand() * 15_000),
      value: Math.round(rand() * 10_000) / 100,
    };
  };
  const readings = (count: number) => Array.from({ length: count }, reading);
  const pick = <T>(xs: readonly T[], count: number): T[] =>
    Array.from({ length: count }, () => xs[Math.floor(rand() * xs.length)]!);
  return { readings, pick };
}

/** Batches of `size` readings per region, each also re-sending `overlap` readings of the one before. */
function batches(readings: readonly Reading[], size: number, overlap: number): Reading[][] {
  const out: Reading[][] = [];
  for (const region of ['eu', 'us']) {
    const mine = readings.filter((r) => r.region === region);
    for (let i = 0; i < mine.length; i += size)
      out.push([...mine.slice(Math.max(0, i - overlap), i), ...mine.slice(i, i + size)]);
  }
  return out;
}

/** Publishes readings in batches of one region each, under new batch ids. */
async function publishAll(
  nats: NatsFixture,
  t: Topology,
  readings: readonly Reading[],
  size = 20,
  overlap = 0,
): Promise<Array<{ id: string; readings: Reading[] }>> {
  const sent: Array<{ id: string; readings: Reading[] }> = [];
  for (const b of batches(readings, size, overlap))
    sent.push({ id: await publishRaw(nats, t, b), readings: b });
  return sent;
}

describe('exactly-once roll-ups when Redis loses its claims (dedupe + aggregator processes)', () => {
  let nats: NatsFixture;
  let redis: PrivateServer | undefined;
  let db: PgDatabase | undefined;
  let pg: Client | undefined;
  const children = new Children();

  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterEach(async () => {
    await children.stopAll();
    await pg?.end().catch(() => undefined);
    pg = undefined;
    await db?.drop().catch(() => undefined);
    db = undefined;
    await redis?.destroy();
    redis = undefined;
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  /** Private Redis, database and namespace; dedupe, then the aggregator (which reads dedupe's clean stream). */
  async function startPipeline(prefix: string) {
    redis = await privateRedis();
    db = await createTestDatabase('exact');
    pg = new Client({ connectionString: db.url });
    await pg.connect();
    const t = newTopology(nats, prefix);
    // Created before dedupe (which never updates an existing raw stream) with a short duplicate window.
    await ensureStream(nats.jsm, { ...t.streams.raw, duplicateWindowMs: RAW_DUPLICATE_WINDOW_MS });
    const dedupe = children.spawn(
      DEDUPE_MAIN,
      dedupeEnv(
        t,
        redis.url,
        process.env['EXACTNESS_DEDUPE_RESEED']
          ? { DEDUPE_RESEED: process.env['EXACTNESS_DEDUPE_RESEED'] }
          : {},
      ),
    );
    const dedupePort = await opsPort(dedupe, 'dedupe');
    const aggregator = children.spawn(AGGREGATOR_MAIN, {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: t.namespace,
      PG_URL: db.url,
      AGGREGATOR_RESOLUTIONS: Object.keys(RESOLUTIONS).join(','),
      AGGREGATOR_RETENTION: '',
      AGGREGATOR_FLUSH_INTERVAL: '100ms',
      AGGREGATOR_API_PORT: '0',
      AGGREGATOR_API_HOST: '127.0.0.1',
      AGGREGATOR_PG_POOL: '4',
    });
    await opsPort(aggregator, 'aggregator');
    return { t, dedupe, dedupePort, pg: pg!, redisUrl: redis.url };
  }

  /** Waits for dedupe and the aggregator to settle, then asserts exactness of the clean stream and the roll-ups. */
  async function expectExact(
    t: Topology,
    client: Client,
    all: readonly Reading[],
    log: () => string,
  ) {
    const want = [...new Set(all.map((r) => r.id))].sort();
    await waitFor(
      `clean stream to hold ${want.length} distinct events`,
      async () => new Set(await cleanIds(nats, t)).size >= want.length,
      { timeoutMs: 60_000, intervalMs: 250 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\ndedupe:\n${log()}`);
    });
    await consumerSettled(nats, t.streams.raw.name, 'dedupe');
    await consumerSettled(nats, t.streams.clean.name, 'aggregator');
    const ids = await cleanIds(nats, t);
    const expected = expectedRollups(all);
    const diff = differences(await storedRollups(client), expected);
    // Both judged together, so a failure shows each: (a) every event id exactly once in the clean
    // stream; (b) roll-ups equal to an independent computation over the distinct readings.
    expect({
      repeatedInClean: repeated(ids),
      missingFromClean: want.filter((id) => !ids.includes(id)),
      rollupCellsWrong: diff.length,
      firstWrongCells: diff.slice(0, 10),
    }).toEqual({
      repeatedInClean: [],
      missingFromClean: [],
      rollupCellsWrong: 0,
      firstWrongCells: [],
    });
    expect(new Set(ids).size).toBe(want.length);
    return expected;
  }

  it('restarted empty (SHUTDOWN NOSAVE): re-sent events and batches pass dedupe once, roll-ups exact', async () => {
    const { t, dedupe, dedupePort, pg: client, redisUrl } = await startPipeline('ex');
    const data = dataSet(18);
    const log = () => dedupe.lines.slice(-30).join('\n');

    // Before: 300 readings, each batch also re-sending 4 readings of the one before.
    const first = data.readings(300);
    const firstBatches = await publishAll(nats, t, first, 20, 4);
    await expectExact(t, client, first, log);
    const reseedsBefore = await metricSum(dedupePort, 'sluice_dedupe_reseeds_total', {
      outcome: 'committed',
    });

    // Redis restarts empty. While it is down: re-sends of earlier readings and new ones (held).
    await shutdownNosave(redisUrl);
    await redis!.exited();
    const during = [...data.pick(first, 40), ...data.readings(30)];
    await publishAll(nats, t, during, 15);
    await sleep(500);
    await redis!.start();

    // After: new batches re-sending readings of both earlier phases, new readings, and two whole
    // batches re-sent with their own ids after the raw stream's duplicate window.
    await sleep(RAW_DUPLICATE_WINDOW_MS + 200);
    const after = [...data.pick(first, 60), ...data.pick(during, 10), ...data.readings(40)];
    await publishAll(nats, t, after, 25);
    for (const b of [firstBatches[0]!, firstBatches[firstBatches.length - 1]!])
      await publishRaw(nats, t, b.readings, b.id);

    const all = [...first, ...during, ...after];
    const expected = await expectExact(t, client, all, log);
    // (c) the claims were re-seeded from the clean stream: once for the empty Redis at start, and
    // again after the restart.
    const reseedsAfter = await metricSum(dedupePort, 'sluice_dedupe_reseeds_total', {
      outcome: 'committed',
    });
    expect(reseedsBefore).toBeGreaterThanOrEqual(1);
    expect(reseedsAfter).toBeGreaterThan(reseedsBefore);
    expect(await metricSum(dedupePort, 'sluice_dedupe_reseed_claims_total')).toBeGreaterThanOrEqual(
      first.length,
    );
    console.log(
      `exactness (restart): ${new Set(all.map((r) => r.id)).size} distinct of ${all.length} sent readings; ${expected.size} roll-up cells equal; ` +
        `re-seeds committed ${reseedsBefore} -> ${reseedsAfter}, re-seeded claims ${await metricSum(dedupePort, 'sluice_dedupe_reseed_claims_total')}`,
    );
  });

  it('evicting (allkeys-lru, small maxmemory, at runtime): re-sent events pass dedupe once, roll-ups exact', async () => {
    const { t, dedupe, dedupePort, pg: client, redisUrl } = await startPipeline('ev');
    const data = dataSet(1818);
    const log = () => dedupe.lines.slice(-30).join('\n');
    const admin = await redisAdmin(redisUrl);
    try {
      const first = data.readings(300);
      await publishAll(nats, t, first, 20, 4);
      await expectExact(t, client, first, log);
      const reseedsBefore = await metricSum(dedupePort, 'sluice_dedupe_reseeds_total', {
        outcome: 'committed',
      });

      // Redis turns evicting while data flows: fillers written by the test push it past maxmemory, so
      // the least recently used keys (the claims, the guard) are evicted.
      await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
      await admin.config(
        'SET',
        'maxmemory',
        String((await redisInfo(admin, 'memory', 'used_memory')) + 200_000),
      );
      const during = [...data.pick(first, 40), ...data.readings(30)];
      const publishing = publishAll(nats, t, during, 10);
      const filler = 'x'.repeat(10_000);
      for (let i = 0; i < 60; i++) await admin.set(`filler:${i}`, filler).catch(() => undefined);
      await publishing;
      const evicted = await waitFor(
        'keys evicted',
        async () => (await redisInfo(admin, 'stats', 'evicted_keys')) || undefined,
        { timeoutMs: 10_000 },
      );
      expect(evicted).toBeGreaterThan(0);
      await sleep(1_000); // dedupe meets the evictions while the data flows

      // Back to a safe configuration; then re-sends of earlier readings and new ones.
      await admin.config('SET', 'maxmemory', '0');
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      const after = [...data.pick(first, 60), ...data.pick(during, 10), ...data.readings(40)];
      await publishAll(nats, t, after, 25);

      const all = [...first, ...during, ...after];
      const expected = await expectExact(t, client, all, log);
      const reseedsAfter = await metricSum(dedupePort, 'sluice_dedupe_reseeds_total', {
        outcome: 'committed',
      });
      expect(reseedsAfter).toBeGreaterThan(reseedsBefore);
      console.log(
        `exactness (eviction): evicted_keys ${await redisInfo(admin, 'stats', 'evicted_keys')}; ${new Set(all.map((r) => r.id)).size} distinct of ${all.length} sent readings; ` +
          `${expected.size} roll-up cells equal; re-seeds committed ${reseedsBefore} -> ${reseedsAfter}`,
      );
      expect(dedupe.proc.exitCode).toBeNull(); // kept running: the policy is checked on connect
    } finally {
      admin.disconnect();
    }
  });

  it('dedupe refuses to start against a Redis that can evict keys', async () => {
    redis = await privateRedis(['--maxmemory-policy', 'allkeys-lru']);
    const t = newTopology(nats, 'nv');
    const dedupe = children.spawn(DEDUPE_MAIN, dedupeEnv(t, redis.url));
    const code = await dedupe.exited;
    expect(code).not.toBe(0);
    expect(typeof code === 'number' ? code : -1).toBeGreaterThan(0); // an exit, not a signal
    expect(dedupe.lines.some((l) => /maxmemory-policy/.test(l) && /allkeys-lru/.test(l))).toBe(
      true,
    );
  });
});

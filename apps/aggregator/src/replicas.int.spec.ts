// Three aggregator processes on one durable consumer (the platform's way to scale it), against the
// real NATS and PostgreSQL. The same clean messages go through one replica in one namespace and
// database, and through three in another while one of the three is SIGKILLed mid-run: every stored
// row must be the same in both (and equal to an independent computation), no message applied twice.
import { METRICS } from '@sluice/observability';
import { ReplicaSet, waitFor, type Replica } from '@sluice/testing';
import {
  chunk,
  expectSame,
  generate,
  harness,
  reference,
  stored,
  unsettled,
  type Harness,
  type R,
} from './test-fixtures/harness';

const MAIN = 'apps/aggregator/src/main.ts';
const RES = ['1s', '5s', '1m'];
const DURABLE = 'aggregator';

/** A stored roll-up row without its key (the key is the map's). */
interface Row {
  region: string;
  count: number;
  sum: number;
  min: number;
  max: number;
  firstTime: number;
  first: number;
  lastTime: number;
  last: number;
}

/**
 * Every roll-up row, measured and derived, keyed `<resolution>|<scope>|<series>|<sensor>|<window
 * start ms>|<derived: t or f>`. Left out, as they record when things happened rather than what was stored:
 * `late_count` (readings merged after the window closed: depends on which messages arrived before
 * the watermark passed), `revision`, `closed` and `dirty` (how far the closer had got), `updated_at`
 * (wall clock) and `trace_links` (the first traces to arrive).
 */
async function rows(h: Harness): Promise<Map<string, Row>> {
  const list = await h.sql<{
    k: string;
    region: string;
    count: string;
    sum: number;
    min: number;
    max: number;
    ft: number;
    first_value: number;
    lt: number;
    last_value: number;
  }>(
    `SELECT concat_ws('|', resolution, scope, series_key, sensor, (extract(epoch from window_start)*1000)::bigint, derived) AS k,
            region, count, sum, min, max, (extract(epoch from first_time)*1000)::float8 AS ft, first_value,
            (extract(epoch from last_time)*1000)::float8 AS lt, last_value
     FROM rollups`,
  );
  return new Map(
    list.map((r) => [
      r.k,
      {
        region: r.region,
        count: Number(r.count),
        sum: r.sum,
        min: r.min,
        max: r.max,
        firstTime: r.ft,
        first: r.first_value,
        lastTime: r.lt,
        last: r.last_value,
      },
    ]),
  );
}

/** Equal to 1e-9 relative: sums (and derived values, products of averages) depend on addition order. */
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

/** Rows that differ between two stores; empty when equal. */
function differences(actual: Map<string, Row>, expected: Map<string, Row>): string[] {
  const out: string[] = [];
  for (const [k, e] of expected) {
    const a = actual.get(k);
    const derived = k.endsWith('|t');
    const same =
      a !== undefined &&
      a.region === e.region &&
      a.count === e.count &&
      a.firstTime === e.firstTime &&
      a.lastTime === e.lastTime &&
      close(a.sum, e.sum) &&
      (derived
        ? close(a.min, e.min) && close(a.max, e.max) && close(a.first, e.first)
        : a.min === e.min && a.max === e.max && a.first === e.first) &&
      (derived ? close(a.last, e.last) : a.last === e.last);
    if (!same) out.push(`${k}: ${JSON.stringify(a)}, want ${JSON.stringify(e)}`);
  }
  for (const k of actual.keys()) if (!expected.has(k)) out.push(`${k}: unexpected row`);
  return out;
}

/** The latest reading of every series (`series`, without `first_seen`: wall clock) and each region's watermark input. */
async function catalog(h: Harness) {
  const series = await h.sql<{ k: string; last_time: number; last_value: number }>(
    `SELECT concat_ws('|', scope, series_key, sensor, region, derived) AS k,
            (extract(epoch from last_time)*1000)::float8 AS last_time, last_value
     FROM series ORDER BY 1`,
  );
  // idle_floor and last_arrival are wall-clock bookkeeping of the idle timeout.
  const regions = await h.sql<{ region: string; max_event_time: number }>(
    `SELECT region, (extract(epoch from max_event_time)*1000)::float8 AS max_event_time FROM region_watermarks ORDER BY 1`,
  );
  return { series, regions };
}

/** Catalogs that differ (a derived series' last value to 1e-9 relative); empty when equal. */
function catalogDifferences(
  actual: Awaited<ReturnType<typeof catalog>>,
  expected: Awaited<ReturnType<typeof catalog>>,
): string[] {
  const out: string[] = [];
  const a = new Map(actual.series.map((s) => [s.k, s]));
  for (const e of expected.series) {
    const x = a.get(e.k);
    if (!x || x.last_time !== e.last_time || !close(x.last_value, e.last_value))
      out.push(`series ${e.k}: ${JSON.stringify(x)}, want ${JSON.stringify(e)}`);
  }
  if (actual.series.length !== expected.series.length)
    out.push(`${actual.series.length} series, want ${expected.series.length}`);
  if (JSON.stringify(actual.regions) !== JSON.stringify(expected.regions))
    out.push(`regions ${JSON.stringify(actual.regions)}, want ${JSON.stringify(expected.regions)}`);
  return out;
}

/** Derived series whose catalog value is not the value of their latest finest (1s) window; empty when none. */
async function staleDerivedLatest(h: Harness): Promise<string[]> {
  const list = await h.sql<{ k: string; catalog: number; latest: number }>(
    `SELECT s.series_key || '|' || s.sensor AS k, s.last_value AS catalog, r.last_value AS latest
     FROM series s JOIN LATERAL (
       SELECT last_value FROM rollups
       WHERE resolution = '${RES[0]}' AND scope = 1 AND series_key = s.series_key AND sensor = s.sensor AND derived
       ORDER BY window_start DESC LIMIT 1) r ON true
     WHERE s.derived`,
  );
  expect(list.length).toBeGreaterThan(0);
  return list
    .filter((x) => !close(x.catalog, x.latest))
    .map((x) => `${x.k}: ${x.catalog}, want ${x.latest}`);
}

async function appliedIds(h: Harness): Promise<string[]> {
  return (
    await h.sql<{ msg_id: string }>('SELECT msg_id FROM applied_messages ORDER BY msg_id')
  ).map((r) => r.msg_id);
}

describe('aggregator: 3 replicas store what one does, one SIGKILLed mid-run changing nothing', () => {
  const env = {
    AGGREGATOR_RESOLUTIONS: RES.join(','),
    AGGREGATOR_RETENTION: '',
    AGGREGATOR_ALLOWED_LATENESS: '2s',
    AGGREGATOR_DERIVED: 'power = voltage * current',
    AGGREGATOR_API_HOST: '127.0.0.1',
    // Messages a killed replica held come back within seconds.
    AGGREGATOR_ACK_WAIT: '3s',
    // A replica collects for this long before its flush commits: a kill meets uncommitted work.
    AGGREGATOR_FLUSH_INTERVAL: '300ms',
  };
  let one: Harness;
  let three: Harness;
  const sets: ReplicaSet[] = [];

  beforeAll(async () => {
    one = await harness(env);
    three = await harness(env);
  });
  afterAll(async () => {
    for (const s of sets) await s.stop();
    await one?.cleanup();
    await three?.cleanup();
  });

  const replicaSet = (h: Harness) => {
    const s = new ReplicaSet({ entry: MAIN, service: 'aggregator', env: h.env });
    sets.push(s);
    return s;
  };
  const processed = (r: Replica) => r.metric(METRICS.messagesProcessed, { consumer: DURABLE });
  const settled = (h: Harness) =>
    waitFor('every message settled', async () => (await unsettled(h, DURABLE)) === 0, {
      timeoutMs: 120_000,
      intervalMs: 200,
    });

  it('same roll-ups, series and applied ids; the kill loses and doubles nothing', async () => {
    const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 180_000;
    const readings: R[] = generate({ t0, spanMs: 20_000, devices: 4, perSeries: 150, seed: 19 });
    const messages = chunk(readings, 6);
    // Every tenth message also carries a detection (counted, not aggregated).
    const publish = (h: Harness, i: number) =>
      h.publish(`raw:REPL:${i}`, messages[i]!, i % 10 === 0 ? 1 : 0);

    // One replica: all input first, then the replica.
    for (let i = 0; i < messages.length; i++) await publish(one, i);
    const single = replicaSet(one);
    await single.start(1);
    await settled(one);
    const want = await rows(one);
    expectSame(await stored(one), reference(readings, RES));

    // Three replicas, input arriving while they run.
    const trio = replicaSet(three);
    const replicas = await trio.start(3);
    const victim = replicas[1]!;
    // Input is published one message at a time; once a quarter is out, the victim is killed at the
    // first look that finds it has applied some messages and holds more it has not committed.
    let victimDone = 0;
    let killedAfter = -1;
    let atKill = 0;
    for (let i = 0; i < messages.length; i++) {
      await publish(three, i);
      if (killedAfter >= 0 || i < messages.length / 4) continue;
      const [done, held] = await Promise.all([
        processed(victim),
        victim.metric(METRICS.inFlightBytes, { consumer: DURABLE }),
      ]);
      if (done === 0 || held === 0) continue;
      await trio.kill(victim);
      [victimDone, killedAfter] = [done, i];
      atKill = (await appliedIds(three)).length;
    }
    expect(killedAfter).toBeGreaterThanOrEqual(0);
    expect(atKill).toBeGreaterThan(0);
    expect(atKill).toBeLessThan(messages.length);
    await settled(three);

    const diff = differences(await rows(three), want);
    expect({ rowsWrong: diff.length, first: diff.slice(0, 10) }).toEqual({
      rowsWrong: 0,
      first: [],
    });
    expect(want.size).toBeGreaterThan(0);
    // A derived series' latest value is its latest finest window's (once stale: the larger of two
    // computations of that window was kept).
    for (const h of [one, three]) expect(await staleDerivedLatest(h)).toEqual([]);
    expect(catalogDifferences(await catalog(three), await catalog(one))).toEqual([]);
    const ids = await appliedIds(three);
    expect(ids).toEqual(await appliedIds(one));
    expect(ids).toHaveLength(messages.length);

    // The work was spread: the victim applied some before it died, and a survivor applied some too.
    const survivors = await Promise.all(trio.live().map(processed));
    const perReplica = [victimDone, ...survivors];
    expect(survivors).toHaveLength(2);
    expect(perReplica.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  }, 300_000);
});

import { waitFor } from '@sluice/testing';
import {
  chunk,
  expectSame,
  generate,
  harness,
  reference,
  stored,
  totalCount,
  unsettled,
  type Harness,
  type R,
} from './test-fixtures/harness';

const RES = ['1s', '5s', '1m'];

describe('aggregator on real NATS + PostgreSQL', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await harness({
      AGGREGATOR_RESOLUTIONS: RES.join(','),
      AGGREGATOR_RETENTION: '',
      AGGREGATOR_ALLOWED_LATENESS: '2s',
      AGGREGATOR_DERIVED: 'power = voltage * current',
    });
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it('stores roll-ups equal to an independent computation (out of order, late), once per message, across replicas and replays', async () => {
    const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 120_000;
    const readings = generate({ t0, spanMs: 20_000, devices: 3, perSeries: 120, seed: 7 });
    // Late: readings for early windows published after the watermark has moved on.
    const late: R[] = generate({
      t0,
      spanMs: 2_000,
      devices: 2,
      perSeries: 5,
      sensors: ['temp'],
      seed: 8,
    });
    const messages = chunk(readings, 25);

    // Two replicas sharing the durable consumer, each on its own NATS connection and pool.
    const a = await h.start();
    const b = await h.start();
    for (let i = 0; i < messages.length; i++)
      await h.publish(`raw:S:${i}`, messages[i]!, i % 5 === 0 ? 2 : 0);
    await waitFor('first part applied', async () => (await totalCount(h)) === readings.length, {
      timeoutMs: 30_000,
    });
    await h.publish('raw:S:late', late);
    const all = [...readings, ...late];
    await waitFor('late readings applied', async () => (await totalCount(h)) === all.length, {
      timeoutMs: 30_000,
    });
    await waitFor('all acked', async () => (await unsettled(h)) === 0);

    expectSame(await stored(h), reference(all, RES));
    const applied = await h.sql<{ n: string }>('SELECT count(*) AS n FROM applied_messages');
    expect(Number(applied[0]!.n)).toBe(messages.length + 1);
    // Both replicas did work and detections were counted, not aggregated.
    const flushed = async (x: typeof a) =>
      (await x.metrics.messages.get()).values.reduce((s, v) => s + v.value, 0);
    expect((await flushed(a)) + (await flushed(b))).toBe(messages.length + 1);
    const detections = async (x: typeof a) =>
      (await x.metrics.events.get()).values.find((v) => v.labels.kind === 'detection')?.value ?? 0;
    expect((await detections(a)) + (await detections(b))).toBe(2 * Math.ceil(messages.length / 5));
    // Roll-up freshness: one observation per applied message with readings (every one here), none
    // above the few seconds this test waited.
    const visible = async (x: typeof a) => (await x.metrics.visible.get()).values;
    const count = (vs: Awaited<ReturnType<typeof visible>>) =>
      vs.find((v) => v.metricName === 'sluice_aggregator_visible_seconds_count')?.value ?? 0;
    const within = (vs: Awaited<ReturnType<typeof visible>>) =>
      vs.find((v) => v.labels.le === 60)?.value ?? 0;
    const [va, vb] = [await visible(a), await visible(b)];
    expect(count(va) + count(vb)).toBe(messages.length + 1);
    expect(within(va) + within(vb)).toBe(messages.length + 1);

    // Replay: a second durable consumer redelivers every message to the same store; nothing changes.
    const replay = await h.start({ AGGREGATOR_DURABLE: 'replay' });
    await waitFor('replay consumed', async () => (await unsettled(h, 'replay')) === 0, {
      timeoutMs: 30_000,
    });
    const already = (await replay.metrics.messages.get()).values.find(
      (v) => v.labels.outcome === 'already_applied',
    )?.value;
    expect(already).toBe(messages.length + 1);
    // Already applied: not visible again, so not observed.
    expect(
      (await replay.metrics.visible.get()).values.find(
        (v) => v.metricName === 'sluice_aggregator_visible_seconds_count',
      )?.value ?? 0,
    ).toBe(0);
    expectSame(await stored(h), reference(all, RES));

    // Derived series: power = avg(voltage) * avg(current) per device window.
    const ref = reference(all, RES);
    const derived = await h.sql<{
      resolution: string;
      series_key: string;
      ws: number;
      sum: number;
      count: string;
    }>(
      `SELECT resolution, series_key, (extract(epoch from window_start)*1000)::float8 AS ws, sum, count FROM rollups WHERE derived AND sensor = 'power'`,
    );
    let expectedDerived = 0;
    for (const [k, v] of ref) {
      const [res, scope, key, sensor, ws] = k.split('|');
      if (scope !== 'device' || sensor !== 'voltage') continue;
      const c = ref.get(`${res}|device|${key}|current|${ws}`);
      if (!c) continue;
      expectedDerived++;
      const row = derived.find(
        (d) => d.resolution === res && d.series_key === key && d.ws === Number(ws),
      );
      expect(row).toBeDefined();
      const value = (v.sum / v.count) * (c.sum / c.count);
      expect(row!.sum / Number(row!.count)).toBeCloseTo(value, 6);
    }
    expect(derived.length).toBe(expectedDerived);
  });
});

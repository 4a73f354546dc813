import { decodeRollup, RollupScope, type Rollup } from '@sluice/contracts';
import { sleep, waitFor } from '@sluice/testing';
import type { Aggregator } from './aggregator';
import { harness, type Harness } from './test-fixtures/harness';

describe('window closing and revisions', () => {
  let h: Harness;
  let agg: Aggregator;

  beforeAll(async () => {
    h = await harness({
      AGGREGATOR_RESOLUTIONS: '1s,5s',
      AGGREGATOR_RETENTION: '',
      AGGREGATOR_ALLOWED_LATENESS: '1s',
      AGGREGATOR_CLOSE_INTERVAL: '100ms',
      // Only the start and late readings make full closer passes here, so those paths are tested.
      AGGREGATOR_CLOSE_FULL_INTERVAL: '1h',
    });
    agg = await h.start();
  });
  afterAll(async () => {
    await h.cleanup();
  });

  async function rollups(filter: (r: Rollup) => boolean): Promise<Rollup[]> {
    const msgs = await h.nats.readAll(h.topo.streams.rollups.name).catch(() => []);
    return msgs.map((m) => decodeRollup(m.data)).filter(filter);
  }

  it('publishes exactly one Rollup when the watermark closes a window, and one revision per late update', async () => {
    const t0 = Math.floor(Date.now() / 5_000) * 5_000 - 60_000;
    const r = (t: number, value: number, device = 'dev-w') => ({
      device,
      region: 'eu',
      sensor: 'temp',
      t,
      value,
    });
    const isW = (x: Rollup) =>
      x.scope === RollupScope.DEVICE && x.resolution === '1s' && x.windowStart?.getTime() === t0;

    await h.publish('raw:W:1', [r(t0 + 100, 10), r(t0 + 600, 30)]);
    await sleep(600);
    expect(await rollups(isW)).toHaveLength(0); // watermark t0 + 600 - 1s: still open

    // Watermark moves to t0 + 3.5 s − 1 s: windows ending at or before t0 + 2.5 s close.
    await h.publish('raw:W:2', [r(t0 + 3_500, 50)]);
    const first = await waitFor('Rollup of the closed window', async () =>
      (await rollups(isW)).length > 0 ? rollups(isW) : undefined,
    );
    await sleep(800); // further closer passes must not publish it again
    expect(await rollups(isW)).toHaveLength(1);
    expect(first[0]).toMatchObject({
      deviceId: 'dev-w',
      region: 'eu',
      sensorType: 'temp',
      count: 2,
      sum: 40,
      min: 10,
      max: 30,
      avg: 20,
      firstValue: 10,
      lastValue: 30,
      revision: 1,
      lateCount: 0,
    });
    expect(first[0]!.windowEnd!.getTime()).toBe(t0 + 1_000);
    const region = await waitFor('region Rollup', async () => {
      const x = await rollups(
        (y) =>
          y.scope === RollupScope.REGION &&
          y.resolution === '1s' &&
          y.windowStart?.getTime() === t0,
      );
      return x.length ? x : undefined;
    });
    expect(region).toHaveLength(1);
    expect(region[0]).toMatchObject({ deviceId: '', count: 2, revision: 1 });

    // A late reading updates the stored window and publishes revision 2, once.
    await h.publish('raw:W:3', [r(t0 + 50, 5)]);
    await waitFor('revision', async () => (await rollups(isW)).length === 2);
    await sleep(800);
    const all = await rollups(isW);
    expect(all.map((x) => x.revision)).toEqual([1, 2]);
    expect(all[1]).toMatchObject({
      count: 3,
      sum: 45,
      min: 5,
      firstValue: 5,
      lastValue: 30,
      lateCount: 1,
    });
    const stored = await h.sql<{
      revision: number;
      late_count: string;
      closed: boolean;
      dirty: boolean;
    }>(
      `SELECT revision, late_count, closed, dirty FROM rollups WHERE resolution = '1s' AND scope = 1 AND series_key = 'dev-w' AND window_start = to_timestamp($1::float8 / 1000)`,
      [t0],
    );
    expect(stored).toEqual([{ revision: 2, late_count: '1', closed: true, dirty: false }]);
    // The 5 s window [t0, t0+5s) is still open (watermark t0 + 2.5 s): nothing published for it.
    expect(
      await rollups((x) => x.resolution === '5s' && x.windowStart?.getTime() === t0),
    ).toHaveLength(0);
  });

  it('publishes a late reading in a window below where bounded closer passes look, through the full pass it triggers', async () => {
    const t1 = Math.floor(Date.now() / 5_000) * 5_000 - 30_000;
    const r = (t: number, value: number, device: string) => ({
      device,
      region: 'eu',
      sensor: 'temp',
      t,
      value,
    });
    const at = (device: string, start: number) => (x: Rollup) =>
      x.scope === RollupScope.DEVICE &&
      x.deviceId === device &&
      x.resolution === '1s' &&
      x.windowStart?.getTime() === start;
    const passes = async (kind: string) =>
      (await agg.metrics.closerPasses.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0;

    await h.publish('raw:L:1', [r(t1 + 100, 1, 'dev-a'), r(t1 + 10_000, 2, 'dev-a')]);
    await waitFor('dev-a window closed', async () => (await rollups(at('dev-a', t1))).length === 1);
    await waitFor('a bounded pass after it', async () => (await passes('bounded')) > 0);
    const fullBefore = await passes('full');

    // A device heard from late: a new row in a window every pass so far has left behind.
    await h.publish('raw:L:2', [r(t1 + 2_100, 7, 'dev-late')]);
    const [late] = await waitFor('late window published', async () => {
      const x = await rollups(at('dev-late', t1 + 2_000));
      return x.length ? x : undefined;
    });
    expect(late).toMatchObject({ count: 1, sum: 7, revision: 1 });
    // The pass is metered when it ends, after its Rollups are out.
    await waitFor('the full pass metered', async () => (await passes('full')) > fullBefore);
  });
});

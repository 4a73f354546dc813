import { decodeRollup, RollupScope, type Rollup } from '@sluice/contracts';
import { sleep, waitFor } from '@sluice/testing';
import type { Aggregator } from './aggregator';
import { harness, reference, totalCount, type Harness, type R } from './test-fixtures/harness';
import { readWatermarks } from './watermark';

const RES_MS: Record<string, number> = { '1s': 1_000, '5s': 5_000 };

async function rollups(h: Harness, filter: (r: Rollup) => boolean = () => true): Promise<Rollup[]> {
  const msgs = await h.nats.readAll(h.topo.streams.rollups.name).catch(() => []);
  return msgs.map((m) => decodeRollup(m.data)).filter(filter);
}

/** Same key as {@link reference}: `<res>|<device|region>|<key>|<sensor>|<window start>`. */
const keyOf = (x: Rollup) =>
  `${x.resolution}|${x.scope === RollupScope.DEVICE ? 'device' : 'region'}|${x.scope === RollupScope.DEVICE ? x.deviceId : x.region}|${x.sensorType}|${x.windowStart!.getTime()}`;

describe('idle regions', () => {
  const IDLE_MS = 2_000;
  const LATENESS_MS = 1_000;
  let h: Harness;
  let agg: Aggregator;

  beforeAll(async () => {
    h = await harness({
      AGGREGATOR_RESOLUTIONS: '1s,5s',
      AGGREGATOR_RETENTION: '',
      AGGREGATOR_ALLOWED_LATENESS: `${LATENESS_MS}ms`,
      AGGREGATOR_IDLE_TIMEOUT: `${IDLE_MS}ms`,
      AGGREGATOR_CLOSE_INTERVAL: '100ms',
      // Only the start and late readings make full closer passes: idle windows close in bounded ones.
      AGGREGATOR_CLOSE_FULL_INTERVAL: '1h',
    });
    agg = await h.start();
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it('publishes every window of a region that stops, within idle + lateness, while another keeps sending; a late reading afterwards is a revision', async () => {
    const tB = Date.now() - 3_000;
    const quiet: R[] = [];
    for (let i = 0; i < 12; i++)
      for (const device of ['dev-q0', 'dev-q1'])
        quiet.push({
          device,
          region: 'quiet',
          sensor: 'temp',
          t: tB + i * 250,
          value: i + (device === 'dev-q1' ? 100 : 0),
        });
    const expected = reference(quiet, ['1s', '5s']);

    // The busy region keeps arriving, with event times a minute behind the quiet one's: neither a
    // global watermark nor a global idleness would close the quiet region's last windows.
    let stop = false;
    let lastEnd = 0;
    const busy = (async () => {
      for (let i = 0; !stop; i++) {
        await h.publish(`raw:busy:${i}`, [
          { device: 'dev-b', region: 'busy', sensor: 'temp', t: tB - 60_000 + i * 50, value: i },
        ]);
        await sleep(100);
      }
    })();
    try {
      for (let m = 0; m < 3; m++) await h.publish(`raw:quiet:${m}`, quiet.slice(m * 8, m * 8 + 8));
      await waitFor('quiet readings applied', async () => {
        const rows = await h.sql<{ n: string }>(
          `SELECT coalesce(sum(count), 0) AS n FROM rollups WHERE resolution = '1s' AND scope = 1 AND region = 'quiet'`,
        );
        return Number(rows[0]!.n) === quiet.length;
      });
      lastEnd = Math.max(
        ...[...expected.keys()].map((k) => {
          const [res, , , , ws] = k.split('|');
          return Number(ws) + RES_MS[res!]!;
        }),
      );
      // Deadline: the last window's end + idle + lateness, plus the closer interval and polling slack.
      const deadline = Math.max(0, lastEnd - Date.now()) + IDLE_MS + LATENESS_MS + 2_000;
      const published = await waitFor(
        'every window of the quiet region published',
        async () => {
          const got = await rollups(h, (x) => x.region === 'quiet');
          return got.length >= expected.size ? got : undefined;
        },
        { timeoutMs: deadline },
      );
      expect(published.map(keyOf).sort()).toEqual([...expected.keys()].sort());
      for (const x of published) {
        const e = expected.get(keyOf(x))!;
        expect({
          k: keyOf(x),
          revision: x.revision,
          lateCount: x.lateCount,
          count: x.count,
          min: x.min,
          max: x.max,
          first: x.firstValue,
          last: x.lastValue,
        }).toEqual({
          k: keyOf(x),
          revision: 1,
          lateCount: 0,
          count: e.count,
          min: e.min,
          max: e.max,
          first: e.first,
          last: e.last,
        });
      }
      // The busy region is still sending: its latest window is open (its own watermark holds it).
      const openBusy = await h.sql<{ n: string }>(
        `SELECT count(*) AS n FROM rollups WHERE region = 'busy' AND NOT closed`,
      );
      expect(Number(openBusy[0]!.n)).toBeGreaterThan(0);
    } finally {
      stop = true;
      await busy;
    }

    // A late reading into the quiet region's first 1 s window, after it was closed through idleness.
    const opts = { allowedLatenessMs: LATENESS_MS, idleTimeoutMs: IDLE_MS };
    const before = (await readWatermarks(agg.pool, opts, ['quiet'])).get('quiet')!;
    const w0 = Math.floor(tB / 1_000) * 1_000;
    const first = expected.get(`1s|device|dev-q0|temp|${w0}`)!;
    await h.publish('raw:quiet:late', [
      { device: 'dev-q0', region: 'quiet', sensor: 'temp', t: w0 + 1, value: -7 },
    ]);
    const isW0 = (scope: RollupScope) => (x: Rollup) =>
      x.scope === scope &&
      x.region === 'quiet' &&
      x.resolution === '1s' &&
      x.windowStart!.getTime() === w0 &&
      (scope === RollupScope.REGION || x.deviceId === 'dev-q0');
    const revised = await waitFor('revision of the closed window', async () => {
      const x = await rollups(h, isW0(RollupScope.DEVICE));
      return x.length === 2 ? x : undefined;
    });
    expect(revised.map((x) => x.revision)).toEqual([1, 2]);
    expect(revised[1]).toMatchObject({
      count: first.count + 1,
      min: -7,
      firstValue: -7,
      lateCount: 1,
    });
    await waitFor(
      'revision of the region window',
      async () => (await rollups(h, isW0(RollupScope.REGION))).length === 2,
    );
    // The marks commit after the publishes are acknowledged.
    const stored = await waitFor('revisions committed', async () => {
      const rows = await h.sql<{
        scope: number;
        revision: number;
        late_count: string;
        dirty: boolean;
      }>(
        `SELECT scope, revision, late_count, dirty FROM rollups WHERE resolution = '1s' AND region = 'quiet' AND window_start = to_timestamp($1::float8 / 1000) AND (scope = 2 OR series_key = 'dev-q0') ORDER BY scope`,
        [w0],
      );
      return rows.every((r) => r.revision === 2) ? rows : undefined;
    });
    expect(stored).toEqual([
      { scope: 1, revision: 2, late_count: '1', dirty: false },
      { scope: 2, revision: 2, late_count: '1', dirty: false },
    ]);
    const late = (await agg.metrics.lateEvents.get()).values.find(
      (v) => v.labels.resolution === '1s',
    );
    expect(late?.value).toBeGreaterThanOrEqual(1);
    // The region is active again, but its watermark does not fall back to its max event time: the
    // windows the idle advance passed stay closed behind it.
    const after = (await readWatermarks(agg.pool, opts, ['quiet'])).get('quiet')!;
    expect(before).toBeGreaterThanOrEqual(lastEnd);
    expect(after).toBeGreaterThanOrEqual(before);
  });
});

describe('per-region watermarks', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await harness({
      AGGREGATOR_RESOLUTIONS: '1s,5s',
      AGGREGATOR_RETENTION: '',
      AGGREGATOR_ALLOWED_LATENESS: '1s',
      // Disabled, so only event time moves the watermarks here.
      AGGREGATOR_IDLE_TIMEOUT: '0',
      AGGREGATOR_CLOSE_INTERVAL: '100ms',
    });
    await h.start();
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it('closes a lagging region by its own event time, not by a region further ahead', async () => {
    const sent: R[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 16; i++) {
      const t = t0 + i * 200;
      const lead: R = { device: 'dev-lead', region: 'lead', sensor: 'temp', t, value: i };
      const lag: R = { device: 'dev-lag', region: 'lag', sensor: 'temp', t: t - 20_000, value: i };
      await h.publish(`raw:lead:${i}`, [lead]);
      await h.publish(`raw:lag:${i}`, [lag]);
      sent.push(lead, lag);
      await sleep(200);
    }
    await waitFor('all readings applied', async () => (await totalCount(h)) === sent.length);

    const lagReadings = sent.filter((r) => r.region === 'lag');
    const lagWatermark = Math.max(...lagReadings.map((r) => r.t)) - 1_000;
    const expected = reference(lagReadings, ['1s', '5s']);
    const due = [...expected.keys()].filter((k) => {
      const [res, , , , ws] = k.split('|');
      return Number(ws) + RES_MS[res!]! <= lagWatermark;
    });
    expect(due.length).toBeGreaterThan(0);
    const published = await waitFor('the lagging region’s passed windows published', async () => {
      const got = await rollups(h, (x) => x.region === 'lag');
      return got.length >= due.length ? got : undefined;
    });
    // Exactly the windows its own watermark passed, each once, complete: none was closed early by the
    // leading region's watermark (which would have made its later readings late revisions).
    expect(published.map(keyOf).sort()).toEqual(due.sort());
    for (const x of published)
      expect({ k: keyOf(x), revision: x.revision, lateCount: x.lateCount, count: x.count }).toEqual(
        { k: keyOf(x), revision: 1, lateCount: 0, count: expected.get(keyOf(x))!.count },
      );
    // The marks commit after the publishes are acknowledged.
    const rows = await waitFor('the closed marks committed', async () => {
      const x = await h.sql<{ late: string; open: string; max_revision: number }>(
        `SELECT sum(late_count) AS late, count(*) FILTER (WHERE NOT closed) AS open, max(revision) AS max_revision FROM rollups WHERE region = 'lag'`,
      );
      return Number(x[0]!.open) === expected.size - due.length ? x : undefined;
    });
    expect(rows[0]).toEqual({
      late: '0',
      open: String(expected.size - due.length),
      max_revision: 1,
    });
  });
});

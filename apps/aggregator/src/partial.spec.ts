import { accumulate, mergeInto, single, type CleanMessage, type Partial } from './partial';
import { isExpired, parseResolutions, partitionSpan, windowStart } from './resolutions';
import { pickResolution } from './query';
import { parseTime } from './api';
import { rng } from '@sluice/testing';

describe('partials', () => {
  it('merge in any order to the same result, ties broken by value', () => {
    const items: Array<[number, number]> = [
      [5, 1],
      [1, 9],
      [5, 3],
      [1, 2],
      [3, 7],
    ];
    const fold = (xs: Array<[number, number]>) =>
      xs.map(([t, v]) => single(t, v)).reduce((a, b) => mergeInto(a, b));
    const a = fold(items);
    const b = fold([...items].reverse());
    const c = fold([items[2]!, items[0]!, items[4]!, items[1]!, items[3]!]);
    const expected: Partial = {
      count: 5,
      sum: 22,
      min: 1,
      max: 9,
      firstTime: 1,
      firstValue: 2,
      lastTime: 5,
      lastValue: 3,
    };
    expect(a).toEqual(expected);
    expect(b).toEqual(expected);
    expect(c).toEqual(expected);
  });

  it('accumulates device and region cells per resolution, skipping expired windows and future times for the watermark', () => {
    const res = parseResolutions(['1s', '1m'], ['1s=1d']);
    const now = Date.UTC(2026, 0, 10, 12);
    const m: CleanMessage = {
      id: 'x',
      detections: 0,
      invalid: 0,
      readings: [
        { device: 'd1', region: 'eu', sensor: 's', t: now - 1500, value: 1 },
        { device: 'd2', region: 'eu', sensor: 's', t: now - 1200, value: 3 },
        { device: 'd1', region: 'eu', sensor: 's', t: now - 3 * 86_400_000, value: 5 },
        { device: 'd1', region: 'eu', sensor: 's', t: now + 3_600_000, value: 7 },
      ],
    };
    const acc = accumulate([m], res, now, 60_000);
    expect(acc.readings).toBe(4);
    expect(acc.expired).toBe(1); // the 3-day-old reading at 1s only
    expect(acc.maxEventTimes).toEqual(new Map([['eu', now - 1200]]));
    const region1s = [...acc.cells.values()].find(
      (c) => c.scope === 2 && c.resolution === '1s' && c.start === windowStart(now - 1500, 1000),
    )!;
    expect(region1s.p).toMatchObject({ count: 2, sum: 4, min: 1, max: 3 });
    expect(
      [...acc.cells.values()]
        .filter((c) => c.resolution === '1m' && c.scope === 1)
        .reduce((n, c) => n + c.p.count, 0),
    ).toBe(4);
  });
});

describe('accumulate: max event time per region', () => {
  it('keeps each region its own latest time within now + skew, and -Infinity for a region with none', () => {
    const res = parseResolutions(['1s', '5s'], []);
    const now = Date.UTC(2026, 0, 10, 12);
    const m = (id: string, readings: CleanMessage['readings']): CleanMessage => ({
      id,
      detections: 0,
      invalid: 0,
      readings,
    });
    const acc = accumulate(
      [
        m('a', [
          { device: 'd1', region: 'eu', sensor: 's', t: now - 9_000, value: 1 },
          { device: 'd2', region: 'us', sensor: 's', t: now - 60_000, value: 1 },
          { device: 'd1', region: 'eu', sensor: 'v', t: now - 2_000, value: 1 },
        ]),
        m('b', [
          { device: 'd3', region: 'ap', sensor: 's', t: now + 3_600_000, value: 1 },
          { device: 'd2', region: 'us', sensor: 's', t: now + 59_000, value: 1 },
          { device: 'd4', region: 'eu', sensor: 's', t: now - 5_000, value: 1 },
        ]),
      ],
      res,
      now,
      60_000,
    );
    expect(acc.maxEventTimes).toEqual(
      new Map([
        ['eu', now - 2_000],
        ['us', now + 59_000],
        ['ap', -Infinity],
      ]),
    );
  });
});

describe('accumulate against a per-reading computation', () => {
  /** Every reading merged into every (resolution, scope) cell on its own: the definition. */
  function naive(m: CleanMessage, resolutions: ReturnType<typeof parseResolutions>, now: number) {
    const out = new Map<string, Partial>();
    for (const res of resolutions) {
      const keep = partitionSpan(now - res.retentionMs, res.partition).start;
      for (const r of m.readings) {
        const start = windowStart(r.t, res.ms);
        if (start < keep) continue;
        for (const [scope, key] of [
          [1, r.device],
          [2, r.region],
        ] as const) {
          const id = `${res.name}/${scope}/${key}/${r.sensor}/${start}`;
          const p = out.get(id);
          if (p) mergeInto(p, single(r.t, r.value));
          else out.set(id, single(r.t, r.value));
        }
      }
    }
    return out;
  }

  it.each([
    [['1s', '5s', '1m', '1h']],
    [['2s', '5s', '1m']], // 5 s is no multiple of 2 s: merged per reading
  ])('gives the same cells for %j', (names) => {
    const random = rng(42);
    const now = Date.UTC(2026, 10, 28, 12);
    const resolutions = parseResolutions(names, ['1s=1d', '2s=1d']);
    const readings = Array.from({ length: 3000 }, (_, i) => ({
      device: `d${Math.floor(random() * 7)}`,
      region: random() < 0.8 ? 'eu' : 'us',
      sensor: `s${Math.floor(random() * 3)}`,
      // Mostly the last 10 minutes, some days old (expired at the finest resolution only), in any order.
      t: now - (i % 50 === 0 ? 3 * 86_400_000 : 0) - Math.floor(random() * 600_000),
      value: Math.round(random() * 1000) / 10,
    }));
    const m: CleanMessage = { id: 'x', detections: 0, invalid: 0, readings };
    const acc = accumulate([m], resolutions, now, 60_000);
    const want = naive(m, resolutions, now);
    const got = new Map(
      [...acc.cells.values()].map((c) => [
        `${c.resolution}/${c.scope}/${c.key}/${c.sensor}/${c.start}`,
        c.p,
      ]),
    );
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [id, p] of want) {
      const g = got.get(id)!;
      expect({ ...g, sum: 0 }).toEqual({ ...p, sum: 0 });
      expect(g.sum).toBeCloseTo(p.sum, 6);
    }
    const cellsPerReading = resolutions.length * 2;
    const stored = [...got.values()].reduce((n, p) => n + p.count, 0);
    expect(stored + acc.expired * 2).toBe(readings.length * cellsPerReading);
  });
});

describe('resolutions', () => {
  it('parses, sorts and applies retention defaults and overrides', () => {
    const r = parseResolutions(['1h', '1s', '5s', '1m'], ['1s=2d']);
    expect(r.map((x) => [x.name, x.partition, x.retentionMs / 86_400_000])).toEqual([
      ['1s', 'day', 2],
      ['5s', 'day', 30],
      ['1m', 'month', 90],
      ['1h', 'month', 730],
    ]);
    expect(() => parseResolutions(['7s'])).toThrow('must divide one day');
    expect(() => parseResolutions(['1s', '1000ms'])).toThrow('AGGREGATOR_RESOLUTIONS');
    expect(() => parseResolutions(['1s'], ['1s=forever'])).toThrow('AGGREGATOR_RETENTION');
  });

  it('aligns windows and partitions to UTC and expires whole partitions only', () => {
    expect(windowStart(12_345, 5_000)).toBe(10_000);
    expect(windowStart(-1, 1_000)).toBe(-1_000);
    const t = Date.UTC(2026, 1, 28, 23, 59);
    expect(partitionSpan(t, 'day')).toEqual({
      start: Date.UTC(2026, 1, 28),
      end: Date.UTC(2026, 2, 1),
      suffix: '20260228',
    });
    expect(partitionSpan(t, 'month')).toEqual({
      start: Date.UTC(2026, 1, 1),
      end: Date.UTC(2026, 2, 1),
      suffix: '202602',
    });
    const [r1s] = parseResolutions(['1s'], ['1s=1d']);
    const now = Date.UTC(2026, 2, 10, 12);
    expect(isExpired(r1s!, Date.UTC(2026, 2, 8, 23), now)).toBe(true);
    expect(isExpired(r1s!, Date.UTC(2026, 2, 9, 1), now)).toBe(false);
  });

  it('auto resolution: coarsest with enough points, else finest', () => {
    const r = parseResolutions(['1s', '5s', '1m', '1h']);
    expect(pickResolution(r, 0, 3_600_000, 300).name).toBe('5s');
    expect(pickResolution(r, 0, 3_600_000, 60).name).toBe('1m');
    expect(pickResolution(r, 0, 30 * 86_400_000, 300).name).toBe('1h');
    expect(pickResolution(r, 0, 10_000, 300).name).toBe('1s');
  });

  it('parses API times', () => {
    expect(parseTime('from', '2026-01-01T00:00:00Z')).toBe(Date.UTC(2026, 0, 1));
    expect(parseTime('from', '2026-01-01T01:00:00+01:00')).toBe(Date.UTC(2026, 0, 1));
    expect(parseTime('to', '1700000000000')).toBe(1_700_000_000_000);
    expect(() => parseTime('to', '2026-01-01')).toThrow('to must be');
  });
});

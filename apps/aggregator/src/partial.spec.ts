import { accumulate, mergeInto, single, type CleanMessage, type Partial } from './partial';
import { isExpired, parseResolutions, partitionSpan, windowStart } from './resolutions';
import { pickResolution } from './query';
import { parseTime } from './api';

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
    expect(acc.maxEventTime).toBe(now - 1200);
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

import { isSilent, observe, thresholdMs, type SeriesState, type SilenceParams } from './silence';

const p: SilenceParams = { factor: 5, floorMs: 30_000, timeoutMs: 0, alpha: 0.2, minGaps: 3 };
const S = 1000;

/** Feeds readings one per batch: [eventTime, arrival] pairs. */
function feed(readings: Array<[number, number]>, params = p): SeriesState {
  let s: SeriesState | undefined;
  for (const [t, a] of readings) s = observe(s, [t], a, params);
  return s!;
}

describe('silence rule', () => {
  it('learns the usual interval from event-time gaps', () => {
    const s = feed(Array.from({ length: 20 }, (_, i) => [i * 10 * S, i * 10 * S + 50]));
    expect(s.intervalMs).toBeCloseTo(10 * S, 6);
    expect(s.gaps).toBe(19);
    expect(thresholdMs(s, p)).toBe(50 * S);
  });

  it('is silent only after N × interval without an arrival (floor applies to fast series)', () => {
    const slow = feed(Array.from({ length: 10 }, (_, i) => [i * 60 * S, i * 60 * S]));
    const last = 9 * 60 * S;
    expect(isSilent(slow, last + 299 * S, p)).toBe(false);
    expect(isSilent(slow, last + 301 * S, p)).toBe(true);
    const fast = feed(Array.from({ length: 10 }, (_, i) => [i * S, i * S]));
    expect(thresholdMs(fast, p)).toBe(30 * S);
    expect(isSilent(fast, 9 * S + 29 * S, p)).toBe(false);
    expect(isSilent(fast, 9 * S + 31 * S, p)).toBe(true);
  });

  it('judges nothing before the interval is learned, unless a fixed timeout is set', () => {
    const young = feed([
      [0, 0],
      [S, S],
    ]);
    expect(thresholdMs(young, p)).toBeUndefined();
    expect(isSilent(young, 10_000 * S, p)).toBe(false);
    const fixed = { ...p, timeoutMs: 20 * S };
    expect(thresholdMs(young, fixed)).toBe(20 * S);
    // The fixed timeout also caps a learned threshold.
    const slow = feed(Array.from({ length: 10 }, (_, i) => [i * 60 * S, i * 60 * S]));
    expect(thresholdMs(slow, fixed)).toBe(20 * S);
    expect(thresholdMs(slow, { ...fixed, factor: 0 })).toBe(20 * S);
  });

  it('a backlog upload (old event times arriving now) ends silence and teaches no false interval', () => {
    // 10 s readings for 5 minutes, then offline for an hour, then the hour's backlog in one batch.
    const live = Array.from({ length: 30 }, (_, i) => [i * 10 * S, i * 10 * S] as [number, number]);
    const before = feed(live);
    const offlineAt = 29 * 10 * S;
    const backAt = offlineAt + 3600 * S;
    expect(isSilent(before, backAt - 1, p)).toBe(true);
    const backlog = Array.from({ length: 360 }, (_, i) => offlineAt + (i + 1) * 10 * S);
    const after = observe(before, backlog, backAt, p);
    expect(after.lastArrival).toBe(backAt);
    expect(isSilent(after, backAt + 49 * S, p)).toBe(false);
    expect(after.intervalMs).toBeCloseTo(10 * S, 6);
  });

  it('readings replayed out of order or repeated teach nothing; an outage gap is not learned', () => {
    const s = feed(Array.from({ length: 10 }, (_, i) => [i * 10 * S, i * 10 * S]));
    const replayed = observe(s, [10 * S, 20 * S, 90 * S], 200 * S, p);
    expect(replayed.intervalMs).toBe(s.intervalMs);
    expect(replayed.gaps).toBe(s.gaps);
    expect(replayed.lastArrival).toBe(200 * S);
    // No backlog: the device was off for an hour and reports again.
    const resumed = observe(s, [90 * S + 3600 * S], 90 * S + 3600 * S, p);
    expect(resumed.intervalMs).toBe(s.intervalMs);
  });

  it('several sensors at one event time add no zero gaps to the device series', () => {
    let s: SeriesState | undefined;
    for (let i = 0; i < 10; i++) s = observe(s, [i * 5 * S, i * 5 * S, i * 5 * S], i * 5 * S, p);
    expect(s!.intervalMs).toBeCloseTo(5 * S, 6);
    expect(s!.gaps).toBe(9);
  });
});

import { regionWatermark, type RegionClock } from './watermark';

describe('regionWatermark', () => {
  const o = { allowedLatenessMs: 5_000, idleTimeoutMs: 30_000 };
  const T = Date.UTC(2026, 0, 10, 12);
  const clock = (c: Partial<RegionClock>): RegionClock => ({
    maxEventTime: T,
    idleFloor: 0,
    lastArrival: T,
    ...c,
  });

  it('is the max event time minus the allowed lateness while the region receives data', () => {
    expect(regionWatermark(clock({}), T, o)).toBe(T - 5_000);
    // Wall clock far ahead of the event times, but the last arrival is recent: event time rules.
    expect(regionWatermark(clock({ lastArrival: T + 3_600_000 }), T + 3_600_000 + 29_999, o)).toBe(
      T - 5_000,
    );
  });

  it('advances with the wall clock once nothing has arrived for the idle timeout', () => {
    const c = clock({ lastArrival: T + 1_000 });
    expect(regionWatermark(c, T + 1_000 + 29_999, o)).toBe(T - 5_000);
    expect(regionWatermark(c, T + 31_000, o)).toBe(T + 1_000 - 5_000);
    expect(regionWatermark(c, T + 100_000, o)).toBe(T + 70_000 - 5_000);
  });

  it('never goes below the max event time (devices ahead of the wall clock)', () => {
    const c = clock({ maxEventTime: T + 120_000, lastArrival: T });
    expect(regionWatermark(c, T + 60_000, o)).toBe(T + 120_000 - 5_000);
  });

  it('keeps the idle advance recorded when data resumed', () => {
    // Data resumed at T + 100 s after a quiet spell; the advance then in force was T + 70 s.
    const c = clock({ idleFloor: T + 70_000, lastArrival: T + 100_000 });
    expect(regionWatermark(c, T + 100_500, o)).toBe(T + 70_000 - 5_000);
    expect(regionWatermark({ ...c, maxEventTime: T + 80_000 }, T + 100_500, o)).toBe(
      T + 80_000 - 5_000,
    );
  });

  it('does not advance with the wall clock when idleness is disabled (0)', () => {
    const c = clock({ lastArrival: T });
    expect(regionWatermark(c, T + 86_400_000, { ...o, idleTimeoutMs: 0 })).toBe(T - 5_000);
  });

  it('passes the end E of every window of a quiet region by E + idle timeout + allowed lateness', () => {
    for (const lastEvent of [T, T + 1, T + 999, T + 59_999]) {
      for (const arrivalDelay of [0, 250, 4_000, 29_999]) {
        for (const res of [1_000, 5_000, 60_000]) {
          const end = Math.floor(lastEvent / res) * res + res; // the last window holding data
          const c = clock({ maxEventTime: lastEvent, lastArrival: lastEvent + arrivalDelay });
          const now = Math.max(end, c.lastArrival) + o.idleTimeoutMs + o.allowedLatenessMs;
          expect(regionWatermark(c, now, o)).toBeGreaterThanOrEqual(end);
        }
      }
    }
  });
});

import { backoffDelay, DEFAULT_BACKOFF_MS } from './backoff';

describe('backoffDelay', () => {
  it('follows the schedule by delivery count and repeats the last step', () => {
    const mid = () => 0.5; // no jitter at the midpoint
    expect([1, 2, 3, 5, 9].map((n) => backoffDelay(n, {}, mid))).toEqual([
      DEFAULT_BACKOFF_MS[0],
      DEFAULT_BACKOFF_MS[1],
      DEFAULT_BACKOFF_MS[2],
      DEFAULT_BACKOFF_MS[4],
      DEFAULT_BACKOFF_MS[4],
    ]);
  });
  it('spreads by the jitter fraction', () => {
    expect(backoffDelay(1, { scheduleMs: [1000], jitter: 0.2 }, () => 0)).toBe(800);
    expect(backoffDelay(1, { scheduleMs: [1000], jitter: 0.2 }, () => 1)).toBe(1200);
  });
});

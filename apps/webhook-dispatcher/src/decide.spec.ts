import { decide, isSuccess, type AttemptResult, type Decision, type RetryPolicy } from './decide';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** The default schedule (5s,5m,30m,2h,5h,10h,10h), 10 % jitter, Retry-After capped at 10 h, disable after 5 d. */
const policy: RetryPolicy = {
  retryScheduleMs: [5_000, 5 * MIN, 30 * MIN, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR],
  jitter: 0.1,
  retryAfterMaxMs: 10 * HOUR,
  disableAfterMs: 5 * DAY,
};

const healthy = { failingSince: null };
const failingFor = (ms: number) => ({ failingSince: new Date(NOW - ms) });
/** A random source that returns `x`: 0.5 → no jitter, 0 → the low end, just under 1 → the high end. */
const rnd = (x: number) => () => x;
const timeout: AttemptResult = { error: new Error('request timed out after 10000 ms') };

describe('decide (what the sender does after one POST)', () => {
  const cases: Array<[string, AttemptResult, number, { failingSince: Date | null }, Decision]> = [
    // 2xx acks, whatever the attempt or failure history.
    ['200 on the first attempt', { status: 200 }, 1, healthy, { type: 'ack' }],
    ['204 after failing for days', { status: 204 }, 5, failingFor(4 * DAY), { type: 'ack' }],
    ['299 is a success', { status: 299 }, 1, healthy, { type: 'ack' }],
    [
      '2xx on the last attempt of the schedule',
      { status: 201 },
      8,
      failingFor(DAY),
      { type: 'ack' },
    ],
    [
      '2xx even past the disable period (the endpoint recovered)',
      { status: 200 },
      3,
      failingFor(6 * DAY),
      { type: 'ack' },
    ],
    // 410 disables at once, before any other rule.
    ['410 on the first attempt', { status: 410 }, 1, healthy, { type: 'disable', reason: 'gone' }],
    [
      '410 after the schedule is exhausted',
      { status: 410 },
      8,
      failingFor(DAY),
      { type: 'disable', reason: 'gone' },
    ],
    // Continuous failure beyond disableAfter disables (before exhaustion is considered).
    [
      '500 failing for exactly the disable period',
      { status: 500 },
      2,
      failingFor(5 * DAY),
      { type: 'disable', reason: 'failing', since: new Date(NOW - 5 * DAY) },
    ],
    [
      'timeout failing for longer than the disable period',
      timeout,
      2,
      failingFor(6 * DAY),
      { type: 'disable', reason: 'failing', since: new Date(NOW - 6 * DAY) },
    ],
    [
      'exhausted and failing long enough: disable wins',
      { status: 500 },
      8,
      failingFor(5 * DAY),
      { type: 'disable', reason: 'failing', since: new Date(NOW - 5 * DAY) },
    ],
    // Exhausted: schedule length + 1 attempts.
    [
      '500 on attempt 8 of a 7-delay schedule',
      { status: 500 },
      8,
      failingFor(DAY),
      { type: 'dead', reason: 'exhausted' },
    ],
    ['transport error on attempt 8', timeout, 8, healthy, { type: 'dead', reason: 'exhausted' }],
    [
      '429 with Retry-After on attempt 8 is still exhausted',
      { status: 429, retryAfterMs: 1_000 },
      8,
      failingFor(HOUR),
      { type: 'dead', reason: 'exhausted' },
    ],
    // Retries follow the schedule (no jitter with random = 0.5).
    ['500 on attempt 1 waits 5 s', { status: 500 }, 1, healthy, { type: 'retry', delayMs: 5_000 }],
    [
      'timeout on attempt 2 waits 5 min',
      timeout,
      2,
      failingFor(MIN),
      { type: 'retry', delayMs: 5 * MIN },
    ],
    [
      '404 on attempt 7 waits 10 h',
      { status: 404 },
      7,
      failingFor(DAY),
      { type: 'retry', delayMs: 10 * HOUR },
    ],
    ['3xx is a failure', { status: 302 }, 1, healthy, { type: 'retry', delayMs: 5_000 }],
    ['1xx is a failure', { status: 199 }, 1, healthy, { type: 'retry', delayMs: 5_000 }],
    [
      'failing just under the disable period retries',
      { status: 500 },
      3,
      failingFor(5 * DAY - 1),
      { type: 'retry', delayMs: 30 * MIN },
    ],
    // Retry-After on 429/503: the longer of schedule and (capped) Retry-After; the endpoint pauses for Retry-After.
    [
      '429 with a Retry-After longer than the schedule',
      { status: 429, retryAfterMs: 60_000 },
      1,
      healthy,
      { type: 'retry', delayMs: 60_000, pauseUntilMs: NOW + 60_000 },
    ],
    [
      '503 with a Retry-After shorter than the schedule',
      { status: 503, retryAfterMs: 2_000 },
      2,
      failingFor(MIN),
      { type: 'retry', delayMs: 5 * MIN, pauseUntilMs: NOW + 2_000 },
    ],
    [
      '429 with Retry-After 0',
      { status: 429, retryAfterMs: 0 },
      1,
      healthy,
      { type: 'retry', delayMs: 5_000, pauseUntilMs: NOW },
    ],
    [
      '503 with a Retry-After beyond the cap is capped',
      { status: 503, retryAfterMs: 48 * HOUR },
      1,
      healthy,
      { type: 'retry', delayMs: 10 * HOUR, pauseUntilMs: NOW + 10 * HOUR },
    ],
    [
      '429 without Retry-After follows the schedule',
      { status: 429 },
      1,
      healthy,
      { type: 'retry', delayMs: 5_000 },
    ],
    [
      '500 with Retry-After ignores it (only 429/503)',
      { status: 500, retryAfterMs: 60_000 },
      1,
      healthy,
      { type: 'retry', delayMs: 5_000 },
    ],
  ];

  it.each(cases)('%s', (_name, result, attempt, endpoint, expected) => {
    expect(decide(result, attempt, endpoint, policy, NOW, rnd(0.5))).toEqual(expected);
  });

  it('spreads a retry delay by ± jitter with the injected random source', () => {
    const d = (r: number, jitter = 0.1) =>
      decide({ status: 500 }, 2, healthy, { ...policy, jitter }, NOW, rnd(r));
    expect(d(0)).toEqual({ type: 'retry', delayMs: 270_000 });
    expect(d(1 - 1e-12)).toEqual({ type: 'retry', delayMs: 330_000 });
    expect(d(0.25)).toEqual({ type: 'retry', delayMs: 285_000 });
    expect(d(0, 0)).toEqual({ type: 'retry', delayMs: 300_000 });
    expect(d(1 - 1e-12, 1)).toEqual({ type: 'retry', delayMs: 600_000 });
    // Out-of-range jitter is clamped to 0..1.
    expect(d(0, 2)).toEqual({ type: 'retry', delayMs: 0 });
    for (let i = 0; i < 200; i++) {
      const x = decide({ status: 500 }, 1, healthy, policy, NOW);
      const delay = x.type === 'retry' ? x.delayMs : NaN;
      expect(delay).toBeGreaterThanOrEqual(4_500);
      expect(delay).toBeLessThanOrEqual(5_500);
    }
  });

  it('jitter never shortens a delay below a Retry-After', () => {
    expect(decide({ status: 429, retryAfterMs: 5_000 }, 1, healthy, policy, NOW, rnd(0))).toEqual({
      type: 'retry',
      delayMs: 5_000,
      pauseUntilMs: NOW + 5_000,
    });
    expect(
      decide({ status: 429, retryAfterMs: 5_000 }, 1, healthy, policy, NOW, rnd(1 - 1e-12)),
    ).toEqual({ type: 'retry', delayMs: 5_500, pauseUntilMs: NOW + 5_000 });
  });

  it('a first failure of a healthy endpoint starts the failure run now: disabled only with a zero period', () => {
    expect(
      decide({ status: 500 }, 1, healthy, { ...policy, disableAfterMs: 0 }, NOW, rnd(0.5)),
    ).toEqual({ type: 'disable', reason: 'failing', since: new Date(NOW) });
    expect(
      decide({ status: 500 }, 1, healthy, { ...policy, disableAfterMs: 1 }, NOW, rnd(0.5)).type,
    ).toBe('retry');
  });

  it('a one-delay schedule allows two attempts', () => {
    const one = { ...policy, retryScheduleMs: [300] };
    expect(decide({ status: 500 }, 1, healthy, one, NOW, rnd(0.5))).toEqual({
      type: 'retry',
      delayMs: 300,
    });
    expect(decide({ status: 500 }, 2, healthy, one, NOW, rnd(0.5))).toEqual({
      type: 'dead',
      reason: 'exhausted',
    });
  });

  it('classifies statuses', () => {
    expect([undefined, 0, 199, 200, 226, 299, 300, 410, 500].map(isSuccess)).toEqual([
      false,
      false,
      false,
      true,
      true,
      true,
      false,
      false,
      false,
    ]);
  });
});

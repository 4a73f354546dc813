import { retryDelay, sleepUnlessAborted, withTimeout } from './retry';
import { SinkWriteTimeoutError } from './errors';

describe('retry helpers', () => {
  it('doubles the delay up to the cap, with bounded jitter', () => {
    const mid = () => 0.5;
    expect(
      [1, 2, 3, 4, 10].map((a) => retryDelay(a, { initialMs: 100, maxMs: 1_000 }, mid)),
    ).toEqual([100, 200, 400, 800, 1_000]);
    expect(retryDelay(1, { initialMs: 100 }, () => 0)).toBe(80);
    expect(retryDelay(1, { initialMs: 100 }, () => 1)).toBe(120);
  });

  it('stops sleeping when aborted', async () => {
    const ac = new AbortController();
    const p = sleepUnlessAborted(10_000, ac.signal);
    ac.abort();
    await expect(p).resolves.toBe(false);
    await expect(sleepUnlessAborted(1, new AbortController().signal)).resolves.toBe(true);
  });

  it('times a slow promise out with the given error', async () => {
    await expect(
      withTimeout(new Promise(() => undefined), 10, () => new SinkWriteTimeoutError(10)),
    ).rejects.toThrow(SinkWriteTimeoutError);
    await expect(withTimeout(Promise.resolve(7), 1_000, () => new Error('x'))).resolves.toBe(7);
  });
});

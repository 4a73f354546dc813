/** In-process retry of a failed write, before the messages are handed back to JetStream. */
export interface RetryOptions {
  /** First delay. Default 100 ms. */
  initialMs?: number;
  /** Largest delay (doubling up to it). Default 5 s. */
  maxMs?: number;
  /**
   * Longest time one batch is retried in-process (a passing hiccup); then the destination counts as
   * down: the runner's store gate holds the batch, pulls nothing new (JetStream buffers), probes the
   * destination every 500 ms and writes the batch again as soon as it answers. Default 2 s.
   */
  budgetMs?: number;
}

/** Sleeps `ms` unless `signal` aborts first; resolves `false` when aborted. */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Delays of the in-process retry: doubling from `initialMs`, capped by `maxMs`, ±20 % jitter. */
export function retryDelay(attempt: number, opts: RetryOptions = {}, random = Math.random): number {
  const initial = opts.initialMs ?? 100;
  const max = opts.maxMs ?? 5_000;
  const base = Math.min(max, initial * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Rejects with `onTimeout()` when `p` takes longer than `ms`; `p` keeps running (writes are idempotent). */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

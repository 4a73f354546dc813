/** Redelivery delays by delivery attempt; the last entry repeats. */
export interface BackoffOptions {
  /** Delay after the 1st, 2nd, ... failed delivery. Default `[250, 1000, 5000, 15000, 60000]` ms. */
  scheduleMs?: number[];
  /** Random spread of each delay, as a fraction of it (0..1). Default 0.2. */
  jitter?: number;
}

export const DEFAULT_BACKOFF_MS = [250, 1000, 5000, 15000, 60000];

/** Delay before redelivering a message that failed on delivery number `deliveryCount` (1-based). */
export function backoffDelay(
  deliveryCount: number,
  opts: BackoffOptions = {},
  random = Math.random,
): number {
  const schedule = opts.scheduleMs?.length ? opts.scheduleMs : DEFAULT_BACKOFF_MS;
  const base = schedule[Math.min(Math.max(deliveryCount, 1), schedule.length) - 1]!;
  const jitter = Math.min(Math.max(opts.jitter ?? 0.2, 0), 1);
  return Math.max(0, Math.round(base * (1 - jitter + 2 * jitter * random())));
}

/**
 * Reconnect back-off after `attempt` consecutive failures (from 1): doubling from `initialMs`, capped
 * at `maxMs`, with "equal jitter" (a uniform draw in the upper half) so a fleet that lost its gateway
 * at once does not come back at once.
 */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(cap / 2 + (random() * cap) / 2);
}

/** A back-off the gateway asked for (`retry_after_ms`), plus 0-20 % jitter. */
export function retryAfterDelay(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (1 + 0.2 * random()));
}

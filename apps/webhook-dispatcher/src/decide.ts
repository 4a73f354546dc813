// What the sender does after one POST: a pure function of the result, the attempt number, the
// endpoint's failure state and the retry policy (time and randomness injected), so every branch is
// unit-tested without a network, a clock or a database. The sender carries out the decision.
import type { PostResult } from './http-client';

/** The retry policy of the dispatcher (from its config). */
export interface RetryPolicy {
  /** Delay after the 1st, 2nd, ... failed attempt; exhausted after `length + 1` attempts. */
  retryScheduleMs: readonly number[];
  /** Random spread of each delay, as a fraction of it (0..1). */
  jitter: number;
  /** Cap on an honoured `Retry-After`. */
  retryAfterMaxMs: number;
  /** Continuous failure period after which an endpoint is disabled. */
  disableAfterMs: number;
}

/** What decide needs to know about the endpoint before this result. */
export interface EndpointState {
  /** Start of its current run of failures (no success since); null when it was healthy. */
  failingSince: Date | null;
}

/** The part of a {@link PostResult} a decision depends on. */
export type AttemptResult = Pick<PostResult, 'status' | 'error' | 'retryAfterMs'>;

export type Decision =
  /** 2xx: ack the delivery, the endpoint is healthy. */
  | { readonly type: 'ack' }
  /** Nak the delivery for `delayMs`; with `pauseUntilMs` (Retry-After) the whole endpoint waits until then. */
  | { readonly type: 'retry'; readonly delayMs: number; readonly pauseUntilMs?: number }
  /** Every attempt of the schedule failed: dead-letter the delivery (reason `exhausted`). */
  | { readonly type: 'dead'; readonly reason: 'exhausted' }
  /**
   * Disable the endpoint and dead-letter the delivery: `gone` (it answered 410) or `failing` (no
   * success since `since`, longer than the policy allows).
   */
  | { readonly type: 'disable'; readonly reason: 'gone' | 'failing'; readonly since?: Date };

export const isSuccess = (status: number | undefined): boolean =>
  status !== undefined && status >= 200 && status < 300;

/**
 * Decides the fate of a delivery after attempt number `attempt` (1-based) got `result`, in order:
 * 2xx → ack; 410 → disable (gone); failing without a success for at least `disableAfterMs` →
 * disable (failing); attempts exhausted (`attempt > retryScheduleMs.length`) → dead; otherwise retry
 * after the schedule's delay ± jitter, and for 429/503 with `Retry-After` after at least that
 * (capped by `retryAfterMaxMs`), pausing the endpoint until then.
 *
 * `random` returns [0, 1) like `Math.random`; with 0.5 the delay is exactly the schedule's.
 */
export function decide(
  result: AttemptResult,
  attempt: number,
  endpoint: EndpointState,
  policy: RetryPolicy,
  now: number = Date.now(),
  random: () => number = Math.random,
): Decision {
  const status = result.status;
  if (isSuccess(status)) return { type: 'ack' };
  if (status === 410) return { type: 'disable', reason: 'gone' };
  const since = endpoint.failingSince ?? new Date(now);
  if (now - since.getTime() >= policy.disableAfterMs)
    return { type: 'disable', reason: 'failing', since };
  if (attempt > policy.retryScheduleMs.length) return { type: 'dead', reason: 'exhausted' };
  const base = policy.retryScheduleMs[Math.max(1, attempt) - 1]!;
  const jitter = Math.min(Math.max(policy.jitter, 0), 1);
  const delayMs = Math.round(base * (1 - jitter + 2 * jitter * random()));
  if ((status === 429 || status === 503) && result.retryAfterMs !== undefined) {
    const ra = Math.min(result.retryAfterMs, policy.retryAfterMaxMs);
    return { type: 'retry', delayMs: Math.max(delayMs, ra), pauseUntilMs: now + ra };
  }
  return { type: 'retry', delayMs };
}

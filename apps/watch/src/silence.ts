// The silence rule: every series (a device, or one of its sensors) learns its usual interval from
// the gaps between its event times (EWMA), and is silent when nothing has *arrived* for it for
// max(factor × interval, floor) (capped by, or before learning replaced by, a fixed timeout).
// Event time teaches the interval, arrival time says whether the series is still talking: a backlog
// of old events uploaded late is an arrival (the device is back), never a stale alert.

/** The state of one series, as kept in PostgreSQL. */
export interface SeriesState {
  /** Latest arrival (JetStream store time) of a reading of the series, ms since the epoch. */
  lastArrival: number;
  /** Latest event time seen, ms since the epoch. */
  lastEventTime: number;
  /** Learned usual interval in ms (EWMA of event-time gaps); undefined before the first gap. */
  intervalMs: number | undefined;
  /** Event-time gaps folded into {@link intervalMs}. */
  gaps: number;
}

export interface SilenceParams {
  /** Silent after this many usual intervals; 0 = learned rule off. */
  factor: number;
  /** Smallest learned threshold, ms. */
  floorMs: number;
  /** Fixed timeout, ms; 0 = none. */
  timeoutMs: number;
  /** Weight of a new gap (0..1]. */
  alpha: number;
  /** Gaps seen before the learned interval counts. */
  minGaps: number;
}

/** The silence threshold of a series in ms, or undefined when no rule applies to it yet. */
export function thresholdMs(
  s: Pick<SeriesState, 'intervalMs' | 'gaps'>,
  p: SilenceParams,
): number | undefined {
  const fixed = p.timeoutMs > 0 ? p.timeoutMs : undefined;
  if (p.factor > 0 && s.intervalMs !== undefined && s.gaps >= p.minGaps) {
    const learned = Math.max(p.factor * s.intervalMs, p.floorMs);
    return fixed === undefined ? learned : Math.min(learned, fixed);
  }
  return fixed;
}

/**
 * Folds the readings of one series from one batch into its state: `eventTimes` in any order, and the
 * latest arrival among them. Only event times past the latest one seen teach the interval (a backlog
 * replayed out of order teaches nothing), equal times add no gap, and a gap longer than the current
 * threshold is an outage, not a usual interval, so it is not learned.
 */
export function observe(
  prev: SeriesState | undefined,
  eventTimes: readonly number[],
  arrival: number,
  p: SilenceParams,
): SeriesState {
  const sorted = [...eventTimes].sort((a, b) => a - b);
  let s: SeriesState = prev
    ? { ...prev }
    : { lastArrival: arrival, lastEventTime: sorted[0]!, intervalMs: undefined, gaps: 0 };
  for (const t of prev ? sorted : sorted.slice(1)) {
    if (t <= s.lastEventTime) continue;
    const gap = t - s.lastEventTime;
    s.lastEventTime = t;
    const limit = thresholdMs(s, p);
    if (s.gaps >= p.minGaps && limit !== undefined && gap > limit) continue;
    s.intervalMs = s.intervalMs === undefined ? gap : p.alpha * gap + (1 - p.alpha) * s.intervalMs;
    s.gaps += 1;
  }
  s = { ...s, lastArrival: Math.max(s.lastArrival, arrival) };
  return s;
}

/** Is the series silent at arrival-clock `now`? */
export function isSilent(s: SeriesState, now: number, p: SilenceParams): boolean {
  const limit = thresholdMs(s, p);
  return limit !== undefined && now - s.lastArrival > limit;
}

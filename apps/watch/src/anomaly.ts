// The anomaly rule: a per-(device, sensor) rolling baseline of window averages (EWMA mean and
// variance) and a z-score threshold with a minimum history. Pure: the state is a value that the
// service keeps in PostgreSQL.

/** The baseline of one series. */
export interface Baseline {
  /** EWMA of the window averages. */
  mean: number;
  /** EWMA variance around {@link mean}. */
  variance: number;
  /** Windows folded in so far. */
  n: number;
}

export interface AnomalyParams {
  /** Weight of a new window (0..1]. */
  alpha: number;
  /** |score| at or above which a window is an anomaly. */
  z: number;
  /** Windows in the baseline before any alert. */
  minHistory: number;
  /** Floor of the standard deviation. */
  minStd: number;
}

export interface Judgement {
  /** The baseline after this window. */
  next: Baseline;
  /** The baseline the window was judged against (undefined for a series' first window). */
  before: Baseline | undefined;
  /** (value − mean) / std against {@link before}; undefined without a baseline. */
  score: number | undefined;
  anomalous: boolean;
}

export function std(b: Baseline, minStd: number): number {
  return Math.max(Math.sqrt(Math.max(b.variance, 0)), minStd);
}

/**
 * Judges `value` against `b`, then folds it in. While the history is short the weight is at least
 * 1/(n+1) (a plain mean and variance), so the baseline is not dominated by its first window. An
 * anomalous value enters the baseline clipped to mean ± z·std, so one spike does not widen the band
 * for the windows after it, while a lasting step still moves the baseline (by z·std a window) until
 * it is the new normal.
 */
export function judge(b: Baseline | undefined, value: number, p: AnomalyParams): Judgement {
  if (!b)
    return {
      next: { mean: value, variance: 0, n: 1 },
      before: undefined,
      score: undefined,
      anomalous: false,
    };
  const s = std(b, p.minStd);
  const score = (value - b.mean) / s;
  const anomalous = b.n >= p.minHistory && Math.abs(score) >= p.z;
  const x = anomalous ? b.mean + Math.sign(score) * p.z * s : value;
  const alpha = Math.max(p.alpha, 1 / (b.n + 1));
  const diff = x - b.mean;
  const incr = alpha * diff;
  const next: Baseline = {
    mean: b.mean + incr,
    variance: (1 - alpha) * (b.variance + diff * incr),
    n: b.n + 1,
  };
  return { next, before: b, score, anomalous };
}

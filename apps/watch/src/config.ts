import { bool, durationMs, pgUrl, positiveInt, defineConfig, z } from '@sluice/config';
import { NAME_TOKEN_PATTERN } from '@sluice/contracts';

const fraction = (fallback: number) =>
  z.coerce.number().gt(0, 'must be in (0, 1]').max(1, 'must be in (0, 1]').default(fallback);
const nonNegative = (fallback: number) =>
  z.coerce.number().min(0, 'must be 0 or more').default(fallback);

/** Settings of the watch service (silence and anomaly rules), plus the common NATS/ops/logging variables. */
export const config = defineConfig({
  /** PostgreSQL holding the per-series state (shared name: every service that uses PostgreSQL reads `PG_URL`). Default `postgres://postgres@127.0.0.1:5432/sluice`. */
  PG_URL: pgUrl(),
  /** PostgreSQL pool size. Default 5. */
  WATCH_PG_POOL: positiveInt(5),
  /** Apply pending migrations at start (under an advisory lock). Default `true`. */
  WATCH_MIGRATE_ON_START: bool(true),
  /** Where new consumers start: `new` (only what arrives from now on) or `all` (the retained history). Default `new`. */
  WATCH_START_FROM: z.enum(['new', 'all']).default('new'),

  /** Silence: which series are watched: `device` (any reading of the device), `sensor` (each (device, sensor)), or `both`. Default `both`. */
  WATCH_SILENCE_SCOPE: z.enum(['device', 'sensor', 'both']).default('both'),
  /** Silence: a series is silent after this many times its usual interval (learned per series); 0 turns the learned rule off. Default 5. */
  WATCH_SILENCE_FACTOR: nonNegative(5),
  /** Silence: the learned threshold is never shorter than this. Default 30s. */
  WATCH_SILENCE_FLOOR: durationMs('30s'),
  /**
   * Silence: a fixed timeout: the threshold of a series whose interval is not learned yet (or of all
   * with WATCH_SILENCE_FACTOR=0), and a cap on the learned threshold. 0 = none. Default 0.
   */
  WATCH_SILENCE_TIMEOUT: durationMs(0),
  /** Silence: weight of a new event-time gap in the usual interval (EWMA). Default 0.2. */
  WATCH_SILENCE_ALPHA: fraction(0.2),
  /** Silence: event-time gaps seen before the learned interval is used. Default 3. */
  WATCH_SILENCE_MIN_GAPS: positiveInt(3),
  /** Silence: how often silent series are looked for. Default 1s. */
  WATCH_SWEEP_INTERVAL: durationMs('1s'),
  /**
   * Silence: judge only while at most this many clean messages wait undelivered on the consumer, so
   * a backlog this service has not read yet (after its own downtime) never looks like silence. Default 1000.
   */
  WATCH_SWEEP_MAX_PENDING: positiveInt(1000),
  /** Silence: series judged per sweep transaction. Default 500. */
  WATCH_SWEEP_BATCH: positiveInt(500),

  /** Anomaly: the roll-up resolution the baselines follow; empty turns anomaly rules off. Default `1m`. */
  WATCH_ANOMALY_RESOLUTION: z
    .string()
    .refine(
      (s) => s === '' || NAME_TOKEN_PATTERN.test(s),
      'must be a resolution name like 1m, or empty',
    )
    .default('1m'),
  /** Anomaly: weight of a new window in the EWMA mean and variance (about 2/alpha windows of memory). Default 0.05. */
  WATCH_ANOMALY_ALPHA: fraction(0.05),
  /** Anomaly: |z-score| at or above which a window's average is an anomaly (an EWMA variance has heavier tails than a Gaussian: 4 fires about once in 2000 windows of pure noise at alpha 0.1). Default 5. */
  WATCH_ANOMALY_Z: z.coerce.number().gt(0, 'must be above 0').default(5),
  /** Anomaly: windows in the baseline before any alert. Default 20. */
  WATCH_ANOMALY_MIN_HISTORY: positiveInt(20),
  /** Anomaly: the standard deviation used is at least this (a flat series does not make every change infinite). Default 1e-6. */
  WATCH_ANOMALY_MIN_STD: z.coerce.number().gt(0, 'must be above 0').default(1e-6),
  /**
   * Test only: `sweep-after-publish` SIGKILLs the process after a sweep published its silence alerts
   * and before it committed them (the crash a re-raise with the same ids must absorb). Default none.
   */
  WATCH_FAILPOINT: z.enum(['', 'sweep-after-publish']).default(''),
});
export type Config = z.infer<typeof config>;

// The watch service's names: service, durable consumers, metrics.
export const SERVICE = 'watch';

/** Durable consumers (every replica shares them). */
export const CONSUMERS = {
  clean: 'watch-clean',
  rollups: 'watch-rollups',
} as const;

export const WATCH_METRICS = {
  /** Counter by `kind` (`silence`, `recovery`, `anomaly`): alerts published. */
  alerts: 'sluice_watch_alerts_total',
  /** Counter: sweeps skipped because the clean consumer had a backlog (judging it would raise stale alerts). */
  sweepsDeferred: 'sluice_watch_sweeps_deferred_total',
  /** Counter: roll-up windows not judged because a later window of their series was judged first. */
  windowsSkipped: 'sluice_watch_windows_skipped_total',
  /** Histogram: seconds one sweep took. */
  sweepSeconds: 'sluice_watch_sweep_seconds',
} as const;

-- Silence: one row per watched series, a device (sensor_type = '') or one of its sensors.
CREATE TABLE watch_series (
  device_id text NOT NULL,
  sensor_type text NOT NULL,
  region text NOT NULL,
  last_arrival timestamptz NOT NULL,
  last_event_time timestamptz NOT NULL,
  interval_ms double precision,
  gaps integer NOT NULL DEFAULT 0,
  -- last_arrival + the series' threshold when it was last written; NULL when no rule applies yet.
  due_at timestamptz,
  -- Set while the series is silent: the last arrival before the silence (the episode's start).
  episode_start timestamptz,
  PRIMARY KEY (device_id, sensor_type)
);
CREATE INDEX watch_series_due ON watch_series (due_at) WHERE episode_start IS NULL AND due_at IS NOT NULL;

-- Anomaly: one EWMA baseline per (device, sensor, resolution).
CREATE TABLE watch_baselines (
  device_id text NOT NULL,
  sensor_type text NOT NULL,
  resolution text NOT NULL,
  mean double precision NOT NULL,
  variance double precision NOT NULL,
  n integer NOT NULL,
  -- Start of the latest window folded in: older or equal windows (replays, revisions) are skipped.
  last_window timestamptz NOT NULL,
  PRIMARY KEY (device_id, sensor_type, resolution)
);

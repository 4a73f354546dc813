-- Range rebuilds from the archive (`sluice replay --target aggregator`): replayed batches are merged
-- into staging rows of their rebuild, exactly once per batch; a commit then replaces the windows that
-- lie wholly inside the range with the staged ones, in one transaction.
CREATE TABLE IF NOT EXISTS rebuilds (
  rebuild_id   text        PRIMARY KEY,
  state        text        NOT NULL DEFAULT 'staging' CHECK (state IN ('staging', 'committed')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  committed_at timestamptz,
  result       jsonb
);

-- Replayed batches already staged (their Nats-Msg-Id), per rebuild.
CREATE TABLE IF NOT EXISTS rebuild_applied (
  rebuild_id text NOT NULL REFERENCES rebuilds ON DELETE CASCADE,
  msg_id     text NOT NULL,
  PRIMARY KEY (rebuild_id, msg_id)
);

-- The rebuild's partials, same columns and merge rule as the roll-up rows.
CREATE TABLE IF NOT EXISTS rebuild_cells (
  rebuild_id   text             NOT NULL REFERENCES rebuilds ON DELETE CASCADE,
  resolution   text             NOT NULL,
  scope        smallint         NOT NULL,
  series_key   text             NOT NULL,
  sensor       text             NOT NULL,
  window_start timestamptz      NOT NULL,
  region       text             NOT NULL,
  count        bigint           NOT NULL,
  sum          double precision NOT NULL,
  min          double precision NOT NULL,
  max          double precision NOT NULL,
  first_time   timestamptz      NOT NULL,
  first_value  double precision NOT NULL,
  last_time    timestamptz      NOT NULL,
  last_value   double precision NOT NULL,
  PRIMARY KEY (rebuild_id, resolution, scope, series_key, sensor, window_start)
);

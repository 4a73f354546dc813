-- Roll-up store. `rollups` is list-partitioned by resolution; the service creates one
-- range-partitioned table per configured resolution (rollups_<res>) and its daily or monthly
-- partitions by window start, and drops whole partitions for retention.
CREATE TABLE IF NOT EXISTS rollups (
  resolution   text             NOT NULL,
  scope        smallint         NOT NULL, -- 1 device, 2 region
  series_key   text             NOT NULL, -- device id or region
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
  late_count   bigint           NOT NULL DEFAULT 0,
  revision     integer          NOT NULL DEFAULT 0,     -- last published revision (0 = not yet)
  closed       boolean          NOT NULL DEFAULT false, -- the watermark passed the window end
  dirty        boolean          NOT NULL DEFAULT false, -- changed after closing: a revision is due
  derived      boolean          NOT NULL DEFAULT false,
  updated_at   timestamptz      NOT NULL DEFAULT now(),
  PRIMARY KEY (resolution, scope, series_key, sensor, window_start)
) PARTITION BY LIST (resolution);

-- Windows the closer still has to publish.
CREATE INDEX IF NOT EXISTS rollups_pending ON rollups (resolution, window_start) WHERE (NOT closed OR dirty);

-- Catalog of series: device/sensor listing and the latest value per device.
CREATE TABLE IF NOT EXISTS series (
  scope       smallint         NOT NULL,
  series_key  text             NOT NULL,
  sensor      text             NOT NULL,
  region      text             NOT NULL,
  derived     boolean          NOT NULL DEFAULT false,
  first_seen  timestamptz      NOT NULL DEFAULT now(),
  last_time   timestamptz      NOT NULL,
  last_value  double precision NOT NULL,
  PRIMARY KEY (scope, series_key, sensor)
);

-- Clean messages already merged (exactly-once effect); pruned by applied_at.
CREATE TABLE IF NOT EXISTS applied_messages (
  msg_id     text        PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS applied_messages_applied_at ON applied_messages (applied_at);

-- Shared watermark input: the latest event time any replica has merged.
CREATE TABLE IF NOT EXISTS aggregator_state (
  id             smallint    PRIMARY KEY CHECK (id = 1),
  max_event_time timestamptz NOT NULL DEFAULT 'epoch'
);
INSERT INTO aggregator_state (id) VALUES (1) ON CONFLICT DO NOTHING;

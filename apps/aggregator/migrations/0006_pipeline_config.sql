-- Live pipeline configuration (roll-up resolutions, retention per resolution, derived series): every
-- change is a new full version; replicas apply the newest. Version 1 is seeded from the environment.
CREATE TABLE IF NOT EXISTS pipeline_config (
  version    bigint      PRIMARY KEY CHECK (version > 0),
  document   jsonb       NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  actor      text        NOT NULL,
  -- 'environment' for a version seeded from AGGREGATOR_RESOLUTIONS / _RETENTION / _DERIVED, 'api' otherwise.
  source     text        NOT NULL CHECK (source IN ('environment', 'api'))
);

-- Who changed what: one row per change, and per backfill.
CREATE TABLE IF NOT EXISTS pipeline_config_audit (
  id      bigserial   PRIMARY KEY,
  at      timestamptz NOT NULL DEFAULT now(),
  version bigint      NOT NULL,
  actor   text        NOT NULL,
  action  text        NOT NULL CHECK (action IN ('seed', 'create', 'update', 'delete', 'backfill')),
  kind    text        NOT NULL CHECK (kind IN ('pipeline', 'resolution', 'derived')),
  name    text        NOT NULL,
  before  jsonb,
  after   jsonb
);
CREATE INDEX IF NOT EXISTS pipeline_config_audit_at ON pipeline_config_audit (at);

-- Backfills of a derived series over a range, run in chunks by whichever replica holds the row lock;
-- the cursor is the last (window start, resolution, device) computed, in that order.
CREATE TABLE IF NOT EXISTS derived_backfills (
  backfill_id text        PRIMARY KEY,
  name        text        NOT NULL,
  version     bigint      NOT NULL,
  range_from  timestamptz NOT NULL,
  range_to    timestamptz NOT NULL,
  cursor_ws   timestamptz,
  cursor_res  text,
  cursor_key  text,
  state       text        NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed')),
  windows     bigint      NOT NULL DEFAULT 0,
  rows        bigint      NOT NULL DEFAULT 0,
  actor       text        NOT NULL,
  error       text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS derived_backfills_running ON derived_backfills (created_at) WHERE state = 'running';

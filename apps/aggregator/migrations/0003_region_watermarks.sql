-- Watermark inputs per region (watermark.ts). They replace the single row of aggregator_state,
-- which stays in place, unused, so replicas of the previous version keep working during a rolling
-- upgrade.
CREATE TABLE IF NOT EXISTS region_watermarks (
  region         text        PRIMARY KEY,
  max_event_time timestamptz NOT NULL DEFAULT 'epoch', -- latest event time merged (within the future-skew horizon)
  idle_floor     timestamptz NOT NULL DEFAULT 'epoch', -- idle advance in force when data last resumed
  last_arrival   timestamptz NOT NULL DEFAULT now()    -- PostgreSQL's clock at the last flush with readings of the region
);

-- Every region that has rows starts from the old global max event time; an existing region that
-- never sends again closes its windows once idle.
INSERT INTO region_watermarks (region, max_event_time, last_arrival)
SELECT DISTINCT s.series_key, a.max_event_time, now()
FROM series s CROSS JOIN aggregator_state a
WHERE s.scope = 2
ON CONFLICT (region) DO NOTHING;

-- The closer looks for due windows per region in each resolution's table: one contiguous index range
-- per region (the resolution is the table, so it is not a column of the index).
CREATE INDEX IF NOT EXISTS rollups_pending_region ON rollups (region, window_start) WHERE (NOT closed OR dirty);
DROP INDEX IF EXISTS rollups_pending;

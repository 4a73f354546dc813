-- Span links of a roll-up row (writer.ts, closer.ts): the trace context of up to 32 sampled clean
-- messages merged into the row since its last publish, 25 bytes each (trace id 16, span id 8, trace
-- flags 1); the flush appends, the closer links the Rollup's span to them and clears the column.
-- NULL when none (and always when spans are not exported). Adding a nullable column without a
-- default rewrites nothing; NOT VALID skips scanning the existing rows (all NULL), while every row
-- written from now on is checked, in every partition present and future.
ALTER TABLE rollups ADD COLUMN IF NOT EXISTS trace_links bytea;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'rollups_trace_links_bound' AND conrelid = 'rollups'::regclass) THEN
    ALTER TABLE rollups ADD CONSTRAINT rollups_trace_links_bound
      CHECK (octet_length(trace_links) <= 32 * 25) NOT VALID;
  END IF;
END $$;

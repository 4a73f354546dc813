-- Room for HOT updates in roll-up partitions (see partitions.ts, ROLLUP_FILLFACTOR): partitions
-- created from now on get it at creation; this gives it to those that exist. It applies to pages
-- written from now on.
DO $$
DECLARE p regclass;
BEGIN
  FOR p IN
    SELECT c.oid::regclass FROM pg_class c
    WHERE c.relkind = 'r' AND c.relispartition AND c.relname LIKE 'rollups\_%\_p%'
  LOOP
    EXECUTE format('ALTER TABLE %s SET (fillfactor = 70)', p);
  END LOOP;
END $$;

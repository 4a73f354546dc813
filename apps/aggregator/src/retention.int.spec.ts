import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '@sluice/testing';
import { migrationsDir } from './migrate';
import { ROLLUP_FILLFACTOR } from './partitions';
import type { Aggregator } from './aggregator';
import { harness, unsettled, type Harness } from './test-fixtures/harness';

const DAY = 86_400_000;

describe('retention by dropping partitions', () => {
  let h: Harness;
  let agg: Aggregator;

  beforeAll(async () => {
    h = await harness({ AGGREGATOR_RESOLUTIONS: '1s,1m', AGGREGATOR_RETENTION: '1s=2d,1m=60d' });
    agg = await h.start();
  });
  afterAll(async () => {
    await h.cleanup();
  });

  const partitions = async (parent: string) =>
    (
      await h.sql<{ name: string }>(
        `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1 ORDER BY 1`,
        [parent],
      )
    ).map((r) => r.name);

  it('drops only partitions wholly past their resolution retention, and never stores already-expired readings', async () => {
    const now = Date.now();
    const r1s = agg.resolutions.find((r) => r.name === '1s')!;
    const r1m = agg.resolutions.find((r) => r.name === '1m')!;
    await agg.partitions.ensure([
      { resolution: r1s, start: now - 10 * DAY },
      { resolution: r1s, start: now - 3 * DAY },
      { resolution: r1m, start: now - 120 * DAY },
      { resolution: r1m, start: now - 30 * DAY },
    ]);
    // One reading a day old (kept at both resolutions), one three days old (1s window already expired: skipped at 1s only).
    const fresh = now - DAY;
    const old = now - 3 * DAY;
    await h.publish('raw:R:1', [
      { device: 'dev-r', region: 'eu', sensor: 'temp', t: fresh, value: 1 },
      { device: 'dev-r', region: 'eu', sensor: 'temp', t: old, value: 2 },
    ]);
    await waitFor(
      'applied',
      async () =>
        (await unsettled(h)) === 0 && (await h.sql('SELECT 1 FROM applied_messages')).length === 1,
    );
    const counts = await h.sql<{ resolution: string; n: string }>(
      `SELECT resolution, sum(count) AS n FROM rollups WHERE scope = 1 GROUP BY 1 ORDER BY 1`,
    );
    expect(counts).toEqual([
      { resolution: '1m', n: '2' },
      { resolution: '1s', n: '1' },
    ]);
    const before1s = await partitions('rollups_1s');
    const before1m = await partitions('rollups_1m');

    await agg.maintain(now);

    const day = (t: number) => new Date(t).toISOString().slice(0, 10).replace(/-/g, '');
    const month = (t: number) => new Date(t).toISOString().slice(0, 7).replace(/-/g, '');
    const after1s = await partitions('rollups_1s');
    const after1m = await partitions('rollups_1m');
    expect(before1s).toEqual(
      expect.arrayContaining([
        `rollups_1s_p${day(now - 10 * DAY)}`,
        `rollups_1s_p${day(now - 3 * DAY)}`,
      ]),
    );
    expect(after1s).not.toContain(`rollups_1s_p${day(now - 10 * DAY)}`);
    expect(after1s).not.toContain(`rollups_1s_p${day(now - 3 * DAY)}`);
    expect(after1s).toContain(`rollups_1s_p${day(fresh)}`);
    expect(after1s).toContain(`rollups_1s_p${day(now)}`);
    expect(before1m).toContain(`rollups_1m_p${month(now - 120 * DAY)}`);
    expect(after1m).not.toContain(`rollups_1m_p${month(now - 120 * DAY)}`);
    expect(after1m).toContain(`rollups_1m_p${month(now - 30 * DAY)}`);
    expect(after1m).toContain(`rollups_1m_p${month(old)}`);
    // Dropping removed whole expired partitions only: every stored row is still there.
    expect(
      await h.sql(
        `SELECT resolution, sum(count) AS n FROM rollups WHERE scope = 1 GROUP BY 1 ORDER BY 1`,
      ),
    ).toEqual(counts);
    expect((await agg.metrics.partitionsDropped.get()).values[0]!.value).toBe(
      before1s.length - after1s.length + before1m.length - after1m.length,
    );
  });

  it('prunes applied-message ids older than AGGREGATOR_APPLIED_RETENTION', async () => {
    await h.sql(
      `INSERT INTO applied_messages (msg_id, applied_at) VALUES ('old-1', now() - interval '30 days'), ('new-1', now())`,
    );
    await agg.maintain(Date.now());
    const ids = (
      await h.sql<{ msg_id: string }>('SELECT msg_id FROM applied_messages ORDER BY 1')
    ).map((r) => r.msg_id);
    expect(ids).toContain('new-1');
    expect(ids).not.toContain('old-1');
  });

  it('creates partitions with room for HOT updates, and migration 0002 gives it to older ones', async () => {
    const fillfactor = async (like: string) =>
      (
        await h.sql<{ name: string; opts: string[] | null }>(
          `SELECT relname AS name, reloptions AS opts FROM pg_class WHERE relname LIKE $1 AND relkind = 'r'`,
          [like],
        )
      ).map((r) => [r.name, r.opts]);
    const created = await fillfactor('rollups\\_1s\\_p%');
    expect(created.length).toBeGreaterThan(0);
    for (const [, opts] of created) expect(opts).toContain(`fillfactor=${ROLLUP_FILLFACTOR}`);

    // A partition as the first migration's code made them (no storage option), then the migration.
    await h.sql(
      `CREATE TABLE rollups_1m_p209901 PARTITION OF rollups_1m FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')`,
    );
    expect(await fillfactor('rollups_1m_p209901')).toEqual([['rollups_1m_p209901', null]]);
    await h.sql(readFileSync(join(migrationsDir(), '0002_rollup_fillfactor.sql'), 'utf8'));
    expect(await fillfactor('rollups_1m_p209901')).toEqual([
      ['rollups_1m_p209901', ['fillfactor=70']],
    ]);
    await h.sql('DROP TABLE rollups_1m_p209901');
  });
});

import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { migrationTable, MigrationsPendingError } from '@sluice/pg';
import {
  describeSinkConformance,
  detectionEvent,
  GOLDEN_EVENTS,
  GOLDEN_RECORDS,
  recordsOf,
  telemetryEvent,
} from '@sluice/sinks-core/testing';
import { tcpProxy, testUrls } from '@sluice/testing';
import { MIGRATION_SERVICE } from './migrations';
import { PostgresSink } from './sink';
import { createPgTestSchema, type PgTestSchema } from './testing';

const pgPort = Number(new URL(testUrls.postgres).port || 5432);

/** A device id with a NUL character: the wire protocol carries it, PostgreSQL's text refuses it. */
const NUL_DEVICE = 'dev\u0000nul';

describeSinkConformance('postgres', async () => {
  const db = await createPgTestSchema('conf');
  const proxy = await tcpProxy(pgPort);
  const sink = new PostgresSink({
    url: db.url(proxy.port),
    schema: db.schema,
    connectionTimeoutMs: 1_000,
    poolSize: 2,
  });
  return {
    sink,
    storedIds: () => db.storedIds(),
    outage: { cut: () => proxy.cut(), restore: () => proxy.restore() },
    poisonEvent: (id) => telemetryEvent(id, { deviceId: NUL_DEVICE }),
    async cleanup() {
      await sink.close(Date.now() + 2_000);
      await proxy.close();
      await db.drop();
    },
  };
});

describe('PostgresSink on the real server', () => {
  let db: PgTestSchema;
  let sink: PostgresSink | undefined;
  beforeEach(async () => {
    db = await createPgTestSchema('pgsink');
  });
  afterEach(async () => {
    await sink?.close(Date.now() + 2_000);
    sink = undefined;
    await db.drop();
  });
  const make = (opts: Partial<ConstructorParameters<typeof PostgresSink>[0]> = {}) =>
    (sink = new PostgresSink({ url: db.url(), schema: db.schema, ...opts }));

  it('the server itself refuses a NUL character in text (the poison of the conformance suite)', async () => {
    const c = new Client({ connectionString: testUrls.postgres });
    await c.connect();
    try {
      await expect(c.query('SELECT $1::text', [NUL_DEVICE])).rejects.toMatchObject({
        code: '22021',
      });
    } finally {
      await c.end();
    }
  });

  it('stores the golden records: read back through the views, they equal the golden JSON', async () => {
    const s = make();
    expect((await s.write(recordsOf([...GOLDEN_EVENTS]))).rejected).toEqual([]);
    const byId = new Map((await db.records()).map((r) => [r.event_id, r]));
    expect(GOLDEN_RECORDS.map((g) => byId.get(g.event_id))).toEqual(GOLDEN_RECORDS);
    // The detections are rows of their own, in the frame's order, the box in columns.
    const { rows } = await db.pool.query(
      'SELECT ordinal, label, class_id, confidence, bbox_left FROM detection_objects ORDER BY ordinal',
    );
    expect(rows).toEqual([
      { ordinal: 0, label: 'person', class_id: '1', confidence: 0.91, bbox_left: 0.1 },
      { ordinal: 1, label: 'car', class_id: '3', confidence: 0.55, bbox_left: null },
    ]);
  });

  it('creates the tables by checksummed migrations in its own schema, with indexes on time, stream and class', async () => {
    const s = make();
    await s.connect();
    const table = migrationTable(MIGRATION_SERVICE);
    const applied = await db.pool.query<{ version: number; checksum: string }>(
      `SELECT version, checksum FROM ${table}`,
    );
    expect(applied.rows.map((r) => r.version)).toEqual([1]);
    expect(applied.rows[0]!.checksum).toMatch(/^[0-9a-f]{64}$/);
    const idx = await db.pool.query<{ indexname: string; indexdef: string }>(
      'SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname',
      [db.schema],
    );
    const defs = Object.fromEntries(idx.rows.map((r) => [r.indexname, r.indexdef]));
    expect(defs['detection_objects_label_time']).toMatch(/\(label, frame_time\)/);
    expect(defs['detection_objects_class_time']).toMatch(/\(class_id, frame_time\)/);
    expect(defs['detection_events_stream_time']).toMatch(/\(stream_id, frame_time\)/);
    expect(defs['detection_events_time']).toMatch(/\(frame_time\)/);
    expect(defs['telemetry_events_time']).toMatch(/\(event_time\)/);
    expect(defs['telemetry_events_device_time']).toMatch(/\(device_id, event_time\)/);
    // Nothing leaked into public.
    const leaked = await db.pool.query(
      `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('detection_events', $1)`,
      [table],
    );
    expect(leaked.rows).toEqual([]);

    // "Detections of class X in a time range" is answered from the class index.
    const times = [0, 1, 2].map((m) => new Date(Date.UTC(2026, 10, 1, 12, m)));
    await s.write(recordsOf(times.map((time, i) => detectionEvent(`cls-${i}`, { time }))));
    const c = await db.pool.connect();
    try {
      await c.query('SET enable_seqscan = off');
      const plan = await c.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN SELECT event_id FROM detection_objects WHERE label = 'person' AND frame_time >= $1 AND frame_time < $2`,
        [times[0], times[2]],
      );
      expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(
        /Index (Only )?Scan using detection_objects_label_time |Bitmap Index Scan on detection_objects_label_time/,
      );
      const hits = await c.query(
        `SELECT event_id FROM detection_objects WHERE label = 'person' AND frame_time >= $1 AND frame_time < $2 ORDER BY 1`,
        [times[0], times[2]],
      );
      expect(hits.rows).toEqual([{ event_id: 'cls-0' }, { event_id: 'cls-1' }]);
    } finally {
      c.release();
    }
  });

  it('replicas connecting at once to a fresh schema both start; each migration is applied once', async () => {
    const replicas = [0, 1, 2].map((i) => make({ name: `replica-${i}` }));
    await Promise.all(replicas.map((r) => r.connect()));
    const applied = await db.pool.query(`SELECT version FROM ${migrationTable(MIGRATION_SERVICE)}`);
    expect(applied.rows).toEqual([{ version: 1 }]);
    await Promise.all(replicas.map((r) => r.close(Date.now() + 1_000)));
  });

  it('keeps the first copy of an event and adds no detection rows on redelivery', async () => {
    const s = make();
    await s.write(recordsOf([telemetryEvent('dup-t', { value: 1 }), detectionEvent('dup-d')]));
    const again = [telemetryEvent('dup-t', { value: 2 }), detectionEvent('dup-d')];
    expect((await s.write(recordsOf([...again, ...again], 2))).rejected).toEqual([]);
    const t = await db.pool.query('SELECT value FROM telemetry_events');
    expect(t.rows).toEqual([{ value: 1 }]);
    const o = await db.pool.query('SELECT count(*)::int AS n FROM detection_objects');
    expect(o.rows).toEqual([{ n: 1 }]);
  });

  it('rejects only the rows the server refuses, with its reason, and stores the rest', async () => {
    const s = make();
    const long = detectionEvent('huge-label');
    // Incompressible, so the index entry stays larger than a B-tree page allows.
    if (long.kind?.$case === 'detection')
      long.kind.value.detections[0]!.label = randomBytes(6_000).toString('base64');
    const events = [
      telemetryEvent('ok-1'),
      telemetryEvent('nul', { deviceId: NUL_DEVICE }),
      long,
      telemetryEvent('nan', { value: Number.NaN }),
      detectionEvent('ok-2'),
    ];
    const res = await s.write(recordsOf(events));
    const byIndex = Object.fromEntries(res.rejected.map((r) => [r.index, r.error]));
    expect(Object.keys(byIndex).sort()).toEqual(['1', '2', '3']);
    expect(byIndex[1]!.name).toBe('RowRejectedError');
    expect(byIndex[1]!.message).toMatch(/SQLSTATE 22021.*invalid byte sequence/);
    expect(byIndex[2]!.message).toMatch(/SQLSTATE 54000.*index row/);
    expect(byIndex[3]!.name).toBe('InvalidExportRecordError');
    expect((await db.storedIds()).sort()).toEqual(['ok-1', 'ok-2']);
    expect(s.isRetriable(byIndex[1])).toBe(false);
  });

  it('with migrate off, connect fails retriably until the schema is migrated, then works', async () => {
    const s = make({ migrate: false });
    const err = await s.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MigrationsPendingError);
    expect(s.isRetriable(err)).toBe(true);
    const migrator = new PostgresSink({ url: db.url(), schema: db.schema, name: 'migrator' });
    await migrator.connect();
    await migrator.close(Date.now() + 1_000);
    await s.connect();
    expect((await s.write(recordsOf([telemetryEvent('m-1')]))).rejected).toEqual([]);
  });

  it('validates options up front, naming the option', () => {
    expect(() => new PostgresSink({ url: 'mysql://x' })).toThrow(/url: must be a postgres:\/\//);
    expect(() => new PostgresSink({ url: 'postgres://x', schema: 'Bad-Name' })).toThrow(
      /schema: must be a lowercase identifier/,
    );
    expect(() => new PostgresSink({ url: 'postgres://x', poolSize: 0 })).toThrow(/poolSize/);
    expect(() => new PostgresSink({ url: 'postgres://x', tables: 'x' } as never)).toThrow(/tables/);
    expect(new PostgresSink({ url: 'postgres://x' }).options).toMatchObject({
      schema: 'public',
      migrate: true,
      poolSize: 4,
      name: 'postgres',
    });
  });
});

import { generateToken, sha256Hex } from '@sluice/http';
import { openApiChecker, type OpenApiChecker } from '@sluice/http/testing';
import { waitFor } from '@sluice/testing';
import { Registry } from 'prom-client';
import type { Aggregator } from './aggregator';
import { startApi, type ApiServer } from './api';
import { adminTokens } from './pipeline-admin';
import { harness, logger, unsettled, type Harness, type R } from './test-fixtures/harness';

// Two replicas share the database and the durable; the admin routes are served by the first. The
// configuration changes through the API and both replicas apply it without a restart.
describe('live pipeline configuration', () => {
  let h: Harness;
  let a1: Aggregator;
  let a2: Aggregator;
  let api: ApiServer;
  let checker: OpenApiChecker;
  const reader = generateToken();
  const operator = generateToken();
  // Minutes in the past, aligned: windows of every resolution lie wholly inside the test's ranges.
  const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
  let published = 0;

  beforeAll(async () => {
    h = await harness({
      AGGREGATOR_RESOLUTIONS: '1s,5s',
      AGGREGATOR_RETENTION: '1s=7d,5s=30d',
      AGGREGATOR_CONFIG_POLL: '200ms',
    });
    a1 = await h.start();
    a2 = await h.start();
    api = await startApi({
      port: 0,
      host: '127.0.0.1',
      queries: a1.queries,
      resolutions: () => a1.resolutions,
      defaultPoints: 300,
      maxRangePoints: 100_000,
      maxPage: 5_000,
      tokens: [{ name: 'reader', sha256: reader.sha256, claims: '*' }],
      log: logger,
      registry: new Registry(),
      admin: {
        operators: adminTokens(
          { AGGREGATOR_ADMIN_TOKENS: `${operator.sha256}=alice`, SLUICE_ENV: 'production' },
          logger,
        ),
        store: a1.configStore,
        pipeline: a1.pipeline,
        backfills: a1.backfills,
      },
    });
    checker = await openApiChecker(
      await (await fetch(`http://127.0.0.1:${api.port}/openapi.json`)).json(),
    );
  });
  afterAll(async () => {
    await api.close();
    await h.cleanup();
  });

  /** Calls the API with a token; the response is validated against the served OpenAPI document. */
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    token: string = operator.token,
  ): Promise<{ status: number; body: any }> => {
    const res = await fetch(`http://127.0.0.1:${api.port}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    checker.check({
      method,
      url: path,
      status: res.status,
      contentType: res.headers.get('content-type'),
      text,
    });
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  /** voltage and current of dev-p, one reading of each every 500 ms over [from, from + seconds). */
  const send = async (from: number, seconds: number) => {
    const readings: R[] = [];
    for (let i = 0; i < seconds * 2; i++) {
      const t = from + i * 500;
      readings.push(
        { device: 'dev-p', region: 'eu', sensor: 'voltage', t, value: 200 + (i % 7) },
        { device: 'dev-p', region: 'eu', sensor: 'current', t, value: 1 + (i % 3) },
      );
    }
    for (let i = 0; i < readings.length; i += 40)
      await h.publish(`raw:p:${published++}`, readings.slice(i, i + 40));
    await waitFor(
      'applied',
      async () =>
        (await unsettled(h)) === 0 &&
        (await h.sql('SELECT 1 FROM applied_messages')).length === published,
    );
  };

  /** Expected power per window of `ms`: avg(voltage) × avg(current) of the window's readings. */
  const expectedPower = (from: number, seconds: number, ms: number) => {
    const sums = new Map<number, { v: number; c: number; n: number }>();
    for (let i = 0; i < seconds * 2; i++) {
      const t = from + i * 500;
      const ws = t - (t % ms);
      const s = sums.get(ws) ?? { v: 0, c: 0, n: 0 };
      s.v += 200 + (i % 7);
      s.c += 1 + (i % 3);
      s.n++;
      sums.set(ws, s);
    }
    return new Map([...sums].map(([ws, s]) => [ws, (s.v / s.n) * (s.c / s.n)]));
  };

  const series = async (sensor: string, resolution: string, from: number, to: number) =>
    call(
      'GET',
      `/v1/series?device=dev-p&sensor=${sensor}&resolution=${resolution}&from=${from}&to=${to}&limit=5000`,
      undefined,
      reader.token,
    );

  it('starts from the environment as version 1, and only operator tokens reach it', async () => {
    const current = await call('GET', '/v1/pipeline');
    expect(current.status).toBe(200);
    expect(current.body).toMatchObject({
      version: 1,
      served_version: 1,
      source: 'environment',
      document: {
        resolutions: [
          { name: '1s', retention: '7d' },
          { name: '5s', retention: '30d' },
        ],
        derived: [],
      },
    });
    expect(a2.pipeline.current.version).toBe(1);
    // A query token may not administer; an operator token reads no region's data.
    expect((await call('GET', '/v1/pipeline', undefined, reader.token)).status).toBe(403);
    const put = await call('PUT', '/v1/pipeline/derived/x', { expression: 'a' }, reader.token);
    expect(put.status).toBe(403);
    await send(t0 - 60_000, 1);
    const region = await call(
      'GET',
      `/v1/series?region=eu&sensor=voltage&from=${t0 - 60_000}&to=${t0}`,
      undefined,
      operator.token,
    );
    expect(region.status).toBe(403);
    expect((await call('GET', '/v1/devices', undefined, operator.token)).body.items).toEqual([]);
    expect((await call('GET', '/v1/devices', undefined, reader.token)).body.items).toHaveLength(1);
    expect((await call('GET', '/v1/pipeline', undefined, 'not-a-token')).status).toBe(401);
  });

  it('refuses invalid changes with the expression language errors, storing nothing', async () => {
    const check = await call('POST', '/v1/pipeline/validate', {
      resolutions: [{ name: '7s', retention: '1d' }],
      derived: [
        { name: 'power', expression: 'voltage * ' },
        { name: '9bad', expression: 'a' },
      ],
    });
    expect(check.status).toBe(200);
    expect(check.body.valid).toBe(false);
    const paths = check.body.errors.map((e: { path: string }) => e.path);
    expect(paths).toEqual(
      expect.arrayContaining(['resolutions[0].name', 'derived[0].expression', 'derived[1].name']),
    );
    const expr = check.body.errors.find(
      (e: { path: string }) => e.path === 'derived[0].expression',
    );
    expect(expr.message).toMatch(/unexpected end .*at position 10/);

    const bad = await call('PUT', '/v1/pipeline/derived/power', { expression: 'voltage * (' });
    expect(bad.status).toBe(422);
    expect(bad.body.code).toBe('pipeline_config_invalid');
    expect(bad.body.errors[0].path).toBe('derived[0].expression');
    expect(bad.body.detail).toMatch(/position/);
    const self = await call('PUT', '/v1/pipeline/derived/power', { expression: 'power * 2' });
    expect(self.status).toBe(422);
    expect(self.body.detail).toMatch(/must not read itself/);
    const retention = await call('PUT', '/v1/pipeline/resolutions/1m', { retention: 'forever' });
    expect(retention.status).toBe(422);
    expect(retention.body.errors[0].path).toBe('resolutions[2].retention');
    expect((await call('DELETE', '/v1/pipeline/derived/nothing')).status).toBe(404);
    expect((await call('GET', '/v1/pipeline')).body.version).toBe(1);
  });

  it('a derived metric added through the API appears in query results on both replicas without a restart, and a backfill computes it over the past', async () => {
    // Before: inputs stored, no derived series.
    await send(t0, 20);
    const before = await series('power', '1s', t0, t0 + 60_000);
    expect(before.status).toBe(200);
    expect(before.body.points).toEqual([]);

    const added = await call('PUT', '/v1/pipeline/derived/power', {
      expression: 'voltage * current',
      expected_version: 1,
    });
    expect(added.status).toBe(200);
    expect(added.body).toMatchObject({ version: 2, actor: 'alice', source: 'api' });
    // Each replica serves it within its poll interval; neither restarted.
    await waitFor('both replicas serve version 2', async () =>
      [a1, a2].every((a) => a.pipeline.current.version === 2),
    );

    // New windows: computed as they are written, whichever replica applies them.
    const t1 = t0 + 60_000;
    await send(t1, 20);
    const fresh = await series('power', '1s', t1, t1 + 20_000);
    const want1 = expectedPower(t1, 20, 1_000);
    expect(fresh.body.points).toHaveLength(want1.size);
    for (const p of fresh.body.points) expect(p.avg).toBeCloseTo(want1.get(Date.parse(p.time))!, 9);
    const fresh5 = await series('power', '5s', t1, t1 + 20_000);
    expect(fresh5.body.points).toHaveLength(4);

    // Old windows: only a backfill computes them.
    expect((await series('power', '1s', t0, t0 + 20_000)).body.points).toEqual([]);
    const started = await call('POST', '/v1/pipeline/derived/power/backfills', {
      from: new Date(t0).toISOString(),
      to: String(t0 + 30_000),
    });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ name: 'power', state: 'running', actor: 'alice' });
    let done: any;
    await waitFor('backfill done', async () => {
      done = (await call('GET', `/v1/pipeline/backfills/${started.body.id}`)).body;
      return done.state !== 'running';
    });
    // 20 windows of 1 s and 4 of 5 s.
    expect(done).toMatchObject({ state: 'done', windows: 24, rows: 24, error: null });
    const want0 = expectedPower(t0, 20, 1_000);
    const old = await series('power', '1s', t0, t0 + 20_000);
    expect(old.body.points).toHaveLength(want0.size);
    for (const p of old.body.points) expect(p.avg).toBeCloseTo(want0.get(Date.parse(p.time))!, 9);
    const old5 = await series('power', '5s', t0, t0 + 20_000);
    const want5 = expectedPower(t0, 20, 5_000);
    expect(old5.body.points.map((p: { avg: number }) => p.avg)).toEqual(
      [...want5.values()].map((v) => expect.closeTo(v, 9)),
    );
    // The series catalog lists it as derived.
    const latest = await call('GET', '/v1/devices/dev-p/latest', undefined, reader.token);
    expect(latest.body.sensors).toEqual(
      expect.arrayContaining([expect.objectContaining({ sensor: 'power', derived: true })]),
    );
  });

  it('a backfill left half done by a replica that died is finished by another, from its cursor', async () => {
    // As a runner that died would leave it: running, the cursor after the first 1 s windows.
    await h.sql('DELETE FROM rollups WHERE derived AND window_start < $1', [new Date(t0 + 20_000)]);
    const id = '00000000-0000-4000-8000-000000000001';
    await h.sql(
      `INSERT INTO derived_backfills (backfill_id, name, version, range_from, range_to, cursor_ws, cursor_res, cursor_key, windows, rows, actor, updated_at)
       VALUES ($1, 'power', 2, $2, $3, $4, '1s', 'dev-p', 6, 6, 'alice', now() - interval '1 hour')`,
      [id, new Date(t0), new Date(t0 + 20_000), new Date(t0 + 5_000)],
    );
    await a2.backfills.advance();
    const job = (await call('GET', `/v1/pipeline/backfills/${id}`)).body;
    // 14 more 1 s windows (t0 + 5 s is the cursor's: done) and the four 5 s windows from t0 + 5 s
    // on; the 5 s window at t0 sorts before the cursor, so it stays for the dead runner's share.
    expect(job).toMatchObject({ state: 'done', windows: 6 + 14 + 3, rows: 6 + 14 + 3 });
    const points = (await series('power', '1s', t0, t0 + 20_000)).body.points;
    expect(points.map((p: { time: string }) => Date.parse(p.time))).toEqual(
      Array.from({ length: 14 }, (_, i) => t0 + 6_000 + i * 1_000),
    );
  });

  it('a new resolution is written and served live; a stale expected_version is refused', async () => {
    expect((await series('voltage', '1m', t0, t0 + 600_000)).status).toBe(400);
    const conflict = await call('PUT', '/v1/pipeline/resolutions/1m', {
      retention: '90d',
      expected_version: 1,
    });
    expect(conflict.status).toBe(409);
    const added = await call('PUT', '/v1/pipeline/resolutions/1m', { retention: '90d' });
    expect(added.status).toBe(200);
    expect(added.body.version).toBe(3);
    await waitFor('both replicas serve version 3', async () =>
      [a1, a2].every((a) => a.resolutions.some((r) => r.name === '1m')),
    );
    const t2 = t0 + 120_000;
    await send(t2, 60);
    const minute = await series('voltage', '1m', t2, t2 + 60_000);
    expect(minute.status).toBe(200);
    expect(minute.body.points).toEqual([expect.objectContaining({ count: 120 })]);
    const power = await series('power', '1m', t2, t2 + 60_000);
    expect(power.body.points[0].avg).toBeCloseTo(expectedPower(t2, 60, 60_000).get(t2)!, 9);
    const updated = await call('PUT', '/v1/pipeline/resolutions/1m', { retention: '30d' });
    expect(updated.body.document.resolutions).toContainEqual({ name: '1m', retention: '30d' });
  });

  it('removes a derived series, keeps every version and an audit log of who did what, and a restarted replica serves the stored version over its environment', async () => {
    const removed = await call('DELETE', '/v1/pipeline/derived/power?expected_version=4');
    expect(removed.status).toBe(200);
    expect(removed.body.document.derived).toEqual([]);
    await waitFor('removed on both replicas', async () =>
      [a1, a2].every((a) => a.pipeline.current.derived.length === 0),
    );
    const versions = await call('GET', '/v1/pipeline/versions?limit=10');
    expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual([5, 4, 3, 2, 1]);
    expect((await call('GET', '/v1/pipeline/versions/2')).body.document.derived).toEqual([
      { name: 'power', expression: 'voltage * current' },
    ]);
    expect((await call('GET', '/v1/pipeline/versions/99')).status).toBe(404);
    const audit = await call('GET', '/v1/pipeline/audit?limit=50');
    expect(
      audit.body.items
        .map((e: any) => `${e.version}:${e.actor}:${e.action}:${e.kind}:${e.name}`)
        .reverse(),
    ).toEqual([
      '1:environment:seed:pipeline:pipeline',
      '2:alice:create:derived:power',
      '2:alice:backfill:derived:power',
      '3:alice:create:resolution:1m',
      '4:alice:update:resolution:1m',
      '5:alice:delete:derived:power',
    ]);
    const update = audit.body.items.find((e: any) => e.action === 'update');
    expect(update).toMatchObject({
      before: { name: '1m', retention: '90d' },
      after: { name: '1m', retention: '30d' },
    });

    // A replica started later, with the old environment, serves what the API stored.
    const a3 = await h.start();
    expect(a3.pipeline.current.version).toBe(5);
    expect(a3.resolutions.map((r) => r.name)).toEqual(['1s', '5s', '1m']);
    const stored = await h.sql<{ n: string }>('SELECT count(*) AS n FROM pipeline_config');
    expect(Number(stored[0]!.n)).toBe(5);
    expect(sha256Hex(operator.token)).toBe(operator.sha256);
  });
});

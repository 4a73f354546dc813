import { generateToken } from '@sluice/http';
import { openApiChecker, type OpenApiChecker } from '@sluice/http/testing';
import { waitFor } from '@sluice/testing';
import { Registry } from 'prom-client';
import type { Aggregator } from './aggregator';
import { startApi, type ApiServer } from './api';
import {
  harness,
  logger,
  reference,
  unsettled,
  type Harness,
  type R,
} from './test-fixtures/harness';

describe('query API', () => {
  let h: Harness;
  let agg: Aggregator;
  let api: ApiServer;
  let checker: OpenApiChecker;
  const token = generateToken();
  const t0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3 * 3_600_000;
  const readings: R[] = [];

  beforeAll(async () => {
    h = await harness({
      AGGREGATOR_RESOLUTIONS: '1s,5s,1m,1h',
      AGGREGATOR_DERIVED: 'temp_f = temp * 1.8 + 32',
    });
    agg = await h.start();
    api = await startApi({
      port: 0,
      host: '127.0.0.1',
      queries: agg.queries,
      resolutions: agg.resolutions,
      defaultPoints: 300,
      maxRangePoints: 10_000,
      maxPage: 500,
      tokens: [{ name: 'all', sha256: token.sha256, claims: '*' }],
      log: logger,
      registry: new Registry(),
    });
    checker = await openApiChecker(
      await (await fetch(`http://127.0.0.1:${api.port}/openapi.json`)).json(),
    );
    // One reading every 2 s for 20 minutes for dev-a; a few for dev-b.
    for (let i = 0; i < 600; i++)
      readings.push({
        device: 'dev-a',
        region: 'eu',
        sensor: 'temp',
        t: t0 + i * 2_000,
        value: i % 50,
      });
    readings.push(
      { device: 'dev-b', region: 'eu', sensor: 'temp', t: t0 + 1_000, value: 7 },
      { device: 'dev-b', region: 'eu', sensor: 'rpm', t: t0 + 2_000, value: 900 },
    );
    for (let i = 0; i < readings.length; i += 50)
      await h.publish(`raw:A:${i}`, readings.slice(i, i + 50));
    await waitFor(
      'applied',
      async () =>
        (await unsettled(h)) === 0 &&
        (await h.sql('SELECT 1 FROM applied_messages')).length === Math.ceil(readings.length / 50),
    );
  });
  afterAll(async () => {
    await api.close();
    await h.cleanup();
  });

  // Every response is also validated against the served OpenAPI document.
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${api.port}${path}`, {
      headers: { authorization: `Bearer ${token.token}` },
    });
    const text = await res.text();
    if (path !== '/openapi.json')
      checker.check({
        method: 'GET',
        url: path,
        status: res.status,
        contentType: res.headers.get('content-type'),
        text,
      });
    return {
      status: res.status,
      body: JSON.parse(text) as Record<string, unknown> & {
        points?: Array<Record<string, number | string>>;
        next_cursor?: string | null;
      },
    };
  };
  const iso = (ms: number) => new Date(ms).toISOString();

  it('returns the stored points of a device series, paginated with an opaque cursor', async () => {
    const ref = reference(readings, ['1m']);
    const from = t0;
    const to = t0 + 20 * 60_000;
    const all: Array<Record<string, number | string>> = [];
    let cursor: string | null | undefined;
    let pages = 0;
    do {
      const r = await get(
        `/v1/series?device=dev-a&sensor=temp&from=${iso(from)}&to=${to}&resolution=1m&limit=7${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(r.status).toBe(200);
      expect(r.body.resolution).toBe('1m');
      all.push(...r.body.points!);
      cursor = r.body.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(all).toHaveLength(20);
    for (const p of all) {
      const e = ref.get(`1m|device|dev-a|temp|${Date.parse(p.time as string)}`)!;
      expect(p).toMatchObject({
        count: e.count,
        min: e.min,
        max: e.max,
        first: e.first,
        last: e.last,
      });
      expect(p.avg).toBeCloseTo(e.sum / e.count, 9);
    }
  });

  it('picks the coarsest resolution that still gives the requested points', async () => {
    const q = (from: number, to: number, points?: number) =>
      get(
        `/v1/series?device=dev-a&sensor=temp&from=${from}&to=${to}${points ? `&points=${points}` : ''}`,
      );
    expect((await q(t0, t0 + 20 * 60_000)).body.resolution).toBe('1s'); // 1200 s: 240 windows of 5 s < 300
    expect((await q(t0, t0 + 20 * 60_000, 200)).body.resolution).toBe('5s');
    expect((await q(t0, t0 + 20 * 60_000, 20)).body.resolution).toBe('1m');
    expect((await q(t0, t0 + 30 * 86_400_000, 300)).body.resolution).toBe('1h');
    const region = await get(
      `/v1/series?region=eu&sensor=temp&from=${t0}&to=${t0 + 3_600_000}&resolution=1h`,
    );
    expect(region.body.points).toHaveLength(1);
    expect(region.body.points![0]!.count).toBe(601);
  });

  it('rejects bad parameters with a 400 naming the parameter', async () => {
    const bad = async (qs: string, parameter: string) => {
      const r = await get(`/v1/series?${qs}`);
      expect(r.status).toBe(400);
      // problem+json (RFC 9457) since the move to @sluice/http: `parameter` is top-level.
      expect(r.body.parameter).toBe(parameter);
    };
    await bad(`sensor=temp&from=${t0}&to=${t0 + 1000}`, 'device');
    await bad(`device=a&region=eu&sensor=temp&from=${t0}&to=${t0 + 1000}`, 'region');
    await bad(`device=dev-a&from=${t0}&to=${t0 + 1000}`, 'sensor');
    await bad(`device=dev-a&sensor=temp&from=yesterday&to=${t0}`, 'from');
    await bad(`device=dev-a&sensor=temp&from=${t0}&to=${t0}`, 'to');
    await bad(
      `device=dev-a&sensor=temp&from=${t0}&to=${t0 + 86_400_000}&resolution=1s`,
      'resolution',
    );
    await bad(`device=dev-a&sensor=temp&from=${t0}&to=${t0 + 1000}&resolution=2s`, 'resolution');
    await bad(`device=dev-a&sensor=temp&from=0&to=${t0}&points=300`, 'from');
    await bad(`device=dev-a&sensor=temp&from=${t0}&to=${t0 + 1000}&limit=100000`, 'limit');
    await bad(`device=dev-a&sensor=temp&from=${t0}&to=${t0 + 1000}&cursor=nope`, 'cursor');
    const other = await get(
      `/v1/series?device=dev-a&sensor=temp&from=${t0}&to=${t0 + 20 * 60_000}&resolution=1m&limit=1`,
    );
    await bad(
      `device=dev-b&sensor=temp&from=${t0}&to=${t0 + 20 * 60_000}&resolution=1m&cursor=${other.body.next_cursor}`,
      'cursor',
    );
  });

  it('lists devices with sensors and returns the latest values, including derived series', async () => {
    const list = await get('/v1/devices?limit=1');
    expect(list.body.items).toEqual([{ id: 'dev-a', region: 'eu', sensors: ['temp', 'temp_f'] }]);
    const next = await get(`/v1/devices?limit=1&cursor=${list.body.next_cursor}`);
    expect(next.body).toEqual({
      items: [{ id: 'dev-b', region: 'eu', sensors: ['rpm', 'temp', 'temp_f'] }],
      next_cursor: null,
    });
    const latest = await get('/v1/devices/dev-a/latest');
    const last = readings.filter((r) => r.device === 'dev-a').at(-1)!;
    expect(latest.body.sensors).toEqual([
      { sensor: 'temp', region: 'eu', value: last.value, time: iso(last.t), derived: false },
      {
        sensor: 'temp_f',
        region: 'eu',
        value: last.value * 1.8 + 32,
        time: iso(last.t),
        derived: true,
      },
    ]);
    expect((await get('/v1/devices/nobody/latest')).status).toBe(404);
  });

  it('serves its OpenAPI 3.1 document', async () => {
    const doc = await get('/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths as object)).toEqual(
      expect.arrayContaining(['/v1/series', '/v1/devices', '/v1/devices/{device}/latest']),
    );
  });
});

// The query API's access control and its OpenAPI contract: tokens carry regions; every response of
// every route (success and error) is validated against the served document with openapi-backend.
import { loadConfig } from '@sluice/config';
import { ConfigError } from '@sluice/errors';
import { generateToken, sha256Hex } from '@sluice/http';
import { fetchChecked, openApiChecker, type OpenApiChecker } from '@sluice/http/testing';
import { waitFor } from '@sluice/testing';
import { Registry } from 'prom-client';
import type { Aggregator } from './aggregator';
import { apiTokens, startApi, type ApiServer } from './api';
import { config } from './config';
import { harness, logger, unsettled, type Harness, type R } from './test-fixtures/harness';

describe('query API access control', () => {
  let h: Harness;
  let agg: Aggregator;
  let api: ApiServer;
  let base: string;
  let checker: OpenApiChecker;
  const all = generateToken();
  const eu = generateToken();
  const euUs = generateToken();
  const t0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000;
  const readings: R[] = [
    { device: 'dev-eu-1', region: 'eu', sensor: 'temp', t: t0 + 1_000, value: 1 },
    { device: 'dev-eu-2', region: 'eu', sensor: 'temp', t: t0 + 2_000, value: 2 },
    { device: 'dev-us-1', region: 'us', sensor: 'temp', t: t0 + 3_000, value: 3 },
    { device: 'dev-ap-1', region: 'ap', sensor: 'rpm', t: t0 + 4_000, value: 4 },
  ];

  beforeAll(async () => {
    h = await harness({ AGGREGATOR_RESOLUTIONS: '1s,1m,1h' });
    agg = await h.start();
    const config = h.config({
      AGGREGATOR_API_TOKENS: `${all.sha256}=*;${eu.sha256}=eu;${euUs.sha256}=eu|us`,
    });
    api = await startApi({
      port: 0,
      queries: agg.queries,
      resolutions: agg.resolutions,
      defaultPoints: 300,
      maxRangePoints: 10_000,
      maxPage: 500,
      tokens: apiTokens(config, logger),
      requestTimeoutMs: config.AGGREGATOR_API_REQUEST_TIMEOUT,
      log: logger,
      registry: new Registry(),
    });
    base = `http://127.0.0.1:${api.port}`;
    // One clean message per region (the harness publishes a message on its first reading's region).
    for (const r of readings) await h.publish(`acc:${r.device}`, [r]);
    await waitFor(
      'applied',
      async () =>
        (await unsettled(h)) === 0 &&
        (await h.sql('SELECT 1 FROM applied_messages')).length === readings.length,
    );
    checker = await openApiChecker(await (await fetch(`${base}/openapi.json`)).json());
  });
  afterAll(async () => {
    await api?.close();
    await h?.cleanup();
  });

  const get = (path: string, token?: string) =>
    fetchChecked(
      checker,
      base,
      path,
      token ? { headers: { authorization: `Bearer ${token}` } } : {},
    );
  const range = `from=${t0}&to=${t0 + 3_600_000}&resolution=1h`;

  it('binds to 127.0.0.1 by default and serves /openapi.json without a token', async () => {
    const res = await fetch(`${base}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      security: unknown;
      paths: Record<string, unknown>;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/v1/devices',
      '/v1/devices/{device}/latest',
      '/v1/regions',
      '/v1/series',
      '/v1/stream',
    ]);
  });

  it('answers 401 problem+json without a token or with a wrong one, on every route', async () => {
    for (const path of [
      '/v1/devices',
      '/v1/regions',
      `/v1/series?region=eu&sensor=temp&${range}`,
      '/v1/devices/dev-eu-1/latest',
      '/v1/stream?resolution=1h',
    ]) {
      for (const token of [undefined, 'wrong-token', eu.sha256]) {
        const r = await get(path, token);
        expect(r.status).toBe(401);
        expect(r.body).toMatchObject({ status: 401, code: 'unauthorized' });
        expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
      }
    }
  });

  it('filters the listings to the token’s regions', async () => {
    const ids = async (path: string, token: string) =>
      ((await get(path, token)).body.items as Array<{ id: string }>).map((i) => i.id);
    expect(await ids('/v1/devices', all.token)).toEqual([
      'dev-ap-1',
      'dev-eu-1',
      'dev-eu-2',
      'dev-us-1',
    ]);
    expect(await ids('/v1/devices', eu.token)).toEqual(['dev-eu-1', 'dev-eu-2']);
    expect(await ids('/v1/devices', euUs.token)).toEqual(['dev-eu-1', 'dev-eu-2', 'dev-us-1']);
    expect(await ids('/v1/regions', all.token)).toEqual(['ap', 'eu', 'us']);
    expect(await ids('/v1/regions', eu.token)).toEqual(['eu']);
    // Paging stays within the filter.
    const first = await get('/v1/devices?limit=1', euUs.token);
    expect(first.body.items).toEqual([{ id: 'dev-eu-1', region: 'eu', sensors: ['temp'] }]);
    const second = await get(`/v1/devices?limit=2&cursor=${first.body.next_cursor}`, euUs.token);
    expect(second.body).toEqual({
      items: [
        { id: 'dev-eu-2', region: 'eu', sensors: ['temp'] },
        { id: 'dev-us-1', region: 'us', sensors: ['temp'] },
      ],
      next_cursor: null,
    });
  });

  it('answers 403 for a device or region outside the token’s regions, and serves those inside', async () => {
    const series = (q: string, token: string) => get(`/v1/series?${q}&${range}`, token);
    expect((await series('device=dev-eu-1&sensor=temp', eu.token)).body.points).toHaveLength(1);
    expect((await series('region=eu&sensor=temp', eu.token)).body.points[0].count).toBe(2);
    for (const q of [
      'device=dev-us-1&sensor=temp',
      'region=us&sensor=temp',
      'device=nobody&sensor=temp',
    ]) {
      const r = await series(q, eu.token);
      expect(r.status).toBe(403);
      expect(r.body).toMatchObject({ status: 403, code: 'forbidden' });
    }
    expect((await series('device=dev-us-1&sensor=temp', euUs.token)).status).toBe(200);
    expect((await series('device=dev-ap-1&sensor=rpm', all.token)).status).toBe(200);

    expect((await get('/v1/devices/dev-eu-2/latest', eu.token)).body.sensors).toEqual([
      {
        sensor: 'temp',
        region: 'eu',
        value: 2,
        time: new Date(t0 + 2_000).toISOString(),
        derived: false,
      },
    ]);
    expect((await get('/v1/devices/dev-us-1/latest', eu.token)).status).toBe(403);
    // An unknown device: 404 for a token of every region, 403 for a restricted one (no existence oracle).
    expect((await get('/v1/devices/nobody/latest', all.token)).status).toBe(404);
    expect((await get('/v1/devices/nobody/latest', eu.token)).status).toBe(403);
  });

  it('validates parameters before reading: 400 problem+json naming the parameter', async () => {
    const r = await get(
      `/v1/series?device=dev-eu-1&sensor=temp&from=${t0}&to=${t0 + 1000}&limit=0`,
      eu.token,
    );
    expect(r.body).toMatchObject({ status: 400, code: 'invalid_parameter', parameter: 'limit' });
    expect((await get('/v1/devices?limit=9999', eu.token)).body.parameter).toBe('limit');
    expect((await get('/v1/regions?cursor=nope', eu.token)).body.parameter).toBe('cursor');
    expect((await get(`/v1/devices/${'x'.repeat(200)}/latest`, eu.token)).body.parameter).toBe(
      'device',
    );
  });

  it('exercised every route with its success and error responses, each validated', () => {
    expect([...checker.seen].sort()).toEqual(
      expect.arrayContaining([
        'GET /v1/devices 200',
        'GET /v1/devices 400',
        'GET /v1/devices 401',
        'GET /v1/regions 200',
        'GET /v1/regions 400',
        'GET /v1/regions 401',
        'GET /v1/series 200',
        'GET /v1/series 400',
        'GET /v1/series 401',
        'GET /v1/series 403',
        'GET /v1/devices/{device}/latest 200',
        'GET /v1/devices/{device}/latest 400',
        'GET /v1/devices/{device}/latest 401',
        'GET /v1/devices/{device}/latest 403',
        'GET /v1/devices/{device}/latest 404',
      ]),
    );
  });
});

describe('query API tokens from configuration', () => {
  it('refuses to start in production without tokens', () => {
    expect(() =>
      apiTokens({ AGGREGATOR_API_TOKENS: '', SLUICE_ENV: 'production' }, logger),
    ).toThrow(ConfigError);
    expect(() =>
      apiTokens({ AGGREGATOR_API_TOKENS: '', SLUICE_ENV: 'production' }, logger),
    ).toThrow(/AGGREGATOR_API_TOKENS/);
  });

  it('generates one development token for every region elsewhere', () => {
    const t = apiTokens({ AGGREGATOR_API_TOKENS: '', SLUICE_ENV: 'development' }, logger);
    expect(t).toHaveLength(1);
    expect(t[0]).toMatchObject({ name: 'development', claims: '*' });
  });

  it('refuses a malformed AGGREGATOR_API_TOKENS when the configuration is loaded', () => {
    expect(() => loadConfig(config, { AGGREGATOR_API_TOKENS: 'my-secret-token=eu' })).toThrow(
      /AGGREGATOR_API_TOKENS: entry 1/,
    );
    expect(loadConfig(config, {}).AGGREGATOR_API_HOST).toBe('127.0.0.1');
  });

  it('takes the configured hashes with their regions', () => {
    const h = sha256Hex('a-token');
    expect(
      apiTokens({ AGGREGATOR_API_TOKENS: `${h}=eu|us`, SLUICE_ENV: 'production' }, logger),
    ).toEqual([{ name: 'token-1', sha256: h, claims: new Set(['eu', 'us']) }]);
  });
});

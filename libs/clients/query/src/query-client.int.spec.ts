// The generated query client against the real aggregator, run as its own process: readings go in
// through the clean stream, and every answer and error comes back through the client.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTENT_TYPES, encodeBatch, topology, type Event } from '@sluice/contracts';
import { sha256Hex } from '@sluice/http';
import { publishDurable } from '@sluice/jetstream';
import {
  createTestDatabase,
  freePort,
  natsFixture,
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { ApiProblemError, ApiTransportError, createQueryClient, type QueryClient } from './index';

const EU_TOKEN = `eu-${uniqueId('tok')}-reader`;
const ALL_TOKEN = `all-${uniqueId('tok')}-reader`;

interface Reading {
  device: string;
  region: string;
  t: number;
  value: number;
}

describe('@sluice/query-client against the aggregator', () => {
  let nats: NatsFixture;
  let db: PgDatabase;
  let aggregator: ChildService;
  let baseUrl: string;
  let eu: QueryClient;
  let all: QueryClient;
  // Whole minutes in the recent past: inside every resolution's retention.
  const base = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
  const readings: Reading[] = [
    ...Array.from({ length: 7 }, (_, i) => ({
      device: 'dev-a',
      region: 'eu',
      t: base + i * 1000,
      value: i + 0.5,
    })),
    { device: 'dev-b', region: 'eu', t: base + 2000, value: 40 },
    { device: 'dev-c', region: 'us', t: base + 3000, value: -3 },
  ];

  beforeAll(async () => {
    nats = await natsFixture();
    db = await createTestDatabase('qclient');
    const namespace = uniqueId('qclient');
    const topo = topology(namespace);
    for (const s of Object.values(topo.streams)) nats.track(s.name);
    await nats.jsm.streams.add({
      name: topo.streams.clean.name,
      subjects: [...topo.streams.clean.subjects],
    });
    aggregator = spawnService('apps/aggregator/src/main.ts', {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: namespace,
      PG_URL: db.url,
      AGGREGATOR_FLUSH_INTERVAL: '100ms',
      AGGREGATOR_CLOSE_INTERVAL: '200ms',
      AGGREGATOR_PG_POOL: '4',
      AGGREGATOR_API_PORT: '0',
      AGGREGATOR_API_TOKENS: `${sha256Hex(EU_TOKEN)}=eu;${sha256Hex(ALL_TOKEN)}=*`,
      OPS_PORT: '0',
      OTEL_SDK_DISABLED: 'true',
      LOG_LEVEL: 'info',
    });
    const running = await aggregator.waitForLine(/aggregator running/, 60_000);
    const { apiPort } = JSON.parse(running) as { apiPort: number };
    baseUrl = `http://127.0.0.1:${apiPort}`;
    eu = createQueryClient({ baseUrl, token: EU_TOKEN });
    all = createQueryClient({ baseUrl, token: () => ALL_TOKEN });

    for (const region of ['eu', 'us']) {
      const events: Event[] = readings
        .filter((r) => r.region === region)
        .map((r, i) => ({
          kind: {
            $case: 'telemetry',
            value: {
              eventId: `${region}-${i}`,
              deviceId: r.device,
              eventTime: new Date(r.t),
              sensorType: 'temp',
              value: r.value,
              unit: 'C',
              firmwareVersion: '',
              region,
              schemaVersion: 0,
              attributes: {},
            },
          },
        }));
      const id = `batch-${region}`;
      await publishDurable(nats.js, topo.clean(region), encodeBatch({ batchId: id, events }), {
        msgId: id,
        contentType: CONTENT_TYPES.EVENT_BATCH,
      });
    }
    await waitFor(
      'every reading stored',
      async () => {
        const page = await all.series({
          region: 'eu',
          sensor: 'temp',
          from: new Date(base).toISOString(),
          to: new Date(base + 60_000).toISOString(),
          resolution: '1m',
        });
        const us = await all.series({
          region: 'us',
          sensor: 'temp',
          from: String(base),
          to: String(base + 60_000),
          resolution: '1m',
        });
        return page.points[0]?.count === 8 && us.points[0]?.count === 1;
      },
      { timeoutMs: 60_000 },
    );
  }, 120_000);

  afterAll(async () => {
    if (aggregator) {
      aggregator.kill('SIGTERM');
      await aggregator.exited;
    }
    await nats?.cleanup();
    await db?.drop();
  });

  it('serves the OpenAPI document the client was generated from', async () => {
    const served = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as unknown;
    const committed = JSON.parse(
      readFileSync(join(__dirname, '..', 'openapi.json'), 'utf8'),
    ) as unknown;
    expect(served).toEqual(committed);
  });

  it('reads a device series page by page, and the same points in one page', async () => {
    const query = {
      device: 'dev-a',
      sensor: 'temp',
      from: new Date(base).toISOString(),
      to: new Date(base + 10_000).toISOString(),
      resolution: '1s' as const,
    };
    const paged = [];
    for await (const p of eu.seriesPoints({ ...query, limit: 3 })) paged.push(p);
    expect(paged.map((p) => [Date.parse(p.time) - base, p.count, p.sum])).toEqual(
      readings.filter((r) => r.device === 'dev-a').map((r) => [r.t - base, 1, r.value]),
    );
    const first = await eu.series({ ...query, limit: 3 });
    expect(first.points).toHaveLength(3);
    expect(first.next_cursor).not.toBeNull();
    const whole = await eu.series(query);
    expect(whole.next_cursor).toBeNull();
    expect(whole.points).toEqual(paged);
    expect(whole).toMatchObject({ scope: 'device', device: 'dev-a', resolution: '1s' });
  });

  it('aggregates a region at a coarser resolution', async () => {
    const page = await eu.series({
      region: 'eu',
      sensor: 'temp',
      from: new Date(base).toISOString(),
      to: new Date(base + 60_000).toISOString(),
      resolution: '1m',
    });
    const values = readings.filter((r) => r.region === 'eu').map((r) => r.value);
    expect(page.points).toHaveLength(1);
    expect(page.points[0]).toMatchObject({
      count: values.length,
      min: Math.min(...values),
      max: Math.max(...values),
    });
    expect(page.points[0]!.sum).toBeCloseTo(
      values.reduce((a, b) => a + b, 0),
      9,
    );
  });

  it('lists only the devices and regions of the token, following cursors', async () => {
    const euDevices = [];
    for await (const d of eu.allDevices({ limit: 1 })) euDevices.push(d);
    expect(euDevices).toEqual([
      { id: 'dev-a', region: 'eu', sensors: ['temp'] },
      { id: 'dev-b', region: 'eu', sensors: ['temp'] },
    ]);
    const regions = [];
    for await (const r of all.allRegions()) regions.push(r.id);
    expect(regions.sort()).toEqual(['eu', 'us']);
    const euRegions = await eu.regions();
    expect(euRegions.items.map((r) => r.id)).toEqual(['eu']);
  });

  it('gives the latest value of every sensor of a device', async () => {
    const latest = await eu.latest('dev-a');
    expect(latest.device).toBe('dev-a');
    expect(latest.sensors).toEqual([
      expect.objectContaining({ sensor: 'temp', region: 'eu', value: 6.5, derived: false }),
    ]);
    expect(Date.parse(latest.sensors[0]!.time)).toBe(base + 6000);
  });

  it('turns problem+json answers into typed errors', async () => {
    const forbidden = await eu
      .series({
        device: 'dev-c',
        sensor: 'temp',
        from: String(base),
        to: String(base + 60_000),
      })
      .catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(ApiProblemError);
    expect(forbidden).toMatchObject({
      status: 403,
      code: 'forbidden',
      retriable: false,
      operation: 'GET /v1/series',
    });

    const invalid = (await eu
      .series({ region: 'eu', sensor: 'temp', from: String(base + 1000), to: String(base) })
      .catch((e: unknown) => e)) as ApiProblemError;
    expect(invalid).toBeInstanceOf(ApiProblemError);
    expect([invalid.status, invalid.code, invalid.problem.parameter]).toEqual([
      400,
      'invalid_parameter',
      'to',
    ]);
    expect(invalid.problem.detail).toBe('to must be later than from');

    const missing = (await all
      .latest('no-such-device')
      .catch((e: unknown) => e)) as ApiProblemError;
    expect([missing.status, missing.code]).toEqual([404, 'not_found']);

    const stranger = createQueryClient({ baseUrl, token: 'not-a-configured-token' });
    const unauthorized = (await stranger.regions().catch((e: unknown) => e)) as ApiProblemError;
    expect(unauthorized).toBeInstanceOf(ApiProblemError);
    expect([unauthorized.status, unauthorized.code]).toEqual([401, 'unauthorized']);
  });

  it('reports an API that does not answer as a retriable transport error', async () => {
    const gone = createQueryClient({
      baseUrl: `http://127.0.0.1:${await freePort()}`,
      token: EU_TOKEN,
    });
    const err = (await gone.regions().catch((e: unknown) => e)) as ApiTransportError;
    expect(err).toBeInstanceOf(ApiTransportError);
    expect([err.code, err.retriable, err.operation]).toEqual([
      'api_unreachable',
      true,
      'GET /v1/regions',
    ]);
  });
});

// Shared setup of the aggregator's integration tests: a unique namespace (streams, subjects) and
// database per test file, in-process aggregators on their own NATS connections, a data generator and
// an independent reference computation of the roll-ups.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { publishDurable } from '@sluice/jetstream';
import { loadConfig } from '@sluice/config';
import { CONTENT_TYPES, encodeBatch, topology, type Event, type Topology } from '@sluice/contracts';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import {
  createTestDatabase,
  groupByRollupCell,
  natsFixture,
  testUrls,
  uniqueId,
  type NatsFixture,
  type PgDatabase,
  rng,
} from '@sluice/testing';
import { Client } from 'pg';
import { Registry } from 'prom-client';
import { Aggregator } from '../aggregator';
import { config, type Config } from '../config';

export const logger = createLogger({
  service: 'aggregator-test',
  level: process.env['TEST_LOG_LEVEL'] ?? 'silent',
  hashDeviceId: createDeviceHasher('test-key-0123456789'),
});

/** A reading as the tests generate it. */
export interface R {
  device: string;
  region: string;
  sensor: string;
  t: number;
  value: number;
}

export interface Harness {
  nats: NatsFixture;
  db: PgDatabase;
  namespace: string;
  topo: Topology;
  env: Record<string, string>;
  config(overrides?: Record<string, string>): Config;
  /** Starts an in-process aggregator on its own NATS connection. */
  start(overrides?: Record<string, string>): Promise<Aggregator>;
  /** Publishes one clean message (the readings, plus `detections` detection events) with `Nats-Msg-Id` `id`. */
  publish(id: string, readings: R[], detections?: number): Promise<void>;
  sql<T extends Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  cleanup(): Promise<void>;
}

export async function harness(baseEnv: Record<string, string> = {}): Promise<Harness> {
  const nats = await natsFixture();
  const db = await createTestDatabase('agg');
  const namespace = uniqueId('agg');
  const topo = topology(namespace);
  for (const s of Object.values(topo.streams)) nats.track(s.name);
  const env: Record<string, string> = {
    NATS_URL: testUrls.nats,
    SLUICE_NAMESPACE: namespace,
    PG_URL: db.url,
    AGGREGATOR_FLUSH_INTERVAL: '100ms',
    AGGREGATOR_CLOSE_INTERVAL: '200ms',
    AGGREGATOR_PG_POOL: '4',
    OPS_PORT: '0',
    AGGREGATOR_API_PORT: '0',
    OTEL_SDK_DISABLED: 'true',
    ...baseEnv,
  };
  const pg = new Client({ connectionString: db.url });
  await pg.connect();
  const aggregators: Aggregator[] = [];
  const conns: NatsConnection[] = [];
  // Stream exists before the first publish; the aggregator provisions the same spec (name + subjects).
  await nats.jsm.streams.add({
    name: topo.streams.clean.name,
    subjects: [...topo.streams.clean.subjects],
  });
  const h: Harness = {
    nats,
    db,
    namespace,
    topo,
    env,
    config: (overrides = {}) => loadConfig(config as never, { ...env, ...overrides }) as Config,
    async start(overrides = {}) {
      const nc = await connect({ servers: testUrls.nats, name: 'aggregator-test' });
      conns.push(nc);
      const a = new Aggregator({
        nc,
        topology: topo,
        config: h.config(overrides),
        log: logger,
        registry: new Registry(),
      });
      aggregators.push(a);
      await a.start();
      return a;
    },
    async publish(id, readings, detections = 0) {
      const events: Event[] = readings.map((r, i) => ({
        kind: {
          $case: 'telemetry',
          value: {
            eventId: `${id}-${i}`,
            deviceId: r.device,
            eventTime: new Date(r.t),
            sensorType: r.sensor,
            value: r.value,
            unit: '1',
            firmwareVersion: '',
            region: r.region,
            schemaVersion: 0,
            attributes: {},
          },
        },
      }));
      for (let i = 0; i < detections; i++) {
        events.push({
          kind: {
            $case: 'detection',
            value: {
              eventId: `${id}-d${i}`,
              deviceId: 'cam',
              streamId: 'cam-1',
              frameTime: new Date(),
              region: readings[0]?.region ?? 'eu',
              schemaVersion: 0,
              detections: [],
              attributes: {},
              firmwareVersion: '',
            },
          },
        });
      }
      const region = readings[0]?.region ?? 'eu';
      await publishDurable(nats.js, topo.clean(region), encodeBatch({ batchId: id, events }), {
        msgId: id,
        contentType: CONTENT_TYPES.EVENT_BATCH,
      });
    },
    async sql(text, params = []) {
      return (await pg.query(text, params)).rows;
    },
    async cleanup() {
      for (const a of aggregators.splice(0)) await a.stop().catch(() => undefined);
      for (const nc of conns.splice(0)) await nc.drain().catch(() => undefined);
      await pg.end().catch(() => undefined);
      await nats.cleanup();
      await db.drop().catch(() => undefined);
    },
  };
  return h;
}

/** One expected roll-up row. */
export interface Expected {
  count: number;
  sum: number;
  min: number;
  max: number;
  first: number;
  firstTime: number;
  last: number;
  lastTime: number;
}

const RES_MS: Record<string, number> = { '1s': 1_000, '5s': 5_000, '1m': 60_000, '1h': 3_600_000 };

/**
 * Reference roll-ups computed the plain way: group every reading by window, then compute each
 * statistic over the group's full list (sorted by time, ties by value).
 */
export function reference(
  readings: readonly R[],
  resolutions: readonly string[],
): Map<string, Expected> {
  const groups = groupByRollupCell(
    readings,
    Object.fromEntries(resolutions.map((res) => [res, RES_MS[res]!])),
  );
  const out = new Map<string, Expected>();
  for (const [k, rs] of groups) {
    const sorted = [...rs].sort((a, b) => a.t - b.t || a.value - b.value);
    const values = rs.map((r) => r.value);
    out.set(k, {
      count: rs.length,
      sum: values.reduce((a, b) => a + b, 0),
      min: Math.min(...values),
      max: Math.max(...values),
      first: sorted[0]!.value,
      firstTime: sorted[0]!.t,
      last: sorted[sorted.length - 1]!.value,
      lastTime: sorted[sorted.length - 1]!.t,
    });
  }
  return out;
}

/** Every stored (non-derived) roll-up, keyed like {@link reference}. */
export async function stored(h: Harness): Promise<Map<string, Expected>> {
  const rows = await h.sql<{
    resolution: string;
    scope: number;
    series_key: string;
    sensor: string;
    ws: number;
    count: string;
    sum: number;
    min: number;
    max: number;
    first_value: number;
    ft: number;
    last_value: number;
    lt: number;
  }>(
    `SELECT resolution, scope, series_key, sensor, (extract(epoch from window_start)*1000)::float8 AS ws, count, sum, min, max, first_value,
            (extract(epoch from first_time)*1000)::float8 AS ft, last_value, (extract(epoch from last_time)*1000)::float8 AS lt
     FROM rollups WHERE NOT derived`,
  );
  const out = new Map<string, Expected>();
  for (const r of rows) {
    out.set(
      `${r.resolution}|${r.scope === 1 ? 'device' : 'region'}|${r.series_key}|${r.sensor}|${r.ws}`,
      {
        count: Number(r.count),
        sum: r.sum,
        min: r.min,
        max: r.max,
        first: r.first_value,
        firstTime: r.ft,
        last: r.last_value,
        lastTime: r.lt,
      },
    );
  }
  return out;
}

/** Asserts two roll-up sets are equal (sums to 1e-6 relative: float addition order differs). */
export function expectSame(actual: Map<string, Expected>, expected: Map<string, Expected>): void {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [k, e] of expected) {
    const a = actual.get(k)!;
    expect({ k, ...a, sum: 0 }).toEqual({ k, ...e, sum: 0 });
    expect(Math.abs(a.sum - e.sum)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(e.sum)));
  }
}

/** Total count over device-scope rows of one resolution: equals the readings merged. */
export async function totalCount(h: Harness, resolution = '1s'): Promise<number> {
  const rows = await h.sql<{ n: string | null }>(
    `SELECT sum(count) AS n FROM rollups WHERE resolution = $1 AND scope = 1 AND NOT derived`,
    [resolution],
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * Readings of `devices` devices × sensors over `spanMs` from `t0`, in shuffled (out-of-order) order.
 * Values have two decimals.
 */
export function generate(opts: {
  t0: number;
  spanMs: number;
  devices: number;
  perSeries: number;
  sensors?: string[];
  region?: string;
  seed?: number;
}): R[] {
  const rand = rng(opts.seed ?? 1);
  const out: R[] = [];
  const sensors = opts.sensors ?? ['temp', 'voltage', 'current'];
  for (let d = 0; d < opts.devices; d++) {
    for (const sensor of sensors) {
      for (let i = 0; i < opts.perSeries; i++) {
        out.push({
          device: `dev-${d}`,
          region: opts.region ?? 'eu',
          sensor,
          t: opts.t0 + Math.floor(rand() * opts.spanMs),
          value: Math.round(rand() * 10_000) / 100,
        });
      }
    }
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Splits into messages of `size` readings. */
export function chunk<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

/** Messages the consumer has not settled yet. */
export async function unsettled(h: Harness, durable = 'aggregator'): Promise<number> {
  const info = await h.nats.jsm.consumers.info(h.topo.streams.clean.name, durable);
  return info.num_pending + info.num_ack_pending;
}

export { rng };

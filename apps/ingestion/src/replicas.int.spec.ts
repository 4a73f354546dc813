// Three gateway processes behind "any load balancer" (the test sends round-robin), against the real
// NATS and Redis (through a TCP proxy the test can cut). A device's rate is limited across the three
// as by one; while Redis is away each falls back to its own bucket, metered, and the shared bucket
// decides again once Redis answers.
import { topology } from '@sluice/contracts';
import {
  natsFixture,
  spawnService,
  tcpProxy,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
  type TcpProxy,
} from '@sluice/testing';
import Redis from 'ioredis';
import { sha256Hex } from './auth';
import { RATE_LIMIT_METRICS } from './metrics';
import { rateLimitPrefix } from './rate-limiter';

const TOKEN = 'gateway-token-replicas';
const BURST = 10;

interface Gateway {
  proc: ChildService;
  opsPort: number;
  httpPort: number;
}

function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('ingestion: a device rate limit holds across 3 gateway replicas', () => {
  let nats: NatsFixture;
  let proxy: TcpProxy;
  let redis: Redis;
  const ns = uniqueId('ingr');
  const gateways: Gateway[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
    nats.track(topology(ns).streams.raw.name);
    redis = new Redis(testUrls.redis);
    proxy = await tcpProxy(Number(new URL(testUrls.redis).port || 6379));
    const start = async (): Promise<Gateway> => {
      const proc = spawnService('apps/ingestion/src/main.ts', {
        NATS_URL: testUrls.nats,
        SLUICE_NAMESPACE: ns,
        OPS_PORT: '0',
        OPS_HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        OTEL_SDK_DISABLED: 'true',
        INGEST_GRPC_PORT: '0',
        INGEST_HTTP_PORT: '0',
        INGEST_HOST: '127.0.0.1',
        INGEST_REGIONS: 'eu-west',
        INGEST_AUTH_TOKENS: `${sha256Hex(TOKEN)}=*`,
        INGEST_STREAM_MAX_AGE: '10m',
        // One event per second after a burst of 10: a test's few seconds add at most a few.
        INGEST_DEVICE_RATE: '1',
        INGEST_DEVICE_BURST: String(BURST),
        INGEST_RATE_LIMIT_STORE: 'redis',
        // A loaded test machine can pass the default 100 ms; every round trip here must be answered.
        INGEST_RATE_LIMIT_TIMEOUT: '2s',
        REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      });
      const line = await proc.waitForLine(/ingestion running/, 90_000);
      const { opsPort, httpPort } = JSON.parse(line) as { opsPort: number; httpPort: number };
      return { proc, opsPort, httpPort };
    };
    gateways.push(...(await Promise.all([start(), start(), start()])));
  }, 180_000);

  afterAll(async () => {
    for (const g of gateways) g.proc.kill('SIGKILL');
    await Promise.all(gateways.map((g) => g.proc.exited));
    await proxy.close();
    const keys = await redis.keys(`${rateLimitPrefix(ns)}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await nats.cleanup();
  });

  const metrics = async (g: Gateway) =>
    (await fetch(`http://127.0.0.1:${g.opsPort}/metrics`)).text();

  /** One single-event batch for `device` through `g`: its HTTP status (200 stored, 429 limited). */
  async function send(g: Gateway, device: string): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${g.httpPort}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({
        event_id: uniqueId('e'),
        device_id: device,
        timestamp: new Date().toISOString(),
        sensor_type: 'engine_temp',
        value: 80,
        unit: 'celsius',
        region: 'eu-west',
      }),
    });
    await res.arrayBuffer();
    return res.status;
  }

  /** `n` batches for `device`, round-robin over the gateways: accepted and refused counts. */
  async function burst(device: string, n: number) {
    const started = Date.now();
    const statuses: number[] = [];
    for (let i = 0; i < n; i++) statuses.push(await send(gateways[i % 3]!, device));
    return {
      accepted: statuses.filter((s) => s === 200).length,
      refused: statuses.filter((s) => s === 429).length,
      other: statuses.filter((s) => s !== 200 && s !== 429),
      seconds: Math.ceil((Date.now() - started) / 1000),
    };
  }

  it('counts accepted vs refused: the device gets one burst across the three, not three', async () => {
    const r = await burst('boat-1', 45);
    expect(r.other).toEqual([]);
    // The shared bucket: BURST at once, then 1 per second; per-process buckets would give 3 × BURST.
    expect(r.accepted).toBeGreaterThanOrEqual(BURST);
    expect(r.accepted).toBeLessThanOrEqual(BURST + r.seconds);
    expect(r.refused).toBe(45 - r.accepted);
    // Another device has a bucket of its own.
    expect(await send(gateways[1]!, 'boat-2')).toBe(200);
    for (const g of gateways) expect(sample(await metrics(g), RATE_LIMIT_METRICS.storeUp)).toBe(1);
  });

  it('Redis away: each gateway falls back to its own bucket (metered, logged once); back: shared again', async () => {
    proxy.cut();
    const r = await burst('boat-3', 45);
    expect(r.other).toEqual([]);
    // Per process now: each of the three allows its own burst.
    expect(r.accepted).toBeGreaterThan(BURST + r.seconds);
    expect(r.accepted).toBeLessThanOrEqual(3 * (BURST + r.seconds));
    for (const g of gateways) {
      const text = await metrics(g);
      expect(sample(text, RATE_LIMIT_METRICS.storeUp)).toBe(0);
      expect(sample(text, RATE_LIMIT_METRICS.fallbacks)).toBeGreaterThanOrEqual(15);
      expect(g.proc.lines.filter((l) => /redis unavailable/.test(l))).toHaveLength(1);
    }
    proxy.restore();
    // Traffic finds Redis again (each gateway retries it about every second).
    for (const g of gateways)
      await waitFor(
        'the shared bucket deciding again',
        async () => {
          await send(g, uniqueId('probe'));
          return sample(await metrics(g), RATE_LIMIT_METRICS.storeUp) === 1;
        },
        { timeoutMs: 20_000, intervalMs: 200 },
      );
    const again = await burst('boat-4', 45);
    expect(again.accepted).toBeGreaterThanOrEqual(BURST);
    expect(again.accepted).toBeLessThanOrEqual(BURST + again.seconds);
    for (const g of gateways)
      expect(g.proc.lines.filter((l) => /redis answers again/.test(l))).toHaveLength(1);
  });
});

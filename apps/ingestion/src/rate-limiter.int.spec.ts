// The shared device rate limit against a real Redis: several limiters stand in for gateway
// replicas (a connection each, one key prefix); a TCP proxy cut in front of Redis for an outage.
import { createDeviceHasher, createLogger, type Logger } from '@sluice/observability';
import {
  freePort,
  redisFixture,
  tcpProxy,
  waitFor,
  type RedisFixture,
  type TcpProxy,
} from '@sluice/testing';
import { Registry } from 'prom-client';
import { createIngestMetrics, RATE_LIMIT_METRICS } from './metrics';
import {
  connectRateLimitRedis,
  DeviceRateLimiter,
  SharedRateLimiter,
  type RateLimiter,
} from './rate-limiter';

const hashDeviceId = createDeviceHasher('test-key-0123456789');

function capturingLogger(): { log: Logger; messages: () => string[] } {
  const out: string[] = [];
  const log = createLogger({
    service: 'ingestion-test',
    level: 'info',
    hashDeviceId,
    destination: { write: (s: string) => void out.push(s) } as never,
  });
  return { log, messages: () => out.map((l) => String(JSON.parse(l).msg)) };
}

async function metric(registry: Registry, name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return m?.values[0]?.value ?? 0;
}

describe('SharedRateLimiter (real Redis)', () => {
  let fx: RedisFixture;
  let proxy: TcpProxy | undefined;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    fx = await redisFixture();
  });

  afterEach(async () => {
    for (const s of stops.splice(0)) await s();
    await proxy?.close();
    proxy = undefined;
  });

  afterAll(async () => {
    await fx.cleanup();
  });

  async function limiter(
    ratePerSec: number,
    burst: number,
    url = 'redis://127.0.0.1:6379',
    leaseMs?: number,
  ): Promise<{ l: SharedRateLimiter; registry: Registry; messages: () => string[] }> {
    const { log, messages } = capturingLogger();
    const { redis, stoppable } = await connectRateLimitRedis({
      url,
      commandTimeoutMs: 1_000,
      readyWaitMs: 2_000,
      log,
    });
    stops.push(() => stoppable.stop());
    const registry = new Registry();
    const l = new SharedRateLimiter({
      redis,
      prefix: fx.prefix,
      hashDeviceId,
      ratePerSec,
      burst,
      local: new DeviceRateLimiter({ ratePerSec, burst, maxDevices: 1_000 }),
      metrics: createIngestMetrics(registry),
      log,
      retryAfterMs: 100,
      ...(leaseMs === undefined ? {} : { leaseMs }),
    });
    return { l, registry, messages };
  }

  const one = (device: string, n = 1) => new Map([[device, n]]);
  const device = () => `d-${Math.random().toString(36).slice(2, 10)}`;

  it('one bucket per device for every replica: of many batches on three only the burst (plus refill) is taken', async () => {
    const ls = await Promise.all([limiter(1, 10), limiter(1, 10), limiter(1, 10)]);
    const d = device();
    const started = Date.now();
    const waits = await Promise.all(
      Array.from({ length: 45 }, (_, i) => ls[i % 3]!.l.take(one(d))),
    );
    const seconds = Math.ceil((Date.now() - started) / 1000);
    const accepted = waits.filter((w) => w === 0).length;
    expect(accepted).toBeGreaterThanOrEqual(10);
    expect(accepted).toBeLessThanOrEqual(10 + seconds);
    for (const w of waits.filter((x) => x > 0)) expect(w).toBeLessThanOrEqual(1_000);
  });

  it('answers like the per-process bucket: all or nothing, the wait until the batch fits', async () => {
    const { l } = await limiter(10, 20);
    const [a, b, c] = [device(), device(), device()];
    expect(await l.take(one(a, 20))).toBe(0);
    const wait = await l.take(one(a, 5));
    expect(wait).toBeGreaterThan(400);
    expect(wait).toBeLessThanOrEqual(500);
    // b fits but a does not: nothing is taken from b either.
    expect(
      await l.take(
        new Map([
          [b, 20],
          [a, 1],
        ]),
      ),
    ).toBeGreaterThan(0);
    expect(await l.take(one(b, 20))).toBe(0);
    // More than a whole bucket can never fit at once: the time to fill one is advised.
    expect(await l.take(one(c, 21))).toBe(2_000);
  });

  it('a bucket key, named by the keyed device hash (never the raw id), lives only until the bucket is full again', async () => {
    const { l } = await limiter(100, 50);
    const d = device();
    expect(await l.take(one(d, 40))).toBe(0);
    const ttl = await fx.redis.pttl(`${fx.prefix}${hashDeviceId(d)}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(401);
    expect(await fx.redis.keys(`*${d}*`)).toEqual([]);
  });

  it('without Redis each replica decides with its own bucket, metered and logged once', async () => {
    const { l, registry, messages } = await limiter(1, 3, `redis://127.0.0.1:${await freePort()}`);
    const d = device();
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) waits.push(await l.take(one(d)));
    expect(waits.filter((w) => w === 0)).toHaveLength(3);
    expect(l.shared).toBe(false);
    expect(await metric(registry, RATE_LIMIT_METRICS.fallbacks)).toBe(5);
    expect(await metric(registry, RATE_LIMIT_METRICS.storeUp)).toBe(0);
    expect(messages().filter((m) => /redis unavailable/.test(m))).toHaveLength(1);
  });

  it('an outage degrades to per-process buckets; when Redis answers again the shared ones decide', async () => {
    proxy = await tcpProxy(6379);
    // 0.01/s: nothing refills while the test runs.
    const { l, registry, messages } = await limiter(0.01, 2, `redis://127.0.0.1:${proxy.port}`);
    const shared: RateLimiter = (await limiter(0.01, 2)).l;
    const d = device();
    expect(await l.take(one(d, 2))).toBe(0);
    expect(await shared.take(one(d))).toBeGreaterThan(0); // the same bucket, seen directly
    proxy.cut();
    // The per-process bucket of this replica is full: it lets the device through again.
    await waitFor('fallback', async () => (await l.take(one(d))) === 0 && !l.shared);
    expect(await metric(registry, RATE_LIMIT_METRICS.storeUp)).toBe(0);
    proxy.restore();
    await waitFor('shared again', async () => (await l.take(one(device()))) >= 0 && l.shared, {
      timeoutMs: 10_000,
    });
    expect(await metric(registry, RATE_LIMIT_METRICS.storeUp)).toBe(1);
    expect(await l.take(one(d))).toBeGreaterThan(0);
    expect(messages().filter((m) => /redis unavailable/.test(m))).toHaveLength(1);
    expect(messages().filter((m) => /redis answers again/.test(m))).toHaveLength(1);
    // A second outage within the minute is counted, not logged again.
    proxy.cut();
    await waitFor('second fallback', async () => (await l.take(one(device()))) >= 0 && !l.shared);
    expect(await metric(registry, RATE_LIMIT_METRICS.outages)).toBe(2);
    expect(messages().filter((m) => /redis unavailable/.test(m))).toHaveLength(1);
  });

  describe('leases', () => {
    const roundTrips = async (registry: Registry) =>
      (await registry.getMetricsAsJSON())
        .find((x) => x.name === RATE_LIMIT_METRICS.roundTrip)!
        .values.find((v) => (v as { metricName?: string }).metricName?.endsWith('_count'))!.value;

    it('one round trip leases a tenth of the burst; the next batches spend it without Redis', async () => {
      // 100/s: a token is 10 ms of the bucket's time.
      const { l, registry } = await limiter(100, 1_000, undefined, 60_000);
      const d = device();
      expect(await l.take(one(d))).toBe(0); // needs 1, leases 100
      for (let i = 0; i < 99; i++) expect(await l.take(one(d))).toBe(0);
      expect(await roundTrips(registry)).toBe(1);
      expect(await metric(registry, RATE_LIMIT_METRICS.leaseHits)).toBe(99);
      expect(await l.take(one(d))).toBe(0);
      expect(await roundTrips(registry)).toBe(2);
      // The shared bucket holds what was leased, not what was spent: 200 of 1000.
      const tatUs = Number(await fx.redis.get(`${fx.prefix}${hashDeviceId(d)}`));
      const [sec, usec] = await fx.redis.time();
      const takenUs = tatUs - (Number(sec) * 1e6 + Number(usec));
      expect(takenUs).toBeGreaterThan(1_500_000);
      expect(takenUs).toBeLessThanOrEqual(2_000_000);
    });

    it('replicas never admit more than the shared bucket: leases are taken from it before they are spent', async () => {
      // 1/s with a burst of 100: each lease is a tenth of the burst.
      const ls = await Promise.all([
        limiter(1, 100, undefined, 60_000),
        limiter(1, 100, undefined, 60_000),
        limiter(1, 100, undefined, 60_000),
      ]);
      const d = device();
      const started = Date.now();
      let accepted = 0;
      for (let i = 0; i < 300; i++) if ((await ls[i % 3]!.l.take(one(d))) === 0) accepted++;
      const seconds = Math.ceil((Date.now() - started) / 1000);
      // Each replica's last lease may be partly unspent: at most the bucket's envelope (burst plus
      // refill), at least the burst less three leases.
      expect(accepted).toBeLessThanOrEqual(100 + seconds);
      expect(accepted).toBeGreaterThanOrEqual(70);
      // A lease is never more than the bucket has left: the last grants are partial.
      const other = (await limiter(1, 100)).l;
      expect(await other.take(one(d))).toBeGreaterThan(0);
    });

    it('a refused batch takes nothing from the leases it reserved', async () => {
      // 1/s: no token refills within the test's few milliseconds.
      const { l, registry } = await limiter(1, 100, undefined, 60_000);
      const [a, b] = [device(), device()];
      expect(await l.take(one(a))).toBe(0); // a holds 9 leased tokens
      expect(await l.take(one(b, 100))).toBe(0); // b's bucket is empty now
      expect(
        await l.take(
          new Map([
            [a, 5],
            [b, 1],
          ]),
        ),
      ).toBeGreaterThan(0);
      const hits = await metric(registry, RATE_LIMIT_METRICS.leaseHits);
      expect(await l.take(one(a, 9))).toBe(0);
      expect(await metric(registry, RATE_LIMIT_METRICS.leaseHits)).toBe(hits + 1);
    });

    it('leases expire: after the lease time the device goes back to Redis', async () => {
      const { l, registry } = await limiter(1_000, 1_000, undefined, 30);
      const d = device();
      expect(await l.take(one(d))).toBe(0);
      await new Promise((r) => setTimeout(r, 60));
      expect(await l.take(one(d))).toBe(0);
      expect(await roundTrips(registry)).toBe(2);
    });

    it('lease 0 takes exactly each batch from Redis', async () => {
      const { l, registry } = await limiter(1_000, 1_000, undefined, 0);
      const d = device();
      for (let i = 0; i < 5; i++) expect(await l.take(one(d))).toBe(0);
      expect(await roundTrips(registry)).toBe(5);
      expect(await metric(registry, RATE_LIMIT_METRICS.leaseHits)).toBe(0);
    });
  });
});

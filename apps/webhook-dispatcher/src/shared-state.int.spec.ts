// The shared endpoint gates and consecutive runs against a real Redis: several instances stand in
// for replicas (each with its own connection, one key prefix), and a Redis that is not there for an
// outage.
import { TelemetryEvent } from '@sluice/contracts';
import { createDeviceHasher, createLogger, type Logger } from '@sluice/observability';
import { freePort, redisFixture, waitFor, type RedisFixture } from '@sluice/testing';
import Redis from 'ioredis';
import { Registry } from 'prom-client';
import { ConsecutiveRuns, type RunObservation } from './consecutive';
import type { Admission } from './endpoint-gate';
import { ConsecutiveState } from './filters';
import { SHARED_STATE_METRICS } from './names';
import { SharedEndpointGates } from './shared-gates';
import { connectSharedRedis, SharedStateHealth, whenReady } from './shared-state';

const hashDeviceId = createDeviceHasher('test-key-0123456789');

function capturingLogger(): { log: Logger; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  const log = createLogger({
    service: 'webhook-test',
    level: 'info',
    hashDeviceId,
    destination: { write: (s: string) => void out.push(s) } as never,
  });
  return { log, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

describe('shared state in Redis (endpoint gates, consecutive runs)', () => {
  let fx: RedisFixture;
  const opened: Array<{ redis: Redis; stop: () => Promise<void> }> = [];
  const closers: Array<() => void> = [];

  beforeAll(async () => {
    fx = await redisFixture();
  });

  afterEach(async () => {
    for (const c of closers.splice(0)) c();
    for (const o of opened.splice(0)) await o.stop();
  });

  afterAll(async () => {
    await fx.cleanup();
  });

  /** One "replica": its own connection, health, registry and logger, the test's key prefix. */
  async function replica(url = 'redis://127.0.0.1:6379', leaseMs = 10_000) {
    const { log, lines } = capturingLogger();
    const { redis, stoppable } = connectSharedRedis({ url, commandTimeoutMs: 1_000, log });
    opened.push({ redis, stop: () => stoppable.stop() });
    await whenReady(redis, 2_000);
    const registry = new Registry();
    const health = new SharedStateHealth({ redis, log, registry, retryAfterMs: 200 });
    const gates = new SharedEndpointGates({
      redis,
      health,
      prefix: fx.prefix,
      leaseMs,
      queueSize: 16,
      maxQueueWaitMs: 400,
      busyDelayMs: 100,
      busyPollMs: 10,
    });
    closers.push(() => gates.close());
    const runs = new ConsecutiveRuns({
      local: new ConsecutiveState(1_000),
      shared: {
        redis,
        health,
        prefix: fx.prefix,
        hashDeviceId,
        ttlMs: 60_000,
        firedTtlMs: 60_000,
      },
      registry,
    });
    return { redis, health, gates, runs, registry, lines };
  }

  const sub = () => `s${Math.random().toString(36).slice(2, 10)}`;

  it('bounds concurrency across replicas; a slot given back on one is taken by a waiter on another', async () => {
    const [a, b, c] = await Promise.all([replica(), replica(), replica()]);
    const id = sub();
    const lim = { maxConcurrency: 2, ratePerS: 1_000 };
    const first = await a.gates.acquire(id, lim);
    const second = await b.gates.acquire(id, lim);
    expect(first).toMatchObject({ type: 'go', lease: expect.any(String) });
    expect(second).toMatchObject({ type: 'go', lease: expect.any(String) });
    // Both slots are held: c's delivery waits (not a local slot of its own).
    const third = c.gates.acquire(id, lim);
    let settled: Admission | undefined;
    void Promise.resolve(third).then((x) => (settled = x));
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBeUndefined();
    a.gates.release(id, first);
    await expect(third).resolves.toMatchObject({ type: 'go' });
    // Still two held (b's and c's): a waiter past its deadline is deferred as busy.
    await expect(a.gates.acquire(id, lim)).resolves.toMatchObject({
      type: 'defer',
      reason: 'busy',
    });
    expect(await a.redis.zcard(`${fx.prefix}ep:{${id}}:slots`)).toBe(2);
    b.gates.release(id, second);
    c.gates.release(id, await third);
    await waitFor('slots given back', async () =>
      (await a.redis.zcard(`${fx.prefix}ep:{${id}}:slots`)) === 0 ? true : undefined,
    );
  });

  it('a replica with deliveries waiting takes the slots freed elsewhere for them, never more than the limit', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const id = sub();
    const lim = { maxConcurrency: 3, ratePerS: 1_000 };
    const held = await Promise.all([0, 1, 2].map(() => Promise.resolve(a.gates.acquire(id, lim))));
    expect(held.map((h) => h.type)).toEqual(['go', 'go', 'go']);
    const waiting = Array.from({ length: 5 }, () => Promise.resolve(b.gates.acquire(id, lim)));
    await new Promise((r) => setTimeout(r, 50));
    for (const h of held) a.gates.release(id, h);
    const got = await Promise.all(waiting);
    // Three go (the freed slots), two stay busy until their deadline.
    expect(got.filter((x) => x.type === 'go')).toHaveLength(3);
    expect(got.filter((x) => x.type === 'defer')).toHaveLength(2);
    expect(await a.redis.zcard(`${fx.prefix}ep:{${id}}:slots`)).toBe(3);
    for (const x of got) b.gates.release(id, x);
  });

  it('shares one rate bucket: of many concurrent attempts on three replicas only the burst goes', async () => {
    const rs = await Promise.all([replica(), replica(), replica()]);
    const id = sub();
    // 0.01/s: a bucket of one token that refills in 100 s.
    const lim = { maxConcurrency: 1_000, ratePerS: 0.01 };
    const results = await Promise.all(
      rs.flatMap((r) =>
        Array.from({ length: 20 }, () => Promise.resolve(r.gates.acquire(id, lim))),
      ),
    );
    expect(results.filter((x) => x.type === 'go')).toHaveLength(1);
    expect(results.filter((x) => x.type === 'defer')).toHaveLength(59);
  });

  it('a pause set by one replica defers every other replica, without a slot taken', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const id = sub();
    const lim = { maxConcurrency: 1, ratePerS: 100 };
    await a.gates.pause(id, lim, Date.now() + 60_000);
    const d = await b.gates.acquire(id, lim);
    expect(d).toMatchObject({ type: 'defer', reason: 'paused' });
    expect((d as { delayMs: number }).delayMs).toBeGreaterThan(50_000);
    // Known locally now: no round trip, same answer.
    expect(b.gates.acquire(id, lim)).toMatchObject({ type: 'defer', reason: 'paused' });
    expect(await a.redis.exists(`${fx.prefix}ep:{${id}}:slots`)).toBe(0);
  });

  it('the slots of a replica that died free themselves after the lease; live leases are renewed', async () => {
    const dead = await replica(undefined, 600);
    const live = await replica(undefined, 600);
    const id = sub();
    const lim = { maxConcurrency: 2, ratePerS: 1_000 };
    expect(await dead.gates.acquire(id, lim)).toMatchObject({ type: 'go' });
    const held = await live.gates.acquire(id, lim);
    expect(held).toMatchObject({ type: 'go' });
    // The "dead" replica stops talking to Redis without giving its slot back.
    dead.redis.disconnect();
    // After several lease periods the live lease is still there (renewed), the dead one is gone.
    await new Promise((r) => setTimeout(r, 2_000));
    const other = await replica(undefined, 600);
    expect(await other.gates.acquire(id, lim)).toMatchObject({ type: 'go' });
    expect(await other.gates.acquire(id, lim)).toMatchObject({ type: 'defer', reason: 'busy' });
    live.gates.release(id, held);
  });

  it('without Redis every gate decides per process, metered and logged once', async () => {
    const port = await freePort();
    const r = await replica(`redis://127.0.0.1:${port}`);
    const id = sub();
    const lim = { maxConcurrency: 1, ratePerS: 1_000 };
    const first = await r.gates.acquire(id, lim);
    expect(first).toEqual({ type: 'go' }); // a per-process slot: no lease
    const second = r.gates.acquire(id, lim);
    expect(second).toBeInstanceOf(Promise); // queued at the per-process gate
    r.gates.release(id, first);
    await expect(second).resolves.toEqual({ type: 'go' });
    r.gates.release(id, await second);
    expect(
      await metric(r.registry, SHARED_STATE_METRICS.fallbacks, { state: 'endpoint_limits' }),
    ).toBe(2);
    expect(await metric(r.registry, SHARED_STATE_METRICS.up)).toBe(0);
    const warned = r.lines().filter((l) => /redis unavailable/.test(String(l['msg'])));
    expect(warned).toHaveLength(1);
  });

  describe('consecutive runs', () => {
    const t0 = Date.UTC(2026, 0, 1);
    const reading = (device: string, i: number, id = `${device}-${i}`) =>
      TelemetryEvent.fromPartial({
        eventId: id,
        deviceId: device,
        sensorType: 'temp',
        eventTime: new Date(t0 + i * 1_000),
      });
    const obs = (
      s: string,
      e: TelemetryEvent,
      matched: boolean,
      seq: number,
      n = 3,
    ): RunObservation => ({ subscriptionId: s, event: e, matched, n, seq, index: 0 });

    it('replicas seeing alternate readings of a device count one run: N in a row fires exactly once', async () => {
      const rs = await Promise.all([replica(), replica(), replica()]);
      const s = sub();
      const fired: Array<[number, number]> = [];
      // Readings 1..7 all match, each handled by the next replica: fires at 3 and 6.
      for (let i = 1; i <= 7; i++) {
        const [run] = await rs[i % 3]!.runs.observe([obs(s, reading('d', i), true, i)]);
        if (run! > 0) fired.push([i, run!]);
      }
      expect(fired).toEqual([
        [3, 3],
        [6, 3],
      ]);
      // A non-matching reading breaks the run; 3 more complete a new one.
      const more = [false, true, true, true].map((m, k) => obs(s, reading('d', 8 + k), m, 8 + k));
      expect(await rs[0]!.runs.observe(more)).toEqual([0, 0, 0, 3]);
      // The series' key names the device by its keyed hash, never by its id.
      expect(await rs[0]!.redis.keys(`${fx.prefix}run:{${s}}:*`)).toEqual([
        `${fx.prefix}run:{${s}}:${hashDeviceId('d')}:temp`,
      ]);
    });

    it('a redelivered batch gets the decisions it got; an older reading is skipped, not counted', async () => {
      const [a, b] = await Promise.all([replica(), replica()]);
      const s = sub();
      const batch = [1, 2, 3, 4].map((i) => obs(s, reading('e', i), true, 10));
      expect(await a.runs.observe(batch)).toEqual([0, 0, 3, 0]);
      // The same message again on another replica (crash before its deliveries were published).
      expect(await b.runs.observe(batch)).toEqual([0, 0, 3, 0]);
      // Out of order: reading 0 (older than 4) arrives late; it neither extends nor resets the run.
      expect(await b.runs.observe([obs(s, reading('e', 0), false, 9)])).toEqual([0]);
      expect(await metric(b.registry, SHARED_STATE_METRICS.consecutiveSkipped)).toBe(4);
      expect(await a.runs.observe([5, 6].map((i) => obs(s, reading('e', i), true, 11)))).toEqual([
        0, 3,
      ]);
    });

    it('orders a batch by event time, equal times by stream position', async () => {
      const r = await replica();
      const s = sub();
      const same = new Date(t0);
      const at = (id: string) =>
        TelemetryEvent.fromPartial({
          eventId: id,
          deviceId: 'f',
          sensorType: 'temp',
          eventTime: same,
        });
      // Given out of order: positions 2 (no match), then 0, 1 (match) -> in order 0, 1 match, 2 resets.
      const batch: RunObservation[] = [
        { ...obs(s, at('p2'), false, 5, 2), index: 2 },
        { ...obs(s, at('p0'), true, 5, 2), index: 0 },
        { ...obs(s, at('p1'), true, 5, 2), index: 1 },
      ];
      expect(await r.runs.observe(batch)).toEqual([0, 0, 2]);
    });

    it('without Redis the runs are counted per process, metered', async () => {
      const port = await freePort();
      const r = await replica(`redis://127.0.0.1:${port}`);
      const s = sub();
      const batch = [1, 2, 3].map((i) => obs(s, reading('g', i), true, i));
      expect(await r.runs.observe(batch)).toEqual([0, 0, 3]);
      expect(
        await metric(r.registry, SHARED_STATE_METRICS.fallbacks, { state: 'consecutive' }),
      ).toBe(1);
    });
  });
});

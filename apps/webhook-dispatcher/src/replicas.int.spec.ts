// Three webhook-dispatcher processes on one set of durable consumers (the platform's way to scale
// it), against the real NATS, PostgreSQL, Redis and HTTP receivers on 127.0.0.1. What one replica
// guarantees must hold for the three: the same deliveries by webhook-id, an endpoint's concurrency
// limit and Retry-After pause across all of them, "N in a row" firing once, and a replica SIGKILLed
// mid-run changing nothing but at-least-once duplicates of the same webhook-ids.
import { encodeBatch, TelemetryEvent, topology, type Event } from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import {
  createTestDatabase,
  natsFixture,
  sleep,
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import Redis from 'ioredis';
import { CONSUMERS, WEBHOOK_METRICS } from './names';
import { sharedStatePrefix } from './shared-state';
import { webhookId } from './signing';
import { startReceiver, type Behaviour, type Receiver } from './test-fixtures/receiver';

const TOKEN = 'test-admin-token-0123456789';

interface Replica {
  proc: ChildService;
  opsPort: number;
  adminPort: number;
}

/** Sum of a metric's samples in a Prometheus text exposition whose labels include `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('webhook dispatcher: 3 replicas behave as one', () => {
  let nats: NatsFixture;
  let db: PgDatabase;
  let redis: Redis;
  const ns = uniqueId('whr');
  const topo = topology(ns);
  const replicas: Replica[] = [];
  const receivers: Receiver[] = [];

  async function start(): Promise<Replica> {
    const proc = spawnService('apps/webhook-dispatcher/src/main.ts', {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OTEL_SDK_DISABLED: 'true',
      PG_URL: db.url,
      REDIS_URL: testUrls.redis,
      WEBHOOK_SHARED_STATE: 'redis',
      WEBHOOK_SLOT_LEASE: '3s',
      WEBHOOK_ADMIN_PORT: '0',
      WEBHOOK_ADMIN_HOST: '127.0.0.1',
      WEBHOOK_ADMIN_TOKEN: TOKEN,
      WEBHOOK_RETRY_SCHEDULE: '1s,1s,1s,1s,1s,1s,1s,1s,1s,1s',
      WEBHOOK_RETRY_JITTER: '0',
      WEBHOOK_REQUEST_TIMEOUT: '5s',
      WEBHOOK_ACK_WAIT: '6s',
      // A few deliveries per process at a time, so all three take part.
      WEBHOOK_MAX_IN_FLIGHT: '4',
      WEBHOOK_SUBSCRIPTION_REFRESH: '300ms',
      WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
    });
    const line = await proc.waitForLine(/webhook-dispatcher running/, 90_000);
    const { opsPort, adminPort } = JSON.parse(line) as { opsPort: number; adminPort: number };
    const r = { proc, opsPort, adminPort };
    replicas.push(r);
    return r;
  }

  beforeAll(async () => {
    nats = await natsFixture();
    db = await createTestDatabase('webhook_replicas');
    redis = new Redis(testUrls.redis);
    const prefix = ns.toUpperCase().replace(/-/g, '_');
    for (const s of [
      topo.streams.clean.name,
      topo.streams.rollups.name,
      topo.streams.dlq.name,
      `${prefix}_WEBHOOK_DELIVERIES`,
      `${prefix}_WEBHOOK_OPS`,
      `${prefix}_ALERTS`,
    ])
      nats.track(s);
    // The first creates the schema and the consumers; the other two join them.
    await start();
    await Promise.all([start(), start()]);
  }, 240_000);

  afterAll(async () => {
    for (const r of replicas) r.proc.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.proc.exited));
    await Promise.all(receivers.map((r) => r.close()));
    const keys = await redis.keys(`${sharedStatePrefix(ns)}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await nats.cleanup();
    await db.drop();
  });

  const live = () => replicas.filter((r) => r.proc.proc.exitCode === null && !r.proc.proc.killed);

  async function metrics(r: Replica): Promise<string> {
    return (await fetch(`http://127.0.0.1:${r.opsPort}/metrics`)).text();
  }

  async function receiver(behaviour: Behaviour): Promise<Receiver> {
    const r = await startReceiver(behaviour);
    receivers.push(r);
    return r;
  }

  /** Creates a subscription through one replica and waits until every replica has read it. */
  async function subscribe(url: string, filter: unknown, extra: Record<string, unknown> = {}) {
    const res = await fetch(`http://127.0.0.1:${replicas[0]!.adminPort}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url, filter, ...extra }),
    });
    expect(res.status).toBe(201);
    // Replicas re-read subscriptions every 300 ms (WEBHOOK_SUBSCRIPTION_REFRESH).
    await sleep(1_500);
    return (await res.json()) as { id: string };
  }

  function reading(sensorType: string, value: number, deviceId = 'dev-1'): TelemetryEvent {
    return TelemetryEvent.fromPartial({
      eventId: uniqueId('ev'),
      deviceId,
      sensorType,
      value,
      unit: 'celsius',
      region: 'eu',
      eventTime: new Date(),
    });
  }

  /** Publishes one clean message; resolves with its stream sequence. */
  async function publish(events: TelemetryEvent[]): Promise<number> {
    const batchId = uniqueId('b');
    const wire: Event[] = events.map((value) => ({ kind: { $case: 'telemetry', value } }));
    const ack = await publishDurable(
      nats.js,
      topo.clean('eu'),
      encodeBatch({ batchId, events: wire }),
      { msgId: batchId, contentType: 'application/x-protobuf' },
    );
    return ack.seq;
  }

  function expectedIds(subscriptionId: string, events: TelemetryEvent[]): Set<string> {
    return new Set(events.map((e) => webhookId(e.eventId, subscriptionId)));
  }

  it('delivers what one replica would, by webhook-id, never more than maxConcurrency at once', async () => {
    const r = await receiver(() => ({ status: 200, delayMs: 40 }));
    const sensor = uniqueId('s');
    const sub = await subscribe(
      r.url,
      { type: 'telemetry', sensorTypes: [sensor], value: { gt: 50 } },
      { maxConcurrency: 2, rateLimitPerS: 1_000 },
    );
    const before = await Promise.all(replicas.map(metrics));
    const matching: TelemetryEvent[] = [];
    for (let m = 0; m < 15; m++) {
      const events = Array.from({ length: 10 }, (_, i) => reading(sensor, i % 2 === 0 ? 60 : 40));
      matching.push(...events.filter((e) => e.value > 50));
      await publish(events);
    }
    const expected = expectedIds(sub.id, matching);
    await waitFor(
      'every matching reading delivered',
      () => [...expected].every((id) => r.successes().has(id)),
      { timeoutMs: 120_000 },
    );
    await sleep(1_500);
    expect(new Set(r.requests.map((q) => q.id))).toEqual(expected);
    expect([...r.successes().values()]).toEqual(new Array(expected.size).fill(1));
    expect(r.maxInFlight).toBeLessThanOrEqual(2);
    // All three took part: each sent some of them (otherwise per-process limits would pass too).
    const after = await Promise.all(replicas.map(metrics));
    const sent = after.map(
      (text, i) =>
        sample(text, WEBHOOK_METRICS.attempts, { outcome: 'success' }) -
        sample(before[i]!, WEBHOOK_METRICS.attempts, { outcome: 'success' }),
    );
    expect(sent.reduce((a, b) => a + b, 0)).toBe(expected.size);
    expect(sent.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  }, 180_000);

  it('a 429 with Retry-After pauses the endpoint on every replica', async () => {
    let answered = 0;
    const r = await receiver(() =>
      answered++ === 0 ? { status: 429, headers: { 'retry-after': '3600' } } : { status: 200 },
    );
    const sensor = uniqueId('p');
    const sub = await subscribe(
      r.url,
      { type: 'telemetry', sensorTypes: [sensor] },
      { maxConcurrency: 1, rateLimitPerS: 1_000 },
    );
    await publish([reading(sensor, 1)]);
    await waitFor('the 429', () => r.requests.length === 1, { timeoutMs: 30_000 });
    const paused = async () =>
      Promise.all(
        replicas.map(async (x) =>
          sample(await metrics(x), WEBHOOK_METRICS.deferred, { reason: 'paused' }),
        ),
      );
    const base = await paused();
    // One delivery at a time until every replica has had one to defer (each lands on any replica).
    for (let n = 1; n <= 60; n++) {
      await publish([reading(sensor, 1)]);
      const now = await waitFor(
        `deferral ${n}`,
        async () => {
          const p = await paused();
          return p.reduce((a, b) => a + b, 0) - base.reduce((a, b) => a + b, 0) >= n && p;
        },
        { timeoutMs: 30_000 },
      );
      if (now.every((v, i) => v > base[i]!)) break;
    }
    const now = await paused();
    expect(now.every((v, i) => v > base[i]!)).toBe(true);
    // Nothing reached the endpoint after it asked to wait; the pause is the endpoint's, in Redis.
    expect(r.requests).toHaveLength(1);
    expect(await redis.pttl(`${sharedStatePrefix(ns)}ep:{${sub.id}}:pause`)).toBeGreaterThan(
      3_000_000,
    );
  }, 180_000);

  it('N in a row fires exactly once when the readings of a device are handled by different replicas', async () => {
    const r = await receiver(() => ({ status: 200 }));
    const sensor = uniqueId('c');
    const sub = await subscribe(r.url, {
      type: 'telemetry',
      sensorTypes: [sensor],
      value: { gte: 10 },
      consecutive: 3,
    });
    const a = [10, 11, 12, 13, 14, 15, 16].map((v) => reading(sensor, v, 'dev-a'));
    const b = [10, 11, 5, 12, 13, 14].map((v) => reading(sensor, v, 'dev-b'));
    const order = [...a.map((e, i) => [i, e] as const), ...b.map((e, i) => [i, e] as const)]
      .sort((x, y) => x[0] - y[0])
      .map(([, e]) => e);
    const before = await Promise.all(replicas.map(metrics));
    // One reading per message; each is published once the previous one was handled (by any replica).
    for (const e of order) {
      const seq = await publish([e]);
      await waitFor(
        `message ${seq} handled`,
        async () =>
          (await nats.jsm.consumers.info(topo.streams.clean.name, CONSUMERS.clean)).ack_floor
            .stream_seq >= seq,
        { timeoutMs: 30_000 },
      );
    }
    const expected = new Set([
      webhookId(a[2]!.eventId, sub.id),
      webhookId(a[5]!.eventId, sub.id),
      webhookId(b[5]!.eventId, sub.id),
    ]);
    await waitFor('the three alerts', () => [...expected].every((id) => r.successes().has(id)), {
      timeoutMs: 30_000,
    });
    await sleep(1_500);
    expect(new Set(r.requests.map((q) => q.id))).toEqual(expected);
    expect([...r.successes().values()]).toEqual([1, 1, 1]);
    const runs = r.requests.map((q) => JSON.parse(q.body).data.consecutive as number);
    expect(runs).toEqual([3, 3, 3]);
    // The readings were spread over the replicas (one replica alone would need no shared state).
    const after = await Promise.all(replicas.map(metrics));
    const handled = after.map(
      (text, i) =>
        sample(text, 'sluice_messages_processed_total', { consumer: CONSUMERS.clean }) -
        sample(before[i]!, 'sluice_messages_processed_total', { consumer: CONSUMERS.clean }),
    );
    expect(handled.reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(order.length);
    expect(handled.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  }, 180_000);

  it('one replica SIGKILLed mid-run: every delivery arrives, duplicates only of the same webhook-ids, the limit holds', async () => {
    const r = await receiver(() => ({ status: 200, delayMs: 30 }));
    const sensor = uniqueId('k');
    const sub = await subscribe(
      r.url,
      { type: 'telemetry', sensorTypes: [sensor] },
      { maxConcurrency: 2, rateLimitPerS: 1_000 },
    );
    const events: TelemetryEvent[] = [];
    for (let m = 0; m < 15; m++) {
      const batch = Array.from({ length: 10 }, () => reading(sensor, m));
      events.push(...batch);
      await publish(batch);
    }
    const expected = expectedIds(sub.id, events);
    await waitFor('a third delivered', () => r.successes().size >= 50, { timeoutMs: 60_000 });
    const victim = live()[1]!;
    victim.proc.kill('SIGKILL');
    await victim.proc.exited;
    await waitFor(
      'every delivery after the kill',
      () => [...expected].every((id) => r.successes().has(id)),
      { timeoutMs: 180_000 },
    );
    await sleep(1_500);
    // No loss, nothing foreign: every id received is one of the expected ones.
    expect(new Set(r.requests.map((q) => q.id))).toEqual(expected);
    expect(r.maxInFlight).toBeLessThanOrEqual(2);
    // The dead replica's leases ran out; the survivors gave theirs back.
    await waitFor(
      'no slot held',
      async () => (await redis.zcard(`${sharedStatePrefix(ns)}ep:{${sub.id}}:slots`)) === 0,
      { timeoutMs: 15_000 },
    );
  }, 300_000);
});

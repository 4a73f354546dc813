import {
  encodeBatch,
  encodeRollup,
  Rollup,
  RollupScope,
  TelemetryEvent,
  DetectionEvent,
  topology,
  type Event,
} from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import {
  createTestDatabase,
  natsFixture,
  sleep,
  uniqueId,
  waitFor,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { type Dispatcher } from './dispatcher';
import { startTestDispatcher, TEST_ADMIN_TOKEN } from './test-fixtures/dispatcher';
import { startReceiver, verifyStandardWebhook, type Receiver } from './test-fixtures/receiver';

const TOKEN = TEST_ADMIN_TOKEN;

describe('webhook dispatcher (in-process, real NATS, PostgreSQL and HTTP)', () => {
  let nats: NatsFixture;
  let db: PgDatabase;
  let d: Dispatcher;
  let base: string;
  let stopDispatcher: () => Promise<void>;
  const ns = uniqueId('wh');
  const topo = topology(ns);
  const receivers: Receiver[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
    db = await createTestDatabase('webhook');
    ({
      d,
      base,
      stop: stopDispatcher,
    } = await startTestDispatcher(nats, db, ns, {
      WEBHOOK_RETRY_SCHEDULE: '300ms,300ms,300ms',
      WEBHOOK_ACK_WAIT: '15s',
      WEBHOOK_DISABLE_AFTER: '2500ms',
    }));
  });

  afterAll(async () => {
    await stopDispatcher();
    await Promise.all(receivers.map((r) => r.close()));
    await nats.cleanup();
    await db.drop();
  });

  async function api(
    method: string,
    path: string,
    body?: unknown,
    token = TOKEN,
  ): Promise<{ status: number; json: any }> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  }

  async function receiver(...args: Parameters<typeof startReceiver>) {
    const r = await startReceiver(...args);
    receivers.push(r);
    return r;
  }

  async function subscribe(url: string, filter: unknown, extra: Record<string, unknown> = {}) {
    const res = await api('POST', '/v1/subscriptions', { url, filter, ...extra });
    expect(res.status).toBe(201);
    return res.json as { id: string; secret: string };
  }

  function reading(sensorType: string, value: number, deviceId = 'dev-1', region = 'eu'): Event {
    return {
      kind: {
        $case: 'telemetry',
        value: TelemetryEvent.fromPartial({
          eventId: uniqueId('ev'),
          deviceId,
          sensorType,
          value,
          unit: 'celsius',
          region,
          eventTime: new Date(),
        }),
      },
    };
  }

  async function publishEvents(events: Event[], region = 'eu') {
    const batchId = uniqueId('b');
    await publishDurable(nats.js, topo.clean(region), encodeBatch({ batchId, events }), {
      msgId: batchId,
      contentType: 'application/x-protobuf',
    });
  }

  it('delivers a threshold alert signed per Standard Webhooks, and only for matching readings', async () => {
    const r = await receiver();
    const sensor = uniqueId('temp');
    const sub = await subscribe(r.url, {
      type: 'telemetry',
      sensorTypes: [sensor],
      value: { gt: 100 },
    });
    expect(sub.secret).toMatch(/^whsec_/);
    const got = await api('GET', `/v1/subscriptions/${sub.id}`);
    expect(JSON.stringify(got.json)).not.toContain(sub.secret);
    expect(got.json.secretCount).toBe(1);

    await publishEvents([
      reading(sensor, 50),
      reading(sensor, 150),
      reading('other', 500),
      reading(sensor, 100),
    ]);
    await waitFor('one alert', () => r.requests.length >= 1);
    await sleep(500);
    expect(r.requests).toHaveLength(1);
    const q = r.requests[0]!;
    expect(verifyStandardWebhook(sub.secret, q.id, q.timestamp, q.body, q.signature)).toBe(true);
    expect(
      verifyStandardWebhook(
        sub.secret,
        q.id,
        q.timestamp,
        q.body.replace('150', '151'),
        q.signature,
      ),
    ).toBe(false);
    const body = JSON.parse(q.body);
    expect(body.type).toBe('telemetry.threshold.v1');
    expect(body.data.event).toMatchObject({ sensor_type: sensor, value: 150, device_id: 'dev-1' });
    expect(q.id).toMatch(/^msg_/);

    // Rotation: both secrets sign during the grace period; each verifies independently.
    const rotated = await api('POST', `/v1/subscriptions/${sub.id}/secrets/rotate`, {
      graceSeconds: 3600,
    });
    expect(rotated.status).toBe(200);
    await publishEvents([reading(sensor, 200)]);
    await waitFor('second alert', () => r.requests.length >= 2);
    const q2 = r.requests[1]!;
    expect(q2.signature.split(' ')).toHaveLength(2);
    expect(
      verifyStandardWebhook(rotated.json.secret, q2.id, q2.timestamp, q2.body, q2.signature),
    ).toBe(true);
    expect(verifyStandardWebhook(sub.secret, q2.id, q2.timestamp, q2.body, q2.signature)).toBe(
      true,
    );
  });

  it('a receiver that fails then recovers gets every event exactly once by webhook-id', async () => {
    const perId = new Map<string, number>();
    const r = await receiver((req) => {
      const id = String(req.headers['webhook-id']);
      const n = (perId.get(id) ?? 0) + 1;
      perId.set(id, n);
      return { status: n <= 2 ? 500 : 200 };
    });
    const sensor = uniqueId('p');
    const sub = await subscribe(r.url, { type: 'telemetry', sensorTypes: [sensor] });
    await publishEvents([1, 2, 3, 4, 5].map((v) => reading(sensor, v)));
    await waitFor('every event delivered', () => r.successes().size === 5, { timeoutMs: 20_000 });
    await sleep(800);
    expect([...r.successes().values()]).toEqual([1, 1, 1, 1, 1]);
    expect(r.requests).toHaveLength(15);
    const attempts = await api('GET', `/v1/subscriptions/${sub.id}/attempts?limit=100`);
    expect(attempts.json.filter((a: any) => a.outcome === 'retry')).toHaveLength(10);
    expect(attempts.json.filter((a: any) => a.outcome === 'success')).toHaveLength(5);
    expect(attempts.json.find((a: any) => a.outcome === 'retry')).toMatchObject({
      status: 500,
      error: 'HTTP 500',
    });
    expect(
      attempts.json.find((a: any) => a.outcome === 'retry').responseBody.length,
    ).toBeLessThanOrEqual(513);
  });

  it('a hung endpoint does not slow a healthy one', async () => {
    const hung = await receiver(() => 'hang');
    const healthy = await receiver();
    const sensor = uniqueId('h');
    await subscribe(hung.url, { type: 'telemetry', sensorTypes: [sensor] }, { maxConcurrency: 2 });
    await subscribe(healthy.url, { type: 'telemetry', sensorTypes: [sensor] });
    for (let i = 0; i < 4; i++) await publishEvents([1, 2, 3, 4, 5].map((v) => reading(sensor, v)));
    await waitFor('healthy receiver got all 20', () => healthy.successes().size === 20, {
      timeoutMs: 20_000,
    });
    // Every healthy delivery completed before the dispatcher gave up on the first hung request (4 s timeout).
    const lastHealthy = Math.max(...healthy.requests.map((q) => q.at));
    await waitFor('hung request cut by the timeout', () => hung.abandoned.length >= 1, {
      timeoutMs: 20_000,
    });
    expect(lastHealthy).toBeLessThan(hung.abandoned[0]!);
    expect(hung.requests.length).toBeGreaterThanOrEqual(1);
  });

  it('410 Gone disables the endpoint, dead-letters its deliveries and emits an operational event', async () => {
    const r = await receiver(() => ({ status: 410 }));
    const sensor = uniqueId('g');
    const sub = await subscribe(
      r.url,
      { type: 'telemetry', sensorTypes: [sensor] },
      { maxConcurrency: 1 },
    );
    await publishEvents([reading(sensor, 1), reading(sensor, 2), reading(sensor, 3)]);
    await waitFor(
      'disabled',
      async () => (await api('GET', `/v1/subscriptions/${sub.id}`)).json.enabled === false,
    );
    const s = await api('GET', `/v1/subscriptions/${sub.id}`);
    expect(s.json.disabledReason).toMatch(/410/);
    const dlq = await waitFor('all three dead-lettered', async () => {
      const x = await api('GET', `/v1/subscriptions/${sub.id}/dlq`);
      return x.json.length === 3 ? x.json : undefined;
    });
    expect(dlq.map((x: any) => x.reason).sort()).toEqual(expect.arrayContaining(['gone']));
    expect(dlq.every((x: any) => ['gone', 'subscription_disabled'].includes(x.reason))).toBe(true);
    expect(r.requests.length).toBeLessThan(3 + 1);
    const ops = await nats.readAll(d.webhooks.opsStream.name);
    const events = ops.map((m) => JSON.parse(m.string()));
    expect(events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'webhook.endpoint_disabled.v1', subscription_id: sub.id }),
      ]),
    );
    // Redrive is refused while disabled.
    expect((await api('POST', `/v1/subscriptions/${sub.id}/dlq/redrive`, {})).status).toBe(409);
  });

  it('honours Retry-After on 429', async () => {
    const r = await receiver((_req, _b, n) =>
      n === 0 ? { status: 429, headers: { 'retry-after': '2' } } : { status: 200 },
    );
    const sensor = uniqueId('r');
    await subscribe(r.url, { type: 'telemetry', sensorTypes: [sensor] });
    await publishEvents([reading(sensor, 1)]);
    await waitFor('delivered after the 429', () => r.successes().size === 1, { timeoutMs: 15_000 });
    expect(r.requests).toHaveLength(2);
    expect(r.requests[0]!.status).toBe(429);
    expect(r.requests[1]!.id).toBe(r.requests[0]!.id);
    // The schedule says 300 ms; Retry-After said 2 s.
    expect(r.requests[1]!.at - r.requests[0]!.at).toBeGreaterThanOrEqual(1_900);
  });

  it('exhausted deliveries land in the DLQ with the last status and error; redrive delivers them', async () => {
    let healthy = false;
    const r = await receiver(() => ({ status: healthy ? 200 : 500 }));
    const sensor = uniqueId('x');
    const sub = await subscribe(r.url, { type: 'telemetry', sensorTypes: [sensor] });
    const since = new Date(Date.now() - 1000).toISOString();
    await publishEvents([reading(sensor, 1), reading(sensor, 2), reading(sensor, 3)]);
    const dead = await waitFor(
      'three dead letters',
      async () => {
        const x = await api('GET', `/v1/subscriptions/${sub.id}/dlq`);
        return x.json.length === 3 ? x.json : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(dead[0]).toMatchObject({
      reason: 'exhausted',
      attempts: 4,
      lastStatus: 500,
      lastError: 'HTTP 500',
    });
    expect(r.requests).toHaveLength(12);
    healthy = true;
    const one = await api('POST', `/v1/subscriptions/${sub.id}/dlq/${dead[0].webhookId}/redrive`);
    expect(one.status).toBe(202);
    await waitFor('redriven one delivered', () => r.successes().has(dead[0].webhookId));
    const all = await api('POST', `/v1/subscriptions/${sub.id}/dlq/redrive`, { since });
    expect(all.json).toEqual({ redriven: 2, more: false });
    await waitFor('all delivered', () => r.successes().size === 3);
    expect(new Set(r.successes().keys())).toEqual(new Set(dead.map((x: any) => x.webhookId)));
    expect((await api('GET', `/v1/subscriptions/${sub.id}/dlq`)).json).toEqual([]);
  });

  it('disables an endpoint that keeps failing for the configured period', async () => {
    const r = await receiver(() => ({ status: 500 }));
    const sensor = uniqueId('f');
    const sub = await subscribe(r.url, { type: 'telemetry', sensorTypes: [sensor] });
    for (let i = 0; i < 15; i++) {
      await publishEvents([reading(sensor, i)]);
      if ((await api('GET', `/v1/subscriptions/${sub.id}`)).json.enabled === false) break;
      await sleep(400);
    }
    const s = await waitFor('disabled', async () => {
      const x = await api('GET', `/v1/subscriptions/${sub.id}`);
      return x.json.enabled === false ? x.json : undefined;
    });
    expect(s.disabledReason).toMatch(/failing continuously/);
    const ops = (await nats.readAll(d.webhooks.opsStream.name)).map((m) => JSON.parse(m.string()));
    expect(ops).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          subscription_id: sub.id,
          reason: expect.stringMatching(/failing/),
        }),
      ]),
    );
    expect(r.requests.length).toBeGreaterThan(1);
  });

  it('N consecutive readings, roll-up window close, detections and the test event', async () => {
    const r = await receiver();
    const sensor = uniqueId('c');
    const cons = await subscribe(r.url, {
      type: 'telemetry',
      sensorTypes: [sensor],
      value: { gte: 10 },
      consecutive: 3,
    });
    const roll = await subscribe(r.url, {
      type: 'rollup',
      sensorTypes: [sensor],
      resolutions: ['1m'],
      max: { gt: 90 },
    });
    const det = await subscribe(r.url, {
      type: 'detection',
      labels: ['person'],
      minConfidence: 0.8,
      streamIds: [sensor],
    });
    // 10, 11, (5 resets), 12, 13, 14 -> one alert at the third of 12, 13, 14.
    await publishEvents([10, 11, 5, 12, 13, 14].map((v) => reading(sensor, v, 'dev-c')));
    const rollup = (max: number, revision: number) =>
      Rollup.fromPartial({
        scope: RollupScope.DEVICE,
        deviceId: 'dev-c',
        region: 'eu',
        sensorType: sensor,
        resolution: '1m',
        windowStart: new Date(60_000),
        windowEnd: new Date(120_000),
        count: 3,
        sum: 3,
        min: 1,
        max,
        avg: 1,
        revision,
      });
    for (const [i, rr] of [rollup(95, 1), rollup(50, 1), rollup(99, 2)].entries()) {
      await publishDurable(nats.js, topo.rollup('1m', 'eu'), encodeRollup(rr), {
        msgId: `r${i}-${sensor}`,
        contentType: 'application/x-protobuf',
      });
    }
    const detection = (label: string, confidence: number): Event => ({
      kind: {
        $case: 'detection',
        value: DetectionEvent.fromPartial({
          eventId: uniqueId('d'),
          deviceId: 'cam',
          streamId: sensor,
          region: 'eu',
          detections: [{ objectId: 'o1', label, confidence, classId: 0 }],
        }),
      },
    });
    await publishEvents([
      detection('person', 0.9),
      detection('person', 0.5),
      detection('car', 0.99),
    ]);
    const test = await api('POST', `/v1/subscriptions/${cons.id}/test`);
    expect(test.status).toBe(202);

    await waitFor('5 deliveries', () => r.requests.length >= 5);
    await sleep(800);
    const bodies = r.requests.map((q) => JSON.parse(q.body));
    const byType = (t: string) => bodies.filter((b) => b.type === t);
    expect(
      byType('telemetry.threshold.v1').map((b) => [b.data.event.value, b.data.consecutive]),
    ).toEqual([[14, 3]]);
    expect(
      byType('rollup.window_closed.v1').map((b) => [b.data.rollup.max, b.data.rollup.is_revision]),
    ).toEqual([
      [95, false],
      [99, true],
    ]);
    expect(
      byType('detection.matched.v1').map((b) => b.data.detections.map((x: any) => x.label)),
    ).toEqual([['person']]);
    expect(byType('sluice.test.v1')).toHaveLength(1);
    expect(r.requests.find((q) => JSON.parse(q.body).type === 'sluice.test.v1')!.id).toBe(
      test.json.webhookId,
    );
    expect(new Set(bodies.map((b) => b.data.subscription_id))).toEqual(
      new Set([cons.id, roll.id, det.id]),
    );
  });

  it('dead-letters malformed clean messages and keeps delivering the rest', async () => {
    const r = await receiver();
    const sensor = uniqueId('m');
    await subscribe(r.url, { type: 'telemetry', sensorTypes: [sensor] });
    await nats.js.publish(topo.clean('eu'), new TextEncoder().encode('{"not":"protobuf"}'), {
      msgID: uniqueId('bad'),
    });
    await publishEvents([reading(sensor, 1)]);
    await waitFor('delivered', () => r.successes().size === 1);
    const dl = await waitFor(
      'dead letter',
      async () => (await nats.readAll(topo.streams.dlq.name)).length >= 1 || undefined,
    );
    expect(dl).toBe(true);
  });

  it('admin API: auth, validation, SSRF at creation, OpenAPI', async () => {
    expect(
      (await api('GET', '/v1/subscriptions', undefined, 'wrong-token-0123456789')).status,
    ).toBe(401);
    const bad = await api('POST', '/v1/subscriptions', {
      url: 'http://127.0.0.1:1/x',
      filter: { type: 'telemetry', value: { between: 3 } },
    });
    expect(bad.status).toBe(400);
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/subscriptions', '/v1/subscriptions/{id}/dlq/redrive']),
    );
  });
});

// One endpoint's retries must not stop the others. A retry is a nak with a delay: the delivery stays
// unacknowledged on the server until its next attempt, and the deliveries consumer lets only
// WEBHOOK_MAX_ACK_PENDING deliveries be unacknowledged at once. Here a failing endpoint holds more
// deliveries in retry than the bound the sender used to derive from WEBHOOK_MAX_IN_FLIGHT
// (max(1000, 4 × in flight)); a healthy endpoint must still get its deliveries.
import { encodeBatch, TelemetryEvent, topology, type Event } from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import {
  createTestDatabase,
  natsFixture,
  uniqueId,
  waitFor,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import {
  startTestDispatcher,
  TEST_ADMIN_TOKEN,
  type TestDispatcher,
} from './test-fixtures/dispatcher';
import { startReceiver, type Receiver } from './test-fixtures/receiver';

describe('webhook dispatcher: an endpoint in retry does not hold up the others', () => {
  let nats: NatsFixture;
  let db: PgDatabase;
  let td: TestDispatcher;
  const ns = uniqueId('whi');
  const topo = topology(ns);
  const receivers: Receiver[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
    db = await createTestDatabase('webhook');
    td = await startTestDispatcher(nats, db, ns, {
      WEBHOOK_MAX_IN_FLIGHT: '8',
      WEBHOOK_RETRY_SCHEDULE: '1h',
      WEBHOOK_DEFAULT_RATE_PER_S: '100000',
      WEBHOOK_ENDPOINT_CONCURRENCY: '8',
    });
  });

  afterAll(async () => {
    await td?.stop();
    await Promise.all(receivers.map((r) => r.close()));
    await nats.cleanup();
    await db.drop();
  });

  async function subscribe(url: string, sensorType: string): Promise<void> {
    const res = await fetch(`${td.base}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url, filter: { type: 'telemetry', sensorTypes: [sensorType] } }),
    });
    expect(res.status).toBe(201);
  }

  const reading = (sensorType: string): Event => ({
    kind: {
      $case: 'telemetry',
      value: TelemetryEvent.fromPartial({
        eventId: uniqueId('ev'),
        deviceId: 'dev-1',
        sensorType,
        value: 1,
        unit: 'celsius',
        region: 'eu',
        eventTime: new Date(),
      }),
    },
  });

  async function publish(sensorType: string, n: number): Promise<void> {
    for (let i = 0; i < n; i += 100) {
      const batchId = uniqueId('b');
      const events = Array.from({ length: Math.min(100, n - i) }, () => reading(sensorType));
      await publishDurable(nats.js, topo.clean('eu'), encodeBatch({ batchId, events }), {
        msgId: batchId,
        contentType: 'application/x-protobuf',
      });
    }
  }

  it('a failing endpoint with 1,200 deliveries waiting an hour for their retry; a healthy one still gets every delivery', async () => {
    const failing = await startReceiver(() => ({ status: 500 }));
    const healthy = await startReceiver();
    receivers.push(failing, healthy);
    await subscribe(failing.url, 'broken');
    await subscribe(healthy.url, 'fine');
    // The matcher picks up new subscriptions every WEBHOOK_SUBSCRIPTION_REFRESH (500 ms).
    await new Promise((r) => setTimeout(r, 1_500));

    await publish('broken', 1_200);
    // Every one of them attempted once and now in retry (unacknowledged for an hour).
    await waitFor(
      '1,200 first attempts at the failing endpoint',
      () => (failing.requests.length >= 1_200 ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 100 },
    );

    await publish('fine', 20);
    await waitFor(
      'the healthy endpoint gets its 20',
      () => (healthy.requests.length >= 20 ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(failing.requests.length).toBe(1_200);
  });
});

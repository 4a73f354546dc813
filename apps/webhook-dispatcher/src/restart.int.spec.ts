import { publishDurable } from '@sluice/jetstream';
import { encodeBatch, TelemetryEvent, topology } from '@sluice/contracts';
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
import { startReceiver, verifyStandardWebhook, type Receiver } from './test-fixtures/receiver';

const TOKEN = 'test-admin-token-0123456789';

describe('webhook dispatcher process: SIGKILL with deliveries pending, then restart', () => {
  let nats: NatsFixture;
  let db: PgDatabase;
  let receiver: Receiver;
  const procs: ChildService[] = [];
  const ns = uniqueId('whk');
  const topo = topology(ns);

  beforeAll(async () => {
    nats = await natsFixture();
    db = await createTestDatabase('webhook_restart');
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
  });

  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await receiver?.close();
    await nats.cleanup();
    await db.drop();
  });

  function start(): ChildService {
    const p = spawnService('apps/webhook-dispatcher/src/main.ts', {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OTEL_SDK_DISABLED: 'true',
      PG_URL: db.url,
      WEBHOOK_ADMIN_PORT: '0',
      WEBHOOK_ADMIN_HOST: '127.0.0.1',
      WEBHOOK_ADMIN_TOKEN: TOKEN,
      WEBHOOK_RETRY_SCHEDULE: '1s,1s,1s,1s,1s,1s,1s,1s,1s,1s',
      WEBHOOK_RETRY_JITTER: '0',
      WEBHOOK_REQUEST_TIMEOUT: '2s',
      WEBHOOK_ACK_WAIT: '6s',
      WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
    });
    procs.push(p);
    return p;
  }

  async function adminPort(p: ChildService): Promise<number> {
    const line = await p.waitForLine(/admin API listening/, 60_000);
    await p.waitForLine(/webhook-dispatcher running/, 60_000);
    return JSON.parse(line).port as number;
  }

  it('resumes pending deliveries after a crash and delivers each exactly once', async () => {
    let up = false;
    receiver = await startReceiver(() => ({ status: up ? 200 : 503 }));
    const first = start();
    const port = await adminPort(first);
    const res = await fetch(`http://127.0.0.1:${port}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        url: receiver.url,
        filter: { type: 'telemetry', sensorTypes: ['boiler'], value: { gt: 90 } },
      }),
    });
    expect(res.status).toBe(201);
    const { secret } = (await res.json()) as { secret: string };

    const events = Array.from({ length: 8 }, (_, i) =>
      TelemetryEvent.fromPartial({
        eventId: uniqueId(`e${i}`),
        deviceId: 'd1',
        sensorType: 'boiler',
        value: 95 + i,
        unit: 'c',
        region: 'eu',
        eventTime: new Date(),
      }),
    );
    const batchId = uniqueId('b');
    await publishDurable(
      nats.js,
      topo.clean('eu'),
      encodeBatch({
        batchId,
        events: events.map((value) => ({ kind: { $case: 'telemetry', value } })),
      }),
      {
        msgId: batchId,
        contentType: 'application/x-protobuf',
      },
    );
    // Every delivery has been tried (and failed) at least once: they are pending retries.
    await waitFor('first attempts', () => new Set(receiver.requests.map((q) => q.id)).size === 8, {
      timeoutMs: 30_000,
    });
    first.kill('SIGKILL');
    await first.exited;
    up = true;
    await sleep(500);
    const before = receiver.requests.length;

    const second = start();
    await adminPort(second);
    await waitFor('all delivered after restart', () => receiver.successes().size === 8, {
      timeoutMs: 60_000,
    });
    await sleep(2_000);
    expect([...receiver.successes().values()]).toEqual(new Array(8).fill(1));
    expect(receiver.requests.length).toBeGreaterThan(before);
    for (const q of receiver.requests.filter((x) => x.status === 200)) {
      expect(verifyStandardWebhook(secret, q.id, q.timestamp, q.body, q.signature)).toBe(true);
    }
    const values = receiver.requests
      .filter((x) => x.status === 200)
      .map((q) => JSON.parse(q.body).data.event.value)
      .sort((a: number, b: number) => a - b);
    expect(values).toEqual(events.map((e) => e.value));
    second.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});

import { HEADERS } from '@sluice/contracts';
import {
  createTestDatabase,
  natsFixture,
  uniqueId,
  waitFor,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { adminApi, startTestDispatcher, type TestDispatcher } from './test-fixtures/dispatcher';
import { startReceiver, type Receiver } from './test-fixtures/receiver';

describe('webhook sender on the actor (real NATS, PostgreSQL and HTTP)', () => {
  let nats: NatsFixture;
  let db: PgDatabase;
  const ns = uniqueId('whs');
  const dispatchers: TestDispatcher[] = [];
  const receivers: Receiver[] = [];
  const settings = {
    WEBHOOK_RETRY_SCHEDULE: '300ms,300ms',
    WEBHOOK_ACK_WAIT: '3s',
    WEBHOOK_MAX_IN_FLIGHT: '2',
  };

  beforeAll(async () => {
    nats = await natsFixture();
    db = await createTestDatabase('webhook');
  });

  afterAll(async () => {
    for (const d of dispatchers.splice(0)) await d.stop();
    await Promise.all(receivers.map((r) => r.close()));
    await nats.cleanup();
    await db.drop();
  });

  async function dispatcher(): Promise<TestDispatcher> {
    const d = await startTestDispatcher(nats, db, ns, settings);
    dispatchers.push(d);
    return d;
  }

  const api = adminApi;

  it('dead-letters a malformed delivery to the NATS DLQ with its provenance', async () => {
    const { d, topo } = dispatchers[0] ?? (await dispatcher());
    const subject = d.webhooks.delivery('00000000-0000-4000-8000-000000000000');
    await nats.js.publish(subject, new TextEncoder().encode('{"v":1,"nope":true}'), {
      msgID: uniqueId('bad'),
    });
    const letter = await waitFor('dead letter', async () =>
      (await nats.readAll(topo.streams.dlq.name)).find(
        (m) => m.headers?.get(HEADERS.DLQ_ORIGINAL_SUBJECT) === subject,
      ),
    );
    expect(letter.headers!.get(HEADERS.DLQ_ERROR_CLASS)).toBe('MalformedDeliveryError');
    expect(letter.headers!.get(HEADERS.DLQ_ERROR)).toMatch(/does not match the format/);
    expect(letter.headers!.get(HEADERS.DLQ_ORIGINAL_STREAM)).toBe(d.webhooks.deliveriesStream.name);
    expect(letter.headers!.get(HEADERS.DLQ_SERVICE)).toBe('webhook-dispatcher');
  });

  it('stop() drains: in-flight POSTs finish and are settled, the rest is delivered once by the next sender with its attempt number', async () => {
    const first = dispatchers[0] ?? (await dispatcher());
    // The first two requests hang until the request timeout (4 s) cuts them; every later one succeeds.
    const r = await startReceiver((_req, _body, n) => (n < 2 ? 'hang' : { status: 200 }));
    receivers.push(r);
    const sub = await api(first.base, 'POST', '/v1/subscriptions', {
      url: r.url,
      filter: { type: 'telemetry', sensorTypes: [uniqueId('s')] },
      maxConcurrency: 4,
    });
    expect(sub.status).toBe(201);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const t = await api(first.base, 'POST', `/v1/subscriptions/${sub.json.id}/test`);
      expect(t.status).toBe(202);
      ids.push(t.json.webhookId);
    }
    await waitFor('two requests in flight', () => r.requests.length === 2);
    const stopped = first.d.sender.stop(15_000);
    expect(first.d.sender.state).toBe('draining');
    await stopped;
    expect(first.d.sender.state).toBe('stopped');
    // The two in flight were settled (cut by the timeout: an attempt logged as a retry), nothing else was tried.
    expect(r.abandoned).toHaveLength(2);
    expect(r.requests).toHaveLength(2);
    const retried = await api(
      first.base,
      'GET',
      `/v1/subscriptions/${sub.json.id}/attempts?limit=100`,
    );
    expect(retried.json.map((a: any) => [a.outcome, a.attempt])).toEqual([
      ['retry', 1],
      ['retry', 1],
    ]);

    const second = await dispatcher();
    await waitFor('all six delivered by the next sender', () => r.successes().size === 6, {
      timeoutMs: 30_000,
    });
    expect([...r.successes().values()]).toEqual([1, 1, 1, 1, 1, 1]);
    expect(new Set(r.successes().keys())).toEqual(new Set(ids));
    const attempts = await waitFor('six successes logged', async () => {
      const x = await api(
        second.base,
        'GET',
        `/v1/subscriptions/${sub.json.id}/attempts?limit=100`,
      );
      return x.json.filter((a: any) => a.outcome === 'success').length === 6 ? x.json : undefined;
    });
    // The two cut ones continue with attempt 2 (read back from the attempt log), the others start at 1.
    const successes = attempts.filter((a: any) => a.outcome === 'success');
    expect(successes.filter((a: any) => a.attempt === 2)).toHaveLength(2);
    expect(successes.filter((a: any) => a.attempt === 1)).toHaveLength(4);
  });
});

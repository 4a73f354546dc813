// The admin API's contract: every route's real responses (success and error) validated against
// the served OpenAPI document with openapi-backend; bearer auth; body limit and request timeout.
import { publishDurable } from '@sluice/jetstream';
import { encodeBatch, TelemetryEvent, type Event } from '@sluice/contracts';
import { fetchChecked, openApiChecker, type OpenApiChecker } from '@sluice/http/testing';
import {
  createTestDatabase,
  natsFixture,
  uniqueId,
  waitFor,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { connect } from 'node:net';
import {
  startTestDispatcher,
  TEST_ADMIN_TOKEN,
  type TestDispatcher,
} from './test-fixtures/dispatcher';
import { startReceiver, type Receiver } from './test-fixtures/receiver';

describe('webhook admin API (OpenAPI contract, auth, limits)', () => {
  let nats: NatsFixture;
  let db: PgDatabase;
  let t: TestDispatcher;
  let checker: OpenApiChecker;
  let receiver: Receiver;
  let healthy = true;

  beforeAll(async () => {
    nats = await natsFixture();
    db = await createTestDatabase('webhook_admin');
    t = await startTestDispatcher(nats, db, uniqueId('wha'), {
      WEBHOOK_RETRY_SCHEDULE: '200ms',
      WEBHOOK_ADMIN_REQUEST_TIMEOUT: '1s',
      WEBHOOK_ADMIN_BODY_LIMIT: '4096',
    });
    receiver = await startReceiver(() => ({ status: healthy ? 204 : 500 }));
    checker = await openApiChecker(await (await fetch(`${t.base}/openapi.json`)).json());
  });
  afterAll(async () => {
    await t?.stop();
    await receiver?.close();
    await nats?.cleanup();
    await db?.drop();
  });

  const call = (
    method: string,
    path: string,
    body?: unknown,
    token: string | null = TEST_ADMIN_TOKEN,
  ) =>
    fetchChecked(checker, t.base, path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined
        ? { body: typeof body === 'string' ? body : JSON.stringify(body) }
        : {}),
    });

  async function publish(sensorType: string) {
    const event: Event = {
      kind: {
        $case: 'telemetry',
        value: TelemetryEvent.fromPartial({
          eventId: uniqueId('ev'),
          deviceId: 'dev-1',
          sensorType,
          value: 1,
          unit: 'c',
          region: 'eu',
          eventTime: new Date(),
        }),
      },
    };
    const batchId = uniqueId('b');
    await publishDurable(nats.js, t.topo.clean('eu'), encodeBatch({ batchId, events: [event] }), {
      msgId: batchId,
      contentType: 'application/x-protobuf',
    });
  }

  it('serves a generated OpenAPI 3.1 document without a token', async () => {
    const res = await fetch(`${t.base}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['Subscription', 'Filter', 'DeadLetter', 'Problem']),
    );
    expect(checker.operations).toHaveLength(11);
  });

  it('answers 401 problem+json without or with a wrong token', async () => {
    for (const token of [null, 'wrong-token-0123456789']) {
      const r = await call('GET', '/v1/subscriptions', undefined, token);
      expect(r.status).toBe(401);
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.body).toMatchObject({ status: 401, code: 'unauthorized' });
    }
    expect(
      (
        await call(
          'POST',
          '/v1/subscriptions',
          { url: receiver.url, filter: { type: 'telemetry' } },
          null,
        )
      ).status,
    ).toBe(401);
  });

  it('manages a subscription through every route, each response matching the document', async () => {
    const sensor = uniqueId('s');
    const created = await call('POST', '/v1/subscriptions', {
      url: receiver.url,
      filter: { type: 'telemetry', sensorTypes: [sensor] },
      description: 'contract',
    });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^whsec_/);
    const id = created.body.id as string;

    expect(
      (await call('GET', '/v1/subscriptions')).body.map((s: { id: string }) => s.id),
    ).toContain(id);
    expect((await call('GET', `/v1/subscriptions/${id}`)).body).toMatchObject({
      id,
      description: 'contract',
      secretCount: 1,
    });
    expect(
      (await call('PATCH', `/v1/subscriptions/${id}`, { description: 'changed' })).body.description,
    ).toBe('changed');
    expect((await call('POST', `/v1/subscriptions/${id}/secrets/rotate`)).body.secret).toMatch(
      /^whsec_/,
    );
    expect(
      (await call('POST', `/v1/subscriptions/${id}/secrets/rotate`, { graceSeconds: 0 })).status,
    ).toBe(200);

    const test = await call('POST', `/v1/subscriptions/${id}/test`);
    expect(test.status).toBe(202);
    await publish(sensor);
    await waitFor('two deliveries', () => receiver.successes().size >= 2);
    const attempts = await waitFor('attempts logged', async () => {
      const r = await call('GET', `/v1/subscriptions/${id}/attempts?limit=5`);
      return r.body.length >= 2 ? r.body : undefined;
    });
    expect(attempts[0]).toMatchObject({ subscriptionId: id, outcome: 'success', status: 204 });
    expect(
      (await call('GET', `/v1/subscriptions/${id}/attempts?webhookId=${test.body.webhookId}`)).body,
    ).toHaveLength(1);

    // A failing endpoint: the delivery dies after its one retry, then is redriven.
    healthy = false;
    await publish(sensor);
    const dead = await waitFor(
      'dead letter',
      async () => {
        const r = await call('GET', `/v1/subscriptions/${id}/dlq`);
        return r.body.length === 1 ? r.body : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(dead[0]).toMatchObject({ reason: 'exhausted', lastStatus: 500 });
    expect(JSON.parse(dead[0].body as string)).toMatchObject({ type: expect.any(String) });
    healthy = true;
    expect(
      (await call('POST', `/v1/subscriptions/${id}/dlq/${dead[0].webhookId}/redrive`)).body,
    ).toEqual({ redriven: 1, webhookId: dead[0].webhookId });
    expect(
      (await call('GET', `/v1/subscriptions/${id}/dlq?includeRedriven=true`)).body[0].redrivenAt,
    ).toEqual(expect.any(String));
    expect((await call('POST', `/v1/subscriptions/${id}/dlq/redrive`)).body).toEqual({
      redriven: 0,
      more: false,
    });
    expect(
      (
        await call('POST', `/v1/subscriptions/${id}/dlq/redrive`, {
          since: new Date().toISOString(),
        })
      ).status,
    ).toBe(202);

    // Disabled: test events and redrives are refused.
    expect((await call('PATCH', `/v1/subscriptions/${id}`, { enabled: false })).body.enabled).toBe(
      false,
    );
    expect((await call('POST', `/v1/subscriptions/${id}/test`)).body).toMatchObject({
      status: 409,
      code: 'conflict',
    });
    expect((await call('POST', `/v1/subscriptions/${id}/dlq/redrive`, {})).status).toBe(409);
    expect((await call('POST', `/v1/subscriptions/${id}/dlq/x-1/redrive`)).status).toBe(409);

    expect((await call('DELETE', `/v1/subscriptions/${id}`)).status).toBe(204);
    expect((await call('DELETE', `/v1/subscriptions/${id}`)).body).toMatchObject({
      status: 404,
      code: 'not_found',
    });
  });

  it('answers 400, 404 and 422 as problem+json', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    for (const [method, path, body] of [
      ['GET', `/v1/subscriptions/${unknown}`],
      ['PATCH', `/v1/subscriptions/${unknown}`, { description: 'x' }],
      ['POST', `/v1/subscriptions/${unknown}/secrets/rotate`],
      ['POST', `/v1/subscriptions/${unknown}/test`],
      ['GET', `/v1/subscriptions/${unknown}/attempts`],
      ['GET', `/v1/subscriptions/${unknown}/dlq`],
      ['POST', `/v1/subscriptions/${unknown}/dlq/redrive`],
      ['POST', `/v1/subscriptions/${unknown}/dlq/wh-1/redrive`],
    ] as const) {
      expect((await call(method, path, body)).body).toMatchObject({
        status: 404,
        code: 'not_found',
      });
    }
    const bad = await call('POST', '/v1/subscriptions', {
      url: receiver.url,
      filter: { type: 'telemetry', value: { between: 3 } },
    });
    expect(bad.body).toMatchObject({ status: 400, code: 'invalid_body' });
    expect(bad.body.errors[0].path).toMatch(/^filter/);
    expect(
      (await call('POST', '/v1/subscriptions', { url: 'not a url', filter: { type: 'telemetry' } }))
        .status,
    ).toBe(400);
    expect((await call('GET', '/v1/subscriptions/not-a-uuid')).body).toMatchObject({
      status: 400,
      parameter: 'id',
    });
    expect((await call('GET', `/v1/subscriptions/${unknown}/dlq?since=yesterday`)).status).toBe(
      404,
    );
    const refused = await call('POST', '/v1/subscriptions', {
      url: 'http://10.1.2.3/hook',
      filter: { type: 'telemetry' },
    });
    expect(refused.body).toMatchObject({ status: 422, code: 'unprocessable' });
    expect(refused.body.detail).toMatch(/refusing to call/);
    const sub = await call('POST', '/v1/subscriptions', {
      url: receiver.url,
      filter: { type: 'telemetry', sensorTypes: [uniqueId('n')] },
    });
    expect(
      (await call('GET', `/v1/subscriptions/${sub.body.id}/dlq?since=yesterday`)).body,
    ).toMatchObject({ status: 400 });
    expect(
      (await call('PATCH', `/v1/subscriptions/${sub.body.id}`, { url: 'http://169.254.169.254/' }))
        .status,
    ).toBe(422);
    expect((await call('PATCH', `/v1/subscriptions/${sub.body.id}`, { nope: 1 })).status).toBe(400);
    expect(
      (await call('POST', `/v1/subscriptions/${sub.body.id}/secrets/rotate`, { secret: 'plain' }))
        .status,
    ).toBe(400);
  });

  it('refuses a body over WEBHOOK_ADMIN_BODY_LIMIT with 413 and a non-JSON body with 415', async () => {
    const big = await call('POST', '/v1/subscriptions', {
      url: receiver.url,
      description: 'x'.repeat(5000),
      filter: { type: 'telemetry' },
    });
    expect(big.body).toMatchObject({ status: 413, code: 'payload_too_large' });
    const text = await fetchChecked(checker, t.base, '/v1/subscriptions', {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'text/plain' },
      body: 'hello',
    });
    expect(text.status).toBe(415);
  });

  it('answers 408 problem+json when a body does not arrive within WEBHOOK_ADMIN_REQUEST_TIMEOUT', async () => {
    const port = Number(new URL(t.base).port);
    const raw = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () =>
        s.write(
          `POST /v1/subscriptions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TEST_ADMIN_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"url":`,
        ),
      );
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('close', () => resolve(got));
      s.on('error', reject);
      s.setTimeout(15_000, () => s.destroy(new Error('no answer within 15 s')));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 408 /);
    const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
    checker.check({
      method: 'POST',
      url: '/v1/subscriptions',
      status: 408,
      contentType: /content-type: ([^\r]+)/i.exec(raw)![1]!,
      text: body,
    });
    expect(JSON.parse(body)).toMatchObject({ status: 408, code: 'timeout' });
  });

  it('exercised every route with its success status', () => {
    expect([...checker.seen]).toEqual(
      expect.arrayContaining([
        'GET /v1/subscriptions 200',
        'POST /v1/subscriptions 201',
        'GET /v1/subscriptions/{id} 200',
        'PATCH /v1/subscriptions/{id} 200',
        'DELETE /v1/subscriptions/{id} 204',
        'POST /v1/subscriptions/{id}/secrets/rotate 200',
        'POST /v1/subscriptions/{id}/test 202',
        'GET /v1/subscriptions/{id}/attempts 200',
        'GET /v1/subscriptions/{id}/dlq 200',
        'POST /v1/subscriptions/{id}/dlq/redrive 202',
        'POST /v1/subscriptions/{id}/dlq/{webhookId}/redrive 202',
        'POST /v1/subscriptions 400',
        'POST /v1/subscriptions 401',
        'POST /v1/subscriptions 408',
        'POST /v1/subscriptions 413',
        'POST /v1/subscriptions 415',
        'POST /v1/subscriptions 422',
        'POST /v1/subscriptions/{id}/test 409',
      ]),
    );
  });
});

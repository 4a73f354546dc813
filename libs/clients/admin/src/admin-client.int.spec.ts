// The generated admin client against the real webhook dispatcher, run as its own process: a
// subscription is created, changed, tested (the signed test event reaches a receiver on loopback),
// rotated and deleted through the client, and the API's refusals come back as typed errors.
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { topology } from '@sluice/contracts';
import {
  createTestDatabase,
  natsFixture,
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { ApiProblemError, createAdminClient, type AdminClient } from './index';

const TOKEN = `admin-client-${randomUUID()}`;

interface Hook {
  headers: IncomingHttpHeaders;
  body: string;
}

/** Standard Webhooks signature check, as a subscriber would do it with the secret it was given. */
function signedWith(secret: string, hook: Hook): boolean {
  const id = String(hook.headers['webhook-id']);
  const ts = String(hook.headers['webhook-timestamp']);
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${hook.body}`).digest('base64');
  return String(hook.headers['webhook-signature'])
    .split(' ')
    .some((s) => s === `v1,${expected}`);
}

describe('@sluice/admin-client against the webhook dispatcher', () => {
  let nats: NatsFixture;
  let db: PgDatabase;
  let dispatcher: ChildService;
  let receiver: Server;
  let receiverUrl: string;
  let baseUrl: string;
  let admin: AdminClient;
  const hooks: Hook[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
    db = await createTestDatabase('aclient');
    const ns = uniqueId('aclient');
    const topo = topology(ns);
    const prefix = ns.toUpperCase().replace(/-/g, '_');
    for (const s of [
      ...Object.values(topo.streams).map((s) => s.name),
      `${prefix}_WEBHOOK_DELIVERIES`,
      `${prefix}_WEBHOOK_OPS`,
    ])
      nats.track(s);
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (hooks.length < 1000)
          hooks.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;

    dispatcher = spawnService('apps/webhook-dispatcher/src/main.ts', {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      OPS_PORT: '0',
      LOG_LEVEL: 'info',
      OTEL_SDK_DISABLED: 'true',
      PG_URL: db.url,
      WEBHOOK_ADMIN_PORT: '0',
      WEBHOOK_ADMIN_TOKEN: TOKEN,
      WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
      WEBHOOK_REQUEST_TIMEOUT: '2s',
    });
    const running = await dispatcher.waitForLine(/webhook-dispatcher running/, 60_000);
    baseUrl = `http://127.0.0.1:${(JSON.parse(running) as { adminPort: number }).adminPort}`;
    admin = createAdminClient({ baseUrl, token: TOKEN });
  }, 120_000);

  afterAll(async () => {
    if (dispatcher) {
      dispatcher.kill('SIGTERM');
      await dispatcher.exited;
    }
    await new Promise<void>((resolve) => {
      receiver?.closeAllConnections();
      if (receiver) receiver.close(() => resolve());
      else resolve();
    });
    await nats?.cleanup();
    await db?.drop();
  });

  it('serves the OpenAPI document the client was generated from', async () => {
    const served = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as unknown;
    const committed = JSON.parse(
      readFileSync(join(__dirname, '..', 'openapi.json'), 'utf8'),
    ) as unknown;
    expect(served).toEqual(committed);
  });

  it('creates, lists, changes, tests, rotates and deletes a subscription', async () => {
    expect(await admin.list()).toEqual([]);

    const created = await admin.create({
      url: receiverUrl,
      description: 'hot rooms',
      filter: { type: 'telemetry', sensorTypes: ['temp'], value: { gt: 50 }, consecutive: 2 },
    });
    expect(created).toMatchObject({
      url: receiverUrl,
      description: 'hot rooms',
      enabled: true,
      secretCount: 1,
      rateLimitPerS: null,
      maxConcurrency: null,
      filter: { type: 'telemetry', sensorTypes: ['temp'], value: { gt: 50 }, consecutive: 2 },
    });
    expect(created.secret).toMatch(/^whsec_/);
    const { secret, ...view } = created;

    expect(await admin.list()).toEqual([view]);
    expect(await admin.get(created.id)).toEqual(view);

    const changed = await admin.update(created.id, {
      description: 'very hot rooms',
      maxConcurrency: 2,
    });
    expect(changed).toMatchObject({
      id: created.id,
      description: 'very hot rooms',
      maxConcurrency: 2,
    });

    const webhookId = await admin.sendTest(created.id);
    const hook = await waitFor(
      'the test event at the receiver',
      async () => hooks.find((h) => h.headers['webhook-id'] === webhookId),
      { timeoutMs: 30_000 },
    );
    expect(signedWith(secret, hook)).toBe(true);
    expect(JSON.parse(hook.body)).toMatchObject({ type: 'sluice.test.v1' });
    const attempts = await waitFor(
      'the attempt logged',
      async () => {
        const rows = await admin.attempts(created.id, { webhookId });
        return rows.length > 0 ? rows : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(attempts[0]).toMatchObject({
      subscriptionId: created.id,
      webhookId,
      outcome: 'success',
      status: 204,
    });
    expect(await admin.deadLetters(created.id)).toEqual([]);

    const rotated = await admin.rotateSecret(created.id, { graceSeconds: 60 });
    expect(rotated).toMatch(/^whsec_/);
    expect(rotated).not.toBe(secret);
    expect((await admin.get(created.id)).secretCount).toBe(2);

    await admin.remove(created.id);
    const gone = (await admin.get(created.id).catch((e: unknown) => e)) as ApiProblemError;
    expect(gone).toBeInstanceOf(ApiProblemError);
    expect([gone.status, gone.code, gone.operation]).toEqual([
      404,
      'not_found',
      'GET /v1/subscriptions/{id}',
    ]);
    expect(await admin.list()).toEqual([]);
  });

  it('turns the refusals into typed errors', async () => {
    const badId = (await admin.get('not-a-uuid').catch((e: unknown) => e)) as ApiProblemError;
    expect([badId.status, badId.code, badId.problem.parameter]).toEqual([
      400,
      'invalid_parameter',
      'id',
    ]);

    const badUrl = (await admin
      .create({ url: 'ftp://127.0.0.1/x', filter: { type: 'telemetry' } })
      .catch((e: unknown) => e)) as ApiProblemError;
    expect([badUrl.status, badUrl.problem.detail]).toEqual([400, 'url must be http or https']);

    // A private address outside WEBHOOK_SSRF_ALLOW_CIDRS: refused before any request is sent.
    const ssrf = (await admin
      .create({ url: 'http://10.1.2.3/hook', filter: { type: 'telemetry' } })
      .catch((e: unknown) => e)) as ApiProblemError;
    expect([ssrf.status, ssrf.code]).toEqual([422, 'unprocessable']);

    const stranger = createAdminClient({ baseUrl, token: 'not-the-admin-token' });
    const denied = (await stranger.list().catch((e: unknown) => e)) as ApiProblemError;
    expect([denied.status, denied.code, denied.retriable]).toEqual([401, 'unauthorized', false]);
    expect(await admin.list()).toEqual([]);
  });
});

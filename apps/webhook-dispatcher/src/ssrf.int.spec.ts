import { createDeviceHasher, createLogger } from '@sluice/observability';
import {
  natsFixture,
  createTestDatabase,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { Pool } from 'pg';
import { startAdminApi, type AdminApi } from './admin-api';
import { SsrfRefusedError } from './errors';
import { WebhookHttpClient } from './http-client';
import { DeliveryPublisher } from './matcher';
import { migrate } from './migrations';
import { webhookTopology } from './names';
import { SsrfPolicy } from './ssrf';
import { Store } from './store';
import { SubscriptionCache } from './subscription-cache';
import { startReceiver, type Receiver } from './test-fixtures/receiver';
import { testKeyring } from './test-fixtures/secrets';

const logger = createLogger({
  service: 'webhook-test',
  level: 'silent',
  hashDeviceId: createDeviceHasher('test-key-0123456789'),
});
const TOKEN = 'test-admin-token-0123456789';

describe('SSRF protection without an allow-list', () => {
  let db: PgDatabase;
  let pool: Pool;
  let nats: NatsFixture;
  let api: AdminApi;
  let receiver: Receiver;

  beforeAll(async () => {
    db = await createTestDatabase('webhook_ssrf');
    pool = new Pool({ connectionString: db.url, max: 2 });
    await migrate(pool);
    nats = await natsFixture();
    const store = new Store(pool, { keyring: testKeyring() });
    api = await startAdminApi({
      port: 0,
      host: '127.0.0.1',
      token: TOKEN,
      store,
      cache: new SubscriptionCache(store, logger, 60_000),
      publisher: new DeliveryPublisher(nats.nc, webhookTopology('unused')),
      ssrf: new SsrfPolicy([]),
      requireHttps: false,
      logger,
    });
    receiver = await startReceiver();
  });

  afterAll(async () => {
    await api.close();
    await receiver.close();
    await pool.end();
    await nats.cleanup();
    await db.drop();
  });

  it.each([
    `http://127.0.0.1:1/hook`,
    'http://localhost/hook',
    'http://[::1]/hook',
    'http://[::ffff:127.0.0.1]/hook',
    'http://[::ffff:a9fe:a9fe]/latest/meta-data',
    'http://169.254.169.254/latest/meta-data',
    'http://10.1.2.3/',
    'http://192.168.1.1/',
    'http://0.0.0.0/',
    'http://[fe80::1]/',
    'http://224.0.0.1/',
    'http://2130706433/',
  ])('refuses to create a subscription to %s', async (url) => {
    const res = await fetch(`http://127.0.0.1:${api.port}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url, filter: { type: 'telemetry' } }),
    });
    expect(res.status).toBe(422);
    // problem+json (RFC 9457) since the move to @sluice/http: the reason is `detail`.
    expect(((await res.json()) as { detail: string }).detail).toMatch(/refusing to call/);
  });

  it('refuses at send time: nothing reaches a loopback receiver unless allow-listed', async () => {
    const strict = new WebhookHttpClient(new SsrfPolicy([]), {
      timeoutMs: 2_000,
      bodyPrefixBytes: 64,
    });
    const refused = await strict.post('a', receiver.url, {}, '{}', 1);
    expect(refused.error).toBeInstanceOf(SsrfRefusedError);
    expect(refused.status).toBeUndefined();
    expect(receiver.requests).toHaveLength(0);
    const allowed = new WebhookHttpClient(new SsrfPolicy(['127.0.0.0/8']), {
      timeoutMs: 2_000,
      bodyPrefixBytes: 64,
    });
    const ok = await allowed.post('a', receiver.url, {}, '{}', 1);
    expect(ok.status).toBe(204);
    expect(receiver.requests).toHaveLength(1);
    strict.close();
    allowed.close();
  });
});

import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@sluice/config';
import {
  createTestDatabase,
  natsFixture,
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { Pool } from 'pg';
import type { Registry } from 'prom-client';
import { migrate, migrationsDir } from './migrations';
import { SECRET_METRICS } from './names';
import { generateSecret } from './signing';
import {
  adminApi,
  startTestDispatcher,
  TEST_ADMIN_TOKEN,
  type TestDispatcher,
} from './test-fixtures/dispatcher';
import { startReceiver, verifyStandardWebhook, type Receiver } from './test-fixtures/receiver';
import { keysEnv, testKey } from './test-fixtures/secrets';

const FILTER = { type: 'telemetry', sensorTypes: ['never-sent'] };

const api = adminApi;

async function subscribe(
  base: string,
  url: string,
  secret?: string,
): Promise<{ id: string; secret: string }> {
  const res = await api(base, 'POST', '/v1/subscriptions', {
    url,
    filter: FILTER,
    ...(secret ? { secret } : {}),
  });
  expect(res.status).toBe(201);
  return res.json as { id: string; secret: string };
}

async function rotate(base: string, id: string, secret?: string): Promise<string> {
  const res = await api(
    base,
    'POST',
    `/v1/subscriptions/${id}/secrets/rotate`,
    secret ? { secret } : {},
  );
  expect(res.status).toBe(200);
  return (res.json as { secret: string }).secret;
}

async function testEvent(base: string, id: string): Promise<string> {
  const res = await api(base, 'POST', `/v1/subscriptions/${id}/test`);
  expect(res.status).toBe(202);
  return (res.json as { webhookId: string }).webhookId;
}

/** Every row of every `webhook_*` table, every column as text (bytea as hex): what a dump holds. */
async function dumpWebhookTables(pool: Pool): Promise<{ tables: string[]; text: string }> {
  const t = await pool.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'webhook\\_%' ORDER BY table_name`,
  );
  const tables = t.rows.map((r) => r.table_name);
  const lines: string[] = [];
  for (const table of tables) {
    const rows = await pool.query<{ row: string }>(`SELECT w::text AS row FROM "${table}" w`);
    lines.push(...rows.rows.map((r) => r.row));
  }
  return { tables, text: lines.join('\n') };
}

/** The secret, its key bytes and the whole string, as text, base64, base64url and hex. */
function encodings(secret: string): string[] {
  const b64 = secret.slice('whsec_'.length);
  const key = Buffer.from(b64, 'base64');
  const whole = Buffer.from(secret, 'utf8');
  const unpadded = (s: string) => s.replace(/=+$/, '');
  return [
    secret,
    unpadded(b64),
    unpadded(key.toString('base64url')),
    key.toString('hex'),
    unpadded(whole.toString('base64')),
    whole.toString('hex'),
  ];
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const m = await registry.getSingleMetric(name)?.get();
  return m?.values.find((v) =>
    Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  )?.value;
}

async function keyIds(pool: Pool): Promise<Array<{ key_id: string | null; plaintext: boolean }>> {
  return (
    await pool.query<{ key_id: string | null; plaintext: boolean }>(
      'SELECT key_id, secret IS NOT NULL AS plaintext FROM webhook_secrets ORDER BY id',
    )
  ).rows;
}

describe('webhook signing secrets at rest (real PostgreSQL, NATS and HTTP)', () => {
  let nats: NatsFixture;
  const dbs: PgDatabase[] = [];
  const pools: Pool[] = [];
  const receivers: Receiver[] = [];
  const dispatchers: TestDispatcher[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterAll(async () => {
    for (const d of dispatchers.splice(0)) await d.stop().catch(() => undefined);
    await Promise.all(receivers.map((r) => r.close()));
    await Promise.all(pools.map((p) => p.end()));
    await nats.cleanup();
    await Promise.all(dbs.map((db) => db.drop()));
  });

  async function database(prefix: string): Promise<{ db: PgDatabase; pool: Pool }> {
    const db = await createTestDatabase(prefix);
    dbs.push(db);
    const pool = new Pool({ connectionString: db.url, max: 2 });
    pools.push(pool);
    return { db, pool };
  }

  async function dispatcher(db: PgDatabase, ns: string, env: Record<string, string>) {
    const t = await startTestDispatcher(nats, db, ns, env);
    dispatchers.push(t);
    return t;
  }

  async function stop(t: TestDispatcher) {
    dispatchers.splice(dispatchers.indexOf(t), 1);
    await t.stop();
  }

  async function receiver(status = 204) {
    const r = await startReceiver(() => ({ status }));
    receivers.push(r);
    return r;
  }

  /** Waits for `webhookId` at `r` and checks that each of `secrets` signed it. */
  async function expectSigned(r: Receiver, webhookId: string, secrets: string[]) {
    const got = await waitFor(
      `delivery ${webhookId}`,
      () => r.requests.find((q) => q.id === webhookId),
      {
        timeoutMs: 30_000,
      },
    );
    for (const secret of secrets)
      expect(verifyStandardWebhook(secret, got.id, got.timestamp, got.body, got.signature)).toBe(
        true,
      );
    return got;
  }

  it('keeps no secret readable in any webhook table: plaintext rows of the previous release are encrypted at start, new ones never written plain', async () => {
    const { db, pool } = await database('webhook_at_rest');
    // The previous release: migration 1 only, secrets in plaintext.
    const v1 = mkdtempSync(join(tmpdir(), 'webhook-v1-'));
    try {
      const file = '0001_subscriptions_secrets_attempts_dead_letters.sql';
      copyFileSync(join(migrationsDir(), file), join(v1, file));
      await migrate(pool, undefined, v1);
    } finally {
      rmSync(v1, { recursive: true, force: true });
    }
    const ok = await receiver();
    const gone = await receiver(410);
    const legacy = { id: '0b5e7a9c-3d2f-4e1a-8b6c-5d4e3f2a1b0c', secret: generateSecret() };
    const legacyExpired = generateSecret();
    await pool.query('INSERT INTO webhook_subscriptions (id, url, filter) VALUES ($1, $2, $3)', [
      legacy.id,
      ok.url,
      JSON.stringify(FILTER),
    ]);
    await pool.query(
      `INSERT INTO webhook_secrets (subscription_id, secret, created_at, expires_at)
       VALUES ($1, $2, now() - interval '2 days', now() - interval '1 day'), ($1, $3, now(), NULL)`,
      [legacy.id, legacyExpired, legacy.secret],
    );

    // This release's schema first, to tell the start's rewrite of the table from the migration's.
    await migrate(pool);
    const filenode = async () =>
      (await pool.query<{ n: string }>(`SELECT pg_relation_filenode('webhook_secrets') AS n`))
        .rows[0]!.n;
    const migrated = await filenode();
    const k1 = testKey('k1');
    const t = await dispatcher(db, uniqueId('whs'), { WEBHOOK_SECRET_KEYS: keysEnv(k1) });
    // VACUUM FULL wrote the table anew: the old row versions holding the plaintext are gone with its old file.
    expect(await filenode()).not.toBe(migrated);
    expect(await keyIds(pool)).toEqual([
      { key_id: 'k1', plaintext: false },
      { key_id: 'k1', plaintext: false },
    ]);

    // Through the admin API: generated and own secrets, rotations (both keep signing), a dead letter.
    const a = await subscribe(t.base, ok.url);
    const aNext = await rotate(t.base, a.id);
    const ownSecret = generateSecret();
    const b = await subscribe(t.base, ok.url, ownSecret);
    expect(b.secret).toBe(ownSecret);
    const bNext = await rotate(t.base, b.id, generateSecret());
    const c = await subscribe(t.base, gone.url);
    expect((await api(t.base, 'GET', `/v1/subscriptions/${a.id}`)).json.secretCount).toBe(2);

    await expectSigned(ok, await testEvent(t.base, a.id), [a.secret, aNext]);
    await expectSigned(ok, await testEvent(t.base, b.id), [b.secret, bNext]);
    const fromLegacy = await expectSigned(ok, await testEvent(t.base, legacy.id), [legacy.secret]);
    expect(
      verifyStandardWebhook(
        legacyExpired,
        fromLegacy.id,
        fromLegacy.timestamp,
        fromLegacy.body,
        fromLegacy.signature,
      ),
    ).toBe(false);
    const dead = await testEvent(t.base, c.id);
    await waitFor('the dead letter of the 410', async () => {
      const r = await pool.query('SELECT 1 FROM webhook_dead_letters WHERE webhook_id = $1', [
        dead,
      ]);
      return r.rowCount === 1;
    });

    const dump = await dumpWebhookTables(pool);
    expect(dump.tables).toEqual(
      expect.arrayContaining([
        'webhook_attempts',
        'webhook_dead_letters',
        'webhook_secrets',
        'webhook_subscriptions',
      ]),
    );
    const text = dump.text.toLowerCase();
    const secrets = [a.secret, aNext, b.secret, bNext, c.secret, legacy.secret, legacyExpired];
    for (const secret of secrets)
      for (const form of encodings(secret)) {
        const hex = /^[0-9a-f]+$/.test(form);
        expect({ form, found: hex ? text.includes(form) : dump.text.includes(form) }).toEqual({
          form,
          found: false,
        });
      }
    // The dump does hold the sealed rows: 7 secrets, every one under k1, none plaintext.
    expect(await keyIds(pool)).toEqual(
      Array.from({ length: 7 }, () => ({ key_id: 'k1', plaintext: false })),
    );
    await t.d.secretRotation.runOnce();
    expect(await metric(t.registry, SECRET_METRICS.rows, { key_id: 'k1' })).toBe(7);
    expect(await metric(t.registry, SECRET_METRICS.pending)).toBe(0);
  });

  it('rotates the key in the background while deliveries are signed, on every replica, until every secret is under the new key', async () => {
    const { db, pool } = await database('webhook_rotation');
    const ns = uniqueId('whr');
    const r = await receiver();
    const k1 = testKey('k1');
    const k2 = testKey('k2');
    // Deliveries a stopped replica had prefetched come back after the ack wait.
    const ackWait = { WEBHOOK_ACK_WAIT: '4s' };
    // Replica A knows only k1 (the release before the rotation).
    const a = await dispatcher(db, ns, { ...ackWait, WEBHOOK_SECRET_KEYS: keysEnv(k1) });
    const subs: Array<{ id: string; secrets: string[] }> = [];
    for (let i = 0; i < 8; i++) {
      const s = await subscribe(a.base, r.url);
      subs.push({ id: s.id, secrets: [s.secret] });
    }
    for (const s of subs.slice(0, 4)) s.secrets.push(await rotate(a.base, s.id));
    const total = subs.reduce((n, s) => n + s.secrets.length, 0);

    // Test events through whichever replicas run, until told to stop: deliveries signed all along.
    const sent: Array<{ webhookId: string; secrets: string[] }> = [];
    const bases = [a.base];
    let sending = true;
    const sender = (async () => {
      for (let round = 0; sending; round++)
        for (const s of subs) {
          const base = bases[round % bases.length]!;
          sent.push({ webhookId: await testEvent(base, s.id), secrets: [...s.secrets] });
        }
    })();
    await waitFor('deliveries before the rotation', () => r.requests.length >= subs.length);
    expect(await keyIds(pool)).toEqual(
      Array.from({ length: total }, () => ({ key_id: 'k1', plaintext: false })),
    );

    // Replica B: k1 and k2, k2 active, re-wrapping one secret per transaction.
    const b = await dispatcher(db, ns, {
      ...ackWait,
      WEBHOOK_SECRET_KEYS: keysEnv(k1, k2),
      WEBHOOK_SECRET_ACTIVE_KEY: 'k2',
      WEBHOOK_SECRET_REWRAP_BATCH: '1',
      WEBHOOK_SECRET_REWRAP_INTERVAL: '200ms',
    });
    bases.push(b.base);
    await waitFor(
      'every secret under k2',
      async () => (await metric(b.registry, SECRET_METRICS.pending)) === 0,
    );
    expect(await metric(b.registry, SECRET_METRICS.rows, { key_id: 'k2' })).toBe(total);
    expect(await metric(b.registry, SECRET_METRICS.rows, { key_id: 'k1' })).toBe(0);
    expect(await keyIds(pool)).toEqual(
      Array.from({ length: total }, () => ({ key_id: 'k2', plaintext: false })),
    );

    // A, without k2, still signs: it decrypted each secret once, and a re-wrap keeps the ciphertext.
    await a.d.cache.refresh();
    for (const s of subs)
      expect(a.d.cache.snapshot.byId.get(s.id)).toMatchObject({
        secrets: [...s.secrets].reverse(),
        unreadableSecrets: 0,
      });
    expect(await metric(a.registry, SECRET_METRICS.unreadable)).toBeUndefined();
    const before = sent.length;
    await waitFor('deliveries after the rotation', () => sent.length >= before + 2 * subs.length);

    // A secret written by B under k2 is one A cannot read: A counts it and its deliveries wait for B.
    const late = await subscribe(b.base, r.url);
    await a.d.cache.refresh();
    expect(a.d.cache.snapshot.byId.get(late.id)).toMatchObject({
      secrets: [],
      unreadableSecrets: 1,
    });
    expect(await metric(a.registry, SECRET_METRICS.unreadable, { key_id: 'k2' })).toBe(1);
    const lateIds = [await testEvent(a.base, late.id), await testEvent(b.base, late.id)];

    // k1 can go once nothing is under it: a replica with k2 alone starts.
    bases.splice(bases.indexOf(a.base), 1);
    const untilA = sent.length;
    await waitFor('a request past A', () => sent.length > untilA + 1);
    await stop(a);
    const c = await dispatcher(db, ns, { ...ackWait, WEBHOOK_SECRET_KEYS: keysEnv(k2) });
    bases.push(c.base);
    const afterRestart = sent.length;
    await waitFor('deliveries through C', () => sent.length >= afterRestart + 2 * subs.length);
    sending = false;
    await sender;

    for (const s of sent) await expectSigned(r, s.webhookId, s.secrets);
    for (const id of lateIds) await expectSigned(r, id, [late.secret]);
    expect(await keyIds(pool)).toEqual(
      Array.from({ length: total + 1 }, () => ({ key_id: 'k2', plaintext: false })),
    );
  });

  describe('refuses to start with a missing or wrong key, naming the variable', () => {
    let db: PgDatabase;
    const ns = uniqueId('whf');
    const k1 = testKey('k1');
    let keyDir: string;

    beforeAll(async () => {
      ({ db } = await database('webhook_keys'));
      keyDir = mkdtempSync(join(tmpdir(), 'webhook-keys-'));
      const t = await dispatcher(db, ns, { WEBHOOK_SECRET_KEYS: keysEnv(k1) });
      await subscribe(t.base, (await receiver()).url);
      await stop(t);
    });
    afterAll(() => rmSync(keyDir, { recursive: true, force: true }));

    const failure = (env: Record<string, string>) =>
      startTestDispatcher(nats, db, ns, env).then(
        async (t) => {
          await t.stop();
          throw new Error('the dispatcher started');
        },
        (err: unknown) => err,
      );

    it('a key id in use that is not configured', async () => {
      const envs: Array<Record<string, string>> = [
        { WEBHOOK_SECRET_KEYS: keysEnv(testKey('k2')) },
        {},
      ];
      for (const env of envs) {
        const err = await failure(env);
        expect(err).toBeInstanceOf(ConfigError);
        expect(err).toMatchObject({ variable: 'WEBHOOK_SECRET_KEYS' });
        expect((err as Error).message).toMatch(
          /WEBHOOK_SECRET_KEYS: has no key "k1" \(nor WEBHOOK_SECRET_KEYS_FILE\), and secrets are stored under it/,
        );
      }
    });

    it('another key under the id in use, from the variable or the file', async () => {
      const wrong = testKey('k1');
      const err = await failure({
        WEBHOOK_SECRET_KEYS: `${keysEnv(wrong)},${keysEnv(testKey('k2'))}`,
        WEBHOOK_SECRET_ACTIVE_KEY: 'k2',
      });
      expect(err).toBeInstanceOf(ConfigError);
      expect(err).toMatchObject({ variable: 'WEBHOOK_SECRET_KEYS' });
      expect((err as Error).message).toMatch(
        /key "k1" does not decrypt the secret of subscription/,
      );

      const file = join(keyDir, 'keys');
      writeFileSync(file, `${keysEnv(wrong)}\n`);
      const fromFile = await failure({ WEBHOOK_SECRET_KEYS_FILE: file });
      expect(fromFile).toMatchObject({ variable: 'WEBHOOK_SECRET_KEYS_FILE' });
      expect((fromFile as Error).message).toMatch(
        /WEBHOOK_SECRET_KEYS_FILE: key "k1" does not decrypt/,
      );
    });

    it('the process exits 1 with the variable in its log: a wrong key, or none in production', async () => {
      const env = {
        NATS_URL: testUrls.nats,
        SLUICE_NAMESPACE: ns,
        OPS_PORT: '0',
        OPS_HOST: '127.0.0.1',
        OTEL_SDK_DISABLED: 'true',
        PG_URL: db.url,
        WEBHOOK_SHARED_STATE: 'local',
        WEBHOOK_ADMIN_PORT: '0',
        WEBHOOK_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      };
      const wrong = spawnService('apps/webhook-dispatcher/src/main.ts', {
        ...env,
        WEBHOOK_SECRET_KEYS: keysEnv(testKey('k1')),
      });
      expect(await wrong.exited).toBe(1);
      expect(wrong.lines.join('\n')).toMatch(
        /invalid configuration: WEBHOOK_SECRET_KEYS: key \\?"k1\\?" does not decrypt/,
      );

      const none = spawnService('apps/webhook-dispatcher/src/main.ts', {
        ...env,
        SLUICE_ENV: 'production',
        DEVICE_ID_HASH_KEY: 'a-production-hash-key-0123456789',
      });
      expect(await none.exited).toBe(1);
      expect(none.lines.join('\n')).toMatch(
        /WEBHOOK_SECRET_KEYS: is required in production \(or WEBHOOK_SECRET_KEYS_FILE\)/,
      );
    });
  });
});

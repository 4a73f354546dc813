// `sluice nats-auth` against a real nats-server that runs with the generated users: what each service
// user is refused, the residency of the gateway users, and the pipeline (every service: gateway,
// dedupe, aggregator, mongo-capture, archiver with its leader lease, exporter, webhook-dispatcher)
// working end to end when every service connects as itself and only binds, and the console reading
// their state with its own read-only user.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { PermissionViolationError } from '@nats-io/nats-core';
import { CONTENT_TYPES, topology, type Topology } from '@sluice/contracts';
import { Client as PgClient } from 'pg';
import { createMongoTestDatabase, mongoTestUrl } from '@sluice/sinks-mongodb/testing';
import {
  createTestDatabase,
  freePort,
  privateRedis,
  spawnService,
  uniqueId,
  waitFor,
  type ChildService,
  type PrivateServer,
} from '@sluice/testing';
import { regionalStreamName } from './model';
import {
  sluice,
  startAuthServer,
  type AuthServer,
  type UserConnection,
} from './test-fixtures/auth-server';

const LAYOUT = [
  '--regions',
  'eu=eu-west,us=us-east',
  '--layout',
  'per-region',
  '--exporter',
  'files',
];
const SERVICES = [
  'ingestion-eu',
  'ingestion-us',
  'dedupe',
  'aggregator',
  'archiver',
  'mongo-capture',
  'exporter',
  'webhook-dispatcher',
  'cli',
  'console',
] as const;

/** The part of the console's pipeline sample these tests read. */
interface ConsoleSample {
  streams: Array<{ name: string; messages: number }>;
  consumers: Array<{ stream: string; name: string; pending: number }>;
}

/** The first `pipeline` frame of the console's event stream (`/api/stream`), if one comes. */
async function consoleSample(res: Response): Promise<ConsoleSample | undefined> {
  if (res.status !== 200 || !res.body) return undefined;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return undefined;
      text += decoder.decode(value, { stream: true });
      const frame = /event: pipeline\ndata: (.*)\n\n/.exec(text);
      if (frame) return JSON.parse(frame[1]!) as ConsoleSample;
    }
  } finally {
    await reader.cancel();
  }
}

/** Whether `p` failed with the server's permission violation (anywhere in its cause chain). */
async function denied(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
    return false;
  } catch (err) {
    for (let e: unknown = err; e instanceof Error; e = e.cause) {
      if (e instanceof PermissionViolationError) return true;
    }
    throw err;
  }
}

describe('sluice nats-auth on a nats-server with the generated users', () => {
  let ns: string;
  let t: Topology;
  let server: AuthServer;
  const users = new Map<string, UserConnection>();
  const as = async (user: string) => {
    let u = users.get(user);
    if (!u) users.set(user, (u = await server.connect(user)));
    return u;
  };

  beforeAll(async () => {
    ns = uniqueId('auth');
    t = topology(ns);
    server = await startAuthServer(ns, LAYOUT);
    const p = await sluice(['nats-auth', 'provision', ...LAYOUT], {
      ...server.env('admin'),
      SLUICE_NAMESPACE: ns,
    });
    if (p.code !== 0) throw new Error(`provision failed (${p.code}): ${p.err}\n${p.out}`);
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('provisions as admin only, and a second run changes nothing', async () => {
    const again = await sluice(['nats-auth', 'provision', ...LAYOUT, '--json'], {
      ...server.env('admin'),
      SLUICE_NAMESPACE: ns,
    });
    expect(again.code).toBe(0);
    const rows = (JSON.parse(again.out) as { rows: Array<{ stream: string; outcome: string }> })
      .rows;
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.filter((r) => r.outcome !== 'exists')).toEqual([]);
    expect(rows.map((r) => r.stream)).toContain(regionalStreamName(t, 'us-east'));

    const asService = await sluice(['nats-auth', 'provision', ...LAYOUT], {
      ...server.env('dedupe'),
      SLUICE_NAMESPACE: ns,
    });
    expect(asService.code).toBe(1);
    expect(asService.err).toContain('NATS_PROVISION=false');
    // Told to provision anyway, the server refuses what the user may not do.
    const forced = await sluice(['nats-auth', 'provision', ...LAYOUT], {
      ...server.env('dedupe'),
      NATS_PROVISION: 'true',
      SLUICE_NAMESPACE: ns,
    });
    expect(forced.code).toBe(1);
    expect(forced.err).toMatch(/permissions violation/i);
  });

  it('refuses every service user stream and consumer management', async () => {
    const clean = t.streams.clean.name;
    for (const user of SERVICES) {
      const jsm: JetStreamManager = await jetstreamManager((await as(user)).nc);
      expect([user, await denied(jsm.streams.delete(clean))]).toEqual([user, true]);
      expect([
        user,
        await denied(
          jsm.streams.add({ name: `X_${user.replace(/-/g, '_')}`, subjects: [`${ns}.x.${user}`] }),
        ),
      ]).toEqual([user, true]);
      expect([user, await denied(jsm.streams.purge(t.streams.dlq.name))]).toEqual([user, true]);
      expect([user, await denied(jsm.consumers.delete(clean, 'aggregator'))]).toEqual([user, true]);
      expect([
        user,
        await denied(
          jsm.consumers.add(t.streams.rollups.name, {
            durable_name: 'intruder',
            ack_policy: AckPolicy.Explicit,
          }),
        ),
      ]).toEqual([user, true]);
    }
  });

  it('refuses a service publishing outside its own subjects, DLQ subject included', async () => {
    const refused: Array<[string, string]> = [
      ['ingestion-eu', t.clean('eu-west')],
      ['ingestion-eu', t.dlq('ingestion')],
      ['dedupe', t.raw('eu-west')],
      ['dedupe', t.rollup('1m', 'eu-west')],
      ['dedupe', t.dlq('aggregator')],
      ['aggregator', t.clean('eu-west')],
      ['aggregator', t.dlq('dedupe')],
      ['archiver', t.clean('eu-west')],
      ['mongo-capture', t.raw('eu-west')],
      ['mongo-capture', t.dlq('archiver')],
      ['exporter', t.clean('us-east')],
      ['webhook-dispatcher', t.raw('us-east')],
      ['cli', t.clean('eu-west')],
      ['console', t.clean('eu-west')],
      ['console', t.rollup('1m', 'eu-west')],
      ['console', t.dlq('console')],
    ];
    for (const [user, subject] of refused) {
      const js = jetstream((await as(user)).nc);
      expect([user, subject, await denied(js.publish(subject, new Uint8Array([1])))]).toEqual([
        user,
        subject,
        true,
      ]);
    }
    // Each service's own dead-letter subject is stored.
    for (const user of ['dedupe', 'aggregator', 'archiver', 'mongo-capture'] as const) {
      const ack = await jetstream((await as(user)).nc).publish(t.dlq(user), new Uint8Array([1]));
      expect(ack.stream).toBe(t.streams.dlq.name);
    }
  });

  it('refuses pulling from and acking another service consumer, and reading others replies', async () => {
    const clean = t.streams.clean.name;
    const mongo = await as('mongo-capture');
    const pullOther = mongo.nc.request(
      `$JS.API.CONSUMER.MSG.NEXT.${clean}.aggregator`,
      JSON.stringify({ batch: 1, no_wait: true }),
    );
    expect(await denied(pullOther)).toBe(true);
    expect(await denied(jetstream(mongo.nc).consumers.get(clean, 'aggregator'))).toBe(true);
    expect(await mongo.publishRefused(`$JS.ACK.${clean}.aggregator.1.1.1.0.0`)).toBe(true);
    // Its own consumer: bound, and its ack subject is not refused (an ack of nothing is ignored).
    const own = await jetstream(mongo.nc).consumers.get(clean, 'mongo-capture');
    expect((await own.info()).name).toBe('mongo-capture');
    expect(await mongo.publishRefused(`$JS.ACK.${clean}.mongo-capture.1.1.1.0.0`)).toBe(false);

    // dedupe reads the clean stream through ephemeral consumers (its re-seed), never a durable of it.
    const dedupe = await as('dedupe');
    const reader = await jetstream(dedupe.nc).consumers.get(clean);
    expect((await reader.info()).config.durable_name).toBeUndefined();
    await reader.delete();
    for (const durable of ['aggregator', 'mongo-capture', 'archiver', 'exporter-files']) {
      expect([
        durable,
        await denied(
          dedupe.nc.request(
            `$JS.API.CONSUMER.MSG.NEXT.${clean}.${durable}`,
            JSON.stringify({ batch: 1, no_wait: true }),
          ),
        ),
      ]).toEqual([durable, true]);
      expect(await dedupe.publishRefused(`$JS.ACK.${clean}.${durable}.1.1.1.0.0`)).toBe(true);
    }

    // Replies and pulled messages of other users, and core traffic, stay out of reach.
    for (const subject of ['_INBOX.>', `_INBOX.mongo-capture.${ns}.>`, t.filters.clean, '>']) {
      const sub = dedupe.nc.subscribe(subject);
      expect([subject, await sub.closed]).toEqual([subject, expect.any(PermissionViolationError)]);
    }
  });

  it('lets the console read stream and consumer state and see clean batches, nothing more', async () => {
    const clean = t.streams.clean.name;
    const con = await as('console');
    const jsm = await jetstreamManager(con.nc);
    // What apps/console/src/pipeline.ts asks: stream info (the DLQ's per subject), consumer lists.
    expect((await jsm.streams.info(clean)).config.name).toBe(clean);
    const dlq = await jsm.streams.info(t.streams.dlq.name, { subjects_filter: '>' });
    expect(dlq.config.name).toBe(t.streams.dlq.name);
    const durables: string[] = [];
    for await (const c of jsm.consumers.list(clean)) durables.push(c.name);
    expect(durables).toEqual(expect.arrayContaining(['aggregator', 'mongo-capture']));
    // Nothing that reads, settles or asks about a consumer, nor any other stream.
    expect(await denied(jsm.consumers.info(clean, 'aggregator'))).toBe(true);
    expect(
      await denied(
        con.nc.request(
          `$JS.API.CONSUMER.MSG.NEXT.${clean}.aggregator`,
          JSON.stringify({ batch: 1, no_wait: true }),
        ),
      ),
    ).toBe(true);
    expect(await con.publishRefused(`$JS.ACK.${clean}.aggregator.1.1.1.0.0`)).toBe(true);
    expect(await denied(jsm.streams.getMessage(t.streams.dlq.name, { seq: 1 }))).toBe(true);
    expect(await denied(jsm.streams.info(regionalStreamName(t, 'eu-west')))).toBe(true);
    const listDlq = async () => {
      for await (const c of jsm.consumers.list(t.streams.dlq.name)) void c;
    };
    expect(await denied(listDlq())).toBe(true);
    // Its plain subscriptions (pipeline.ts: roll-ups, detections.ts: clean batches) are accepted.
    const seen = [con.nc.subscribe(t.filters.rollup), con.nc.subscribe(t.filters.clean)];
    await con.nc.flush();
    await new Promise((r) => setImmediate(r));
    expect(con.violations.filter((v) => v.operation === 'subscription')).toEqual([]);
    for (const sub of seen) sub.unsubscribe();
    for (const subject of [t.filters.raw, t.filters.dlq, '_INBOX.>', '>']) {
      const sub = con.nc.subscribe(subject);
      expect([subject, await sub.closed]).toEqual([subject, expect.any(PermissionViolationError)]);
    }
  });

  it('lets a gateway user publish and read back only its own regions', async () => {
    const eu = await as('ingestion-eu');
    const us = await as('ingestion-us');
    const stored = await jetstream(eu.nc).publish(t.raw('eu-west'), new Uint8Array([1]), {
      msgID: uniqueId('m'),
      expect: { streamName: regionalStreamName(t, 'eu-west') },
    });
    expect(stored.stream).toBe(regionalStreamName(t, 'eu-west'));
    expect(await denied(jetstream(eu.nc).publish(t.raw('us-east'), new Uint8Array([1])))).toBe(
      true,
    );
    expect(await denied(jetstream(us.nc).publish(t.raw('eu-west'), new Uint8Array([1])))).toBe(
      true,
    );
    const usJsm = await jetstreamManager(us.nc);
    expect(
      await denied(usJsm.streams.getMessage(regionalStreamName(t, 'eu-west'), { seq: stored.seq })),
    ).toBe(true);
    const euJsm = await jetstreamManager(eu.nc);
    const back = await euJsm.streams.getMessage(regionalStreamName(t, 'eu-west'), {
      seq: stored.seq,
    });
    expect(back?.seq).toBe(stored.seq);
  });

  describe('end to end with every service as its own user', () => {
    let redis: PrivateServer;
    const procs: ChildService[] = [];
    beforeAll(async () => {
      redis = await privateRedis();
    });
    afterAll(async () => {
      for (const p of procs) {
        p.kill('SIGKILL');
        await p.exited;
      }
      await redis?.destroy();
    });

    it('the gateway, dedupe, aggregator, mongo-capture, archiver, exporter and webhook-dispatcher bind to what admin provisioned and carry events, the console sees them', async () => {
      const mdb = await createMongoTestDatabase('auth');
      const [aggDb, hookDb] = await Promise.all([
        createTestDatabase('authagg'),
        createTestDatabase('authhook'),
      ]);
      const dir = mkdtempSync(join(tmpdir(), 'sluice-auth-'));
      const hooks: string[] = [];
      const receiver = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString('utf8')));
        req.on('end', () => {
          hooks.push(body);
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      const logMark = server.log().length;
      try {
        const token = 'gateway-token-auth';
        const httpPort = await freePort();
        const common = {
          SLUICE_NAMESPACE: ns,
          OPS_PORT: '0',
          LOG_LEVEL: 'info',
          OTEL_SDK_DISABLED: 'true',
        };
        const start = async (
          main: string,
          user: string,
          env: Record<string, string>,
          ready: RegExp,
        ) => {
          const p = spawnService(main, { ...server.env(user), ...common, ...env });
          procs.push(p);
          await p.waitForLine(ready, 60_000);
          return p;
        };
        await start(
          'apps/ingestion/src/main.ts',
          'ingestion-eu',
          {
            INGEST_REGIONS: 'eu-west',
            INGEST_STREAM_LAYOUT: 'per-region',
            INGEST_HOST: '127.0.0.1',
            INGEST_HTTP_PORT: String(httpPort),
            INGEST_GRPC_PORT: '0',
            INGEST_AUTH_TOKENS: `${createHash('sha256').update(token).digest('hex')}=*`,
          },
          /ingestion running/,
        );
        await start(
          'apps/dedupe/src/main.ts',
          'dedupe',
          {
            REDIS_URL: redis.url,
            DEDUPE_STREAMS: [
              regionalStreamName(t, 'eu-west'),
              regionalStreamName(t, 'us-east'),
            ].join(','),
            DEDUPE_KEY_PREFIX: `${ns}:`,
          },
          /dedupe running/,
        );
        await start(
          'apps/mongo-capture/src/main.ts',
          'mongo-capture',
          {
            MONGO_URL: mongoTestUrl(),
            MONGO_DATABASE: mdb.name,
            MONGO_WRITE_CONCERN: '1',
            MONGO_CAPTURE_LINGER: '0',
          },
          /mongo-capture running/,
        );
        await start(
          'apps/aggregator/src/main.ts',
          'aggregator',
          { PG_URL: aggDb.url, AGGREGATOR_API_HOST: '127.0.0.1', AGGREGATOR_API_PORT: '0' },
          /aggregator running/,
        );
        writeFileSync(
          join(dir, 'exporter.json'),
          JSON.stringify({
            destinations: [
              {
                name: 'files',
                type: 'file',
                batch: { linger: '0ms' },
                options: { dir: join(dir, 'files') },
              },
            ],
          }),
        );
        await start(
          'apps/exporter/src/main.ts',
          'exporter',
          { EXPORTER_CONFIG: join(dir, 'exporter.json') },
          /exporter running/,
        );
        await start(
          'apps/archiver/src/main.ts',
          'archiver',
          { ARCHIVER_DIR: join(dir, 'archive'), ARCHIVER_FILE_MAX_AGE: '300ms' },
          /archiver running/,
        );
        const adminToken = 'webhook-admin-token-auth-0123';
        const dispatcher = await start(
          'apps/webhook-dispatcher/src/main.ts',
          'webhook-dispatcher',
          {
            PG_URL: hookDb.url,
            REDIS_URL: redis.url,
            WEBHOOK_ADMIN_HOST: '127.0.0.1',
            WEBHOOK_ADMIN_PORT: '0',
            WEBHOOK_ADMIN_TOKEN: adminToken,
            WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
            WEBHOOK_SUBSCRIPTION_REFRESH: '300ms',
          },
          /webhook-dispatcher running/,
        );
        // The console as its own user: samples stream and consumer state, subscribes to roll-ups.
        const consoleToken = 'console-token-auth';
        const consoleProc = await start(
          'apps/console/src/main.ts',
          'console',
          {
            CONSOLE_HOST: '127.0.0.1',
            CONSOLE_PORT: '0',
            AGGREGATOR_API_TOKENS: `${createHash('sha256').update(consoleToken).digest('hex')}=*`,
            CONSOLE_TARGETS: `ingestion=http://127.0.0.1:${httpPort}`,
            CONSOLE_INTERVAL: '300ms',
          },
          /console running/,
        );
        const consoleUrl = `http://127.0.0.1:${String(
          (JSON.parse(await consoleProc.waitForLine(/console running/)) as { consolePort: number })
            .consolePort,
        )}`;
        const consoleGet = (path: string) =>
          fetch(`${consoleUrl}${path}`, {
            headers: { authorization: `Bearer ${consoleToken}` },
            signal: AbortSignal.timeout(10_000),
          });
        // Its detections view subscribes to the clean batches from now on.
        expect((await consoleGet('/api/detections')).status).toBe(200);
        const adminPort = /"port":(\d+).*admin API listening/.exec(
          await dispatcher.waitForLine(/admin API listening/),
        )![1];
        const subscribed = await fetch(`http://127.0.0.1:${adminPort}/v1/subscriptions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
            filter: { type: 'telemetry', sensorTypes: ['engine_temp'], value: { gt: 97 } },
          }),
        });
        expect(subscribed.status).toBe(201);
        await new Promise((r) => setTimeout(r, 1_000));
        const now = new Date().toISOString();
        const events = Array.from({ length: 20 }, (_, i) => ({
          event_id: `auth-${i}`,
          device_id: `boat-${i % 3}`,
          timestamp: now,
          sensor_type: 'engine_temp',
          value: 80 + i,
          unit: 'celsius',
          region: 'eu-west',
        }));
        for (const batch of [events.slice(0, 10), events.slice(10), events.slice(5, 15)]) {
          const res = await fetch(`http://127.0.0.1:${httpPort}/v1/events`, {
            method: 'POST',
            headers: { 'content-type': CONTENT_TYPES.WIRE_JSON, authorization: `Bearer ${token}` },
            body: JSON.stringify(batch),
          });
          expect(res.status).toBe(200);
        }
        const ids = await waitFor(
          'every event in MongoDB',
          async () => {
            const got = await mdb.allIds();
            return got.length >= events.length ? got : undefined;
          },
          { timeoutMs: 60_000 },
        );
        expect(ids.sort()).toEqual(events.map((e) => e.event_id).sort());
        // The exporter's files, the webhooks (readings 98 and 99 pass the filter) and the roll-ups.
        const exported = () =>
          readdirSync(join(dir, 'files'), { recursive: true })
            .map(String)
            .filter((f) => /\.jsonl(\.tmp)?$/.test(f))
            .flatMap((f) => readFileSync(join(dir, 'files', f), 'utf8').split('\n'))
            .filter((l) => l.endsWith('}'))
            .map((l) => (JSON.parse(l) as { event_id: string }).event_id);
        await waitFor('every event exported', () => new Set(exported()).size >= events.length, {
          timeoutMs: 60_000,
        });
        await waitFor('two webhooks', () => hooks.length >= 2, { timeoutMs: 60_000 });
        await waitFor(
          'archived parquet',
          () =>
            readdirSync(join(dir, 'archive'), { recursive: true }).some((f) =>
              String(f).endsWith('.parquet'),
            ),
          { timeoutMs: 60_000 },
        );
        const pg = new PgClient({ connectionString: aggDb.url });
        await pg.connect();
        try {
          await waitFor(
            'roll-ups stored',
            async () =>
              Number(
                (
                  await pg.query<{ n: string }>(
                    "SELECT count(*)::text AS n FROM rollups WHERE sensor = 'engine_temp'",
                  )
                ).rows[0]!.n,
              ) > 0,
            { timeoutMs: 60_000 },
          );
        } finally {
          await pg.end();
        }
        // Every consumer on the way acked everything (acks of their own consumers are allowed).
        const admin = await jetstreamManager((await as('admin')).nc);
        const settled = async (stream: string, durable: string) => {
          const info = await admin.consumers.info(stream, durable);
          return (
            info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.stream_seq > 0
          );
        };
        await waitFor(
          'every consumer settled',
          async () =>
            (await settled(regionalStreamName(t, 'eu-west'), 'dedupe')) &&
            (await settled(t.streams.clean.name, 'mongo-capture')) &&
            (await settled(t.streams.clean.name, 'aggregator')) &&
            (await settled(t.streams.clean.name, 'exporter-files')) &&
            (await settled(t.streams.clean.name, 'archiver')),
        );
        // The console's pipeline sample shows the streams and their consumers, settled.
        const sample = await waitFor(
          'the console sampling the settled pipeline',
          async () => {
            const s = await consoleSample(await consoleGet('/api/stream'));
            const clean = s?.streams.find((x) => x.name === t.streams.clean.name);
            const agg = s?.consumers.find(
              (c) => c.stream === t.streams.clean.name && c.name === 'aggregator',
            );
            return clean && clean.messages > 0 && agg?.pending === 0 ? s : undefined;
          },
          { timeoutMs: 30_000 },
        );
        expect(sample.streams.map((x) => x.name)).toEqual(
          expect.arrayContaining([
            t.streams.clean.name,
            t.streams.rollups.name,
            t.streams.dlq.name,
            t.streams.replay.name,
          ]),
        );
        expect(sample.consumers.map((c) => `${c.stream}/${c.name}`)).toEqual(
          expect.arrayContaining([
            `${t.streams.clean.name}/mongo-capture`,
            `${t.streams.clean.name}/archiver`,
            `${t.streams.rollups.name}/webhook-dispatcher-rollups`,
          ]),
        );
        expect(consoleProc.lines.join('\n')).not.toMatch(/JetStream state unavailable/);
        for (const p of procs) expect(p.lines.join('\n')).not.toMatch(/permissions violation/i);
        expect(server.log().slice(logMark)).not.toMatch(/violation/i);
      } catch (err) {
        (err as Error).message += procs
          .map((p) => `\n--- ${p.proc.spawnargs.at(-1)}\n${p.lines.slice(-8).join('\n')}`)
          .join('');
        throw err;
      } finally {
        await new Promise((r) => receiver.close(r));
        await Promise.all([mdb.drop(), aggDb.drop(), hookDb.drop()]);
        rmSync(dir, { recursive: true, force: true });
      }
    }, 180_000);
  });
});

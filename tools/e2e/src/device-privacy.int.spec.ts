// Device ids are sensitive (issue 20): a whole pipeline run with one recognisable raw device id, every
// service a process as `npm start` starts it (instrumentation preload, spans exported to a real
// OTLP/HTTP receiver, debug logs). The id travels through every path a device, an operator and the
// stores take: accepted and refused readings, a rate-limited device, a webhook subscription on the
// device, the query API asked about it, a dead letter. Afterwards the exported spans, every
// service's /metrics and every log line are scanned for the raw id, and so are the dead letters'
// headers; the stores keep it (that is the owner's data), which the run checks too, so the scan
// cannot pass on a pipeline that never saw the device.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { CONTENT_TYPES, encodeBatch, TelemetryEvent, type Topology } from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import {
  createTestDatabase,
  natsFixture,
  testUrls,
  uniqueId,
  waitFor,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { MongoClient } from 'mongodb';
import {
  pipelineNamespace,
  startReceiver,
  startService,
  type Receiver,
  type Service,
} from './processes';

const ADMIN_TOKEN = randomBytes(24).toString('hex');
const DEVICE_TOKEN = randomBytes(24).toString('hex');
const QUERY_TOKEN = randomBytes(24).toString('hex');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const REGION = 'eu-west';

describe('raw device ids stay out of spans, metrics, logs and dead-letter headers (whole pipeline)', () => {
  let nats: NatsFixture;
  let topo: Topology;
  let aggDb: PgDatabase;
  let hookDb: PgDatabase;
  let mongo: MongoClient;
  let receiver: Receiver;
  let dir: string;
  const mongoDb = uniqueId('privacy').replace(/-/g, '_');
  const services: Service[] = [];
  const opsPorts = new Map<string, number>();
  let ingestUrl: string;
  let adminUrl: string;
  let queryUrl: string;

  beforeAll(async () => {
    nats = await natsFixture();
    topo = pipelineNamespace(nats, 'e2epv');
    const ns = topo.namespace;
    dir = mkdtempSync(join(tmpdir(), 'sluice-privacy-'));
    writeFileSync(
      join(dir, 'exporter.json'),
      JSON.stringify({
        destinations: [
          {
            name: 'files',
            type: 'file',
            batch: { linger: '0ms' },
            options: { dir: join(dir, 'export') },
          },
        ],
      }),
    );
    [aggDb, hookDb, receiver, mongo] = await Promise.all([
      createTestDatabase('e2epvagg'),
      createTestDatabase('e2epvhook'),
      startReceiver(),
      MongoClient.connect(testUrls.mongo),
    ]);
    const common = {
      SLUICE_NAMESPACE: ns,
      SLUICE_ENV: 'test',
      NATS_URL: testUrls.nats,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '200',
      REDIS_URL: testUrls.redis,
    };
    const specs: Array<[string, Record<string, string>]> = [
      [
        'ingestion',
        {
          INGEST_HOST: '127.0.0.1',
          INGEST_HTTP_PORT: '0',
          INGEST_GRPC_PORT: '0',
          INGEST_REGIONS: REGION,
          INGEST_AUTH_TOKENS: `${sha256(DEVICE_TOKEN)}=*`,
          INGEST_DEVICE_RATE: '20',
          INGEST_DEVICE_BURST: '20',
          INGEST_RATE_LIMIT_STORE: 'redis',
          INGEST_DRAIN_GRACE: '200ms',
        },
      ],
      ['dedupe', { DEDUPE_KEY_PREFIX: `${ns}:` }],
      [
        'aggregator',
        {
          PG_URL: aggDb.url,
          AGGREGATOR_API_HOST: '127.0.0.1',
          AGGREGATOR_API_PORT: '0',
          AGGREGATOR_API_TOKENS: `${sha256(QUERY_TOKEN)}=*`,
          AGGREGATOR_PUBLISH_RESOLUTIONS: '1s',
          AGGREGATOR_ALLOWED_LATENESS: '1s',
          AGGREGATOR_CLOSE_INTERVAL: '200ms',
        },
      ],
      [
        'webhook-dispatcher',
        {
          PG_URL: hookDb.url,
          WEBHOOK_ADMIN_HOST: '127.0.0.1',
          WEBHOOK_ADMIN_PORT: '0',
          WEBHOOK_ADMIN_TOKEN: ADMIN_TOKEN,
          WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
          WEBHOOK_SUBSCRIPTION_REFRESH: '300ms',
          WEBHOOK_SHARED_STATE: 'redis',
        },
      ],
      [
        'mongo-capture',
        { MONGO_URL: testUrls.mongo, MONGO_DATABASE: mongoDb, MONGO_CAPTURE_MAX_DELIVER: '2' },
      ],
      ['archiver', { ARCHIVER_DIR: join(dir, 'archive'), ARCHIVER_FILE_MAX_AGE: '300ms' }],
      ['exporter', { EXPORTER_CONFIG: join(dir, 'exporter.json') }],
    ];
    for (const [name, env] of specs) services.push(startService(name, { ...common, ...env }));
    for (const s of services) {
      const running = await s.waitForLog(`${s.name} running`, 120_000);
      opsPorts.set(s.name, Number(running['opsPort']));
    }
    const byName = (n: string) => services.find((s) => s.name === n)!;
    ingestUrl = `http://127.0.0.1:${String((await byName('ingestion').waitForLog('ingestion listening'))['httpPort'])}`;
    adminUrl = `http://127.0.0.1:${String((await byName('webhook-dispatcher').waitForLog('admin API listening'))['port'])}`;
    queryUrl = `http://127.0.0.1:${String((await byName('aggregator').waitForLog('aggregator running'))['apiPort'])}`;
  }, 240_000);

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await receiver?.close();
    await mongo
      ?.db(mongoDb)
      .dropDatabase()
      .catch(() => undefined);
    await mongo?.close();
    await nats?.cleanup();
    await Promise.all([aggDb?.drop(), hookDb?.drop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('finds the raw id in the stores only', async () => {
    // Recognisable and unique: a substring match anywhere is a leak.
    const device = `boat-${randomBytes(6).toString('hex')}-privacy`;
    const sensor = uniqueId('temp');
    const subscription = await fetch(`${adminUrl}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        url: `${receiver.url}/hook`,
        filter: { type: 'telemetry', deviceIds: [device], value: { gt: 100 } },
      }),
    });
    expect(subscription.status).toBe(201);
    await new Promise((r) => setTimeout(r, 1_000));

    const reading = (t: number, value: number, extra: object = {}) => ({
      event_id: randomUUID(),
      device_id: device,
      event_time: new Date(t).toISOString(),
      sensor_type: sensor,
      value,
      unit: 'C',
      firmware_version: '1.2.3',
      region: REGION,
      ...extra,
    });
    const post = (body: unknown) =>
      fetch(`${ingestUrl}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${DEVICE_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const now = Date.now();
    const good = [reading(now - 10_000, 150), reading(now - 4_000, 151), reading(now - 3_000, 20)];
    expect((await post(good)).status).toBe(200);
    // Refused: a region the gateway does not serve, and a value that is not a number.
    const refused = await post([reading(now - 2_000, 1, { region: 'mars-1' })]);
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(
      (await post([reading(now - 2_000, 'NaN' as unknown as number)])).status,
    ).toBeGreaterThanOrEqual(400);
    // Rate-limited: far more than the device's burst of 20.
    const burst = await post(Array.from({ length: 60 }, (_, i) => reading(now - 60_000 + i, i)));
    expect(burst.status).toBeGreaterThanOrEqual(400);
    // A clean batch no store can take (no event time): dead-lettered by the consumers.
    const poison = TelemetryEvent.fromPartial({
      eventId: randomUUID(),
      deviceId: device,
      sensorType: sensor,
      value: 1,
      region: REGION,
      schemaVersion: 1,
    });
    const batchId = uniqueId('poison');
    await publishDurable(
      nats.js,
      topo.clean(REGION),
      encodeBatch({ batchId, events: [{ kind: { $case: 'telemetry', value: poison } }] }),
      { msgId: batchId, contentType: CONTENT_TYPES.EVENT_BATCH },
    );
    // An operator (or the console) asks about the device.
    const latest = async () =>
      fetch(`${queryUrl}/v1/devices/${encodeURIComponent(device)}/latest`, {
        headers: { authorization: `Bearer ${QUERY_TOKEN}` },
      });

    // The stores have it: the scan below is about a pipeline that really carried the device.
    await waitFor('two webhook deliveries', () => receiver.hooks.length >= 2 || undefined, {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    expect(receiver.hooks.map((h) => h.body).join('\n')).toContain(device);
    await waitFor(
      'documents in MongoDB',
      async () =>
        (await mongo
          .db(mongoDb)
          .listCollections()
          .toArray()
          .then(async (cs) => {
            let n = 0;
            for (const c of cs)
              n += await mongo.db(mongoDb).collection(c.name).countDocuments({ device_id: device });
            return n;
          })) >= 3 || undefined,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    await waitFor('the latest values', async () => (await latest()).status === 200 || undefined, {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    await waitFor(
      'an exported file',
      () => readdirSync(join(dir, 'export'), { recursive: true }).length > 0 || undefined,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    await waitFor(
      'archived parquet',
      () =>
        readdirSync(join(dir, 'archive'), { recursive: true }).some((f) =>
          String(f).endsWith('.parquet'),
        ) || undefined,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    const jsm = await jetstreamManager(nats.nc);
    const dlq = topo.streams.dlq.name;
    await waitFor(
      'dead letters',
      async () =>
        ((await jsm.streams.info(dlq).catch(() => undefined))?.state.messages ?? 0) > 0 ||
        undefined,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    // A series query names the device in the query string (answered or refused, it is traced).
    const series = await fetch(
      `${queryUrl}/v1/series?device=${encodeURIComponent(device)}&sensor=${sensor}&resolution=1s`,
      { headers: { authorization: `Bearer ${QUERY_TOKEN}` } },
    );
    expect(series.status).toBeLessThan(500);
    // Spans of the last requests are exported within OTEL_BSP_SCHEDULE_DELAY.
    await new Promise((r) => setTimeout(r, 1_500));

    const leaks: string[] = [];
    const scan = (where: string, text: string) => {
      let at = text.indexOf(device);
      for (let n = 0; at >= 0 && n < 3; n++, at = text.indexOf(device, at + 1))
        leaks.push(`${where}: …${text.slice(Math.max(0, at - 120), at + device.length + 40)}…`);
    };
    expect(receiver.traces.length).toBeGreaterThan(0);
    scan('exported spans', JSON.stringify(receiver.traces));
    for (const [name, port] of opsPorts) {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      scan(`${name} /metrics`, await res.text());
    }
    for (const s of services) scan(`${s.name} logs`, s.lines.join('\n'));
    const letters = await jsm.streams.info(dlq);
    for (let seq = letters.state.first_seq; seq <= letters.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(dlq, { seq }).catch(() => undefined);
      if (!m?.header) continue;
      for (const [k, v] of m.header) scan(`dead letter ${seq} header ${k}`, v.join(','));
    }
    expect(leaks).toEqual([]);
  }, 240_000);
});

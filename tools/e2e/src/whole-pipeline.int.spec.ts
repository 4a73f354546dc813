// The whole pipeline end to end, every service a real process (as `npm start` starts it) on the real
// local servers: a simulated fleet posts telemetry and detections to the gateway (duplicates,
// out-of-order and late events, events the gateway rejects, events a service must dead-letter),
// garbage is injected on the raw and clean subjects, one process of each kind is SIGKILLed and
// restarted and the dedupe store is cut and restored mid-run. Then every store is read back and
// compared with what the gateway acknowledged.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { stringify } from 'yaml';
import { CONTENT_TYPES, HEADERS, type Event, type Topology } from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import { FsStore, readBatches, selectFiles } from '@sluice/archive';
import { createAmqpTestTopology, type AmqpTestTopology } from '@sluice/sinks-amqp/testing';
import { readExportFiles } from '@sluice/sinks-file/testing';
import {
  createMongoTestDatabase,
  mongoTestUrl,
  type MongoTestDatabase,
} from '@sluice/sinks-mongodb/testing';
import { createMqttTestTopics, type MqttTestTopics } from '@sluice/sinks-mqtt/testing';
import { createPgTestSchema, type PgTestSchema } from '@sluice/sinks-postgres/testing';
import {
  createTestDatabase,
  freePort,
  groupByRollupCell,
  natsFixture,
  rng,
  sleep,
  tcpProxy,
  testUrls,
  uniqueId,
  waitFor,
  type NatsFixture,
  type PgDatabase,
  type TcpProxy,
} from '@sluice/testing';
import {
  pipelineNamespace,
  startReceiver,
  startService,
  type Receiver,
  type Service,
} from './processes';
import { traceBackend, type TraceBackend } from './traces';

const ADMIN_TOKEN = randomBytes(24).toString('hex');
const DEVICE_TOKEN = randomBytes(24).toString('hex');
const REGIONS = ['eu-west', 'us-east'] as const;
/** Roll-up resolutions the aggregator computes and the test recomputes. */
const RESOLUTIONS: Record<string, number> = { '5s': 5_000, '1m': 60_000 };
/** The threshold subscription: readings of THRESHOLD_SENSOR above THRESHOLD. */
const THRESHOLD_SENSOR = 'temp';
const THRESHOLD = 100;
/** A sensor type that cannot name a MongoDB collection (mongo-capture's template uses it). */
const MONGO_POISON_SENSOR = 'bad.name';
/** A camera stream no RabbitMQ queue is bound for (mandatory publish: returned, dead-lettered). */
const AMQP_POISON_STREAM = 'cam-x';
const DESTINATIONS = ['files', 'broker', 'rabbit', 'warehouse', 'docs'] as const;
const PHASES = 7;

/** One event the fleet sent, as the test models it. */
interface Sent {
  id: string;
  kind: 'telemetry' | 'detection';
  device: string;
  region: string;
  t: number;
  sensor: string;
  value: number;
  stream: string;
  /** The JSON the device posted. */
  json: Record<string, unknown>;
}

/** One device batch (one HTTP request, one trace). */
interface Batch {
  key: string;
  phase: number;
  traceId: string;
  events: Sent[];
}

function telemetry(device: string, region: string, sensor: string, t: number, value: number): Sent {
  const id = randomUUID();
  return {
    id,
    kind: 'telemetry',
    device,
    region,
    t,
    sensor,
    value,
    stream: '',
    json: {
      event_id: id,
      device_id: device,
      event_time: new Date(t).toISOString(),
      sensor_type: sensor,
      value,
      unit: 'u',
      firmware_version: '1.0.0',
      region,
    },
  };
}

function detection(device: string, region: string, stream: string, t: number, n: number): Sent {
  const id = randomUUID();
  return {
    id,
    kind: 'detection',
    device,
    region,
    t,
    sensor: '',
    value: 0,
    stream,
    json: {
      schema_version: 2,
      id,
      time: new Date(t).toISOString(),
      region,
      device: { id: device, firmware: '4.2.1' },
      detections: {
        stream,
        objects: [
          {
            object_id: '0',
            class_id: 0,
            label: 'person',
            confidence: 0.5 + (n % 4) / 10,
            bbox: { left: 0.125, top: 0.25, width: 0.25, height: 0.5 },
          },
        ],
      },
    },
  };
}

/** Runs `fn`; a failure carries the last log lines of every service. */
async function withServiceLogs(services: () => Service[], fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const tails = services()
      .map((s) => `--- ${s.name}\n${s.lines.slice(-12).join('\n')}`)
      .join('\n');
    (err as Error).message += `\n${tails}`;
    throw err;
  }
}

interface Cell {
  count: number;
  sum: number;
  min: number;
  max: number;
}

describe('the whole pipeline under faults (every service a real process)', () => {
  let nats: NatsFixture;
  let topo: Topology;
  let aggDb: PgDatabase;
  let hookDb: PgDatabase;
  let captureDb: MongoTestDatabase;
  let exportMongo: MongoTestDatabase;
  let exportPg: PgTestSchema;
  let rabbit: AmqpTestTopology;
  let mqttTopics: MqttTestTopics;
  let redisProxy: TcpProxy;
  let receiver: Receiver;
  let traces: TraceBackend;
  let root: string;
  let archiveDir: string;
  let exportDir: string;
  const mqttClientId = uniqueId('e2e-wp-mqtt');
  const running = new Map<string, Service>();
  const envOf = new Map<string, Record<string, string>>();
  let ingestUrl: string;
  let adminUrl: string;

  const start = async (name: string) => {
    const s = startService(name, envOf.get(name)!);
    running.set(name, s);
    // Generous: a node + tsx start takes seconds of CPU, minutes on a loaded 2-core machine.
    await s.waitForLog(`${name} running`, 360_000);
    return s;
  };
  /** SIGKILL, then a new process with the same settings. */
  const killAndRestart = async (name: string) => {
    const s = running.get(name)!;
    const gone = new Promise<void>((r) => s.proc.once('exit', () => r()));
    if (s.proc.exitCode === null && s.proc.signalCode === null) {
      s.proc.kill('SIGKILL');
      await gone;
    }
    return start(name);
  };

  beforeAll(async () => {
    nats = await natsFixture();
    topo = pipelineNamespace(nats, 'e2ewp');
    const ns = topo.namespace;
    root = mkdtempSync(join(tmpdir(), 'sluice-e2e-wp-'));
    archiveDir = join(root, 'archive');
    exportDir = join(root, 'export');
    [aggDb, hookDb, captureDb, exportMongo, exportPg, receiver, mqttTopics] = await Promise.all([
      createTestDatabase('e2ewpagg'),
      createTestDatabase('e2ewphook'),
      createMongoTestDatabase('e2ewpcap'),
      createMongoTestDatabase('e2ewpexp'),
      createPgTestSchema('e2ewpexp'),
      startReceiver(),
      createMqttTestTopics('e2ewp'),
    ]);
    // Only frames of cam-1 are routed: a frame of AMQP_POISON_STREAM has no queue and is returned.
    rabbit = await createAmqpTestTopology('e2ewp', ['detection.*.cam-1.*']);
    // Jaeger v2 when it is built here (its query API is what the trace checks read), else the
    // receiver's own OTLP/HTTP endpoint.
    traces = await traceBackend(receiver);
    console.info(
      `whole-pipeline: traces go to ${traces.name}${traces.queryUrl ? ` (${traces.queryUrl})` : ''}`,
    );
    const redis = new URL(testUrls.redis);
    redisProxy = await tcpProxy(Number(redis.port || 6379), '127.0.0.1');
    const dedupeRedis = new URL(testUrls.redis);
    dedupeRedis.hostname = '127.0.0.1';
    dedupeRedis.port = String(redisProxy.port);

    const fast = {
      batch: { max_messages: 16, linger: '5ms' },
      retry: { ack_wait: '4s', budget: '500ms', initial: '50ms', max: '200ms' },
      filters: { kinds: ['detection'] },
    };
    const exporterConfig = join(root, 'exporter.yaml');
    writeFileSync(
      exporterConfig,
      stringify({
        destinations: [
          { name: 'files', type: 'file', ...fast, options: { dir: exportDir } },
          {
            name: 'broker',
            type: 'mqtt',
            ...fast,
            options: {
              url: mqttTopics.url(),
              clientId: mqttClientId,
              qos: 1,
              detectionTopic: `${mqttTopics.root}/d/{stream_id}`,
            },
          },
          {
            name: 'rabbit',
            type: 'amqp',
            ...fast,
            options: { url: rabbit.url(), exchange: rabbit.exchange },
          },
          {
            name: 'warehouse',
            type: 'postgres',
            ...fast,
            options: { url: exportPg.url(), schema: exportPg.schema },
          },
          {
            name: 'docs',
            type: 'mongodb',
            ...fast,
            options: { url: mongoTestUrl(), database: exportMongo.name, writeConcernW: 1 },
          },
        ],
      }),
    );

    const common = {
      SLUICE_NAMESPACE: ns,
      SLUICE_ENV: 'test',
      NATS_URL: testUrls.nats,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OTEL_EXPORTER_OTLP_ENDPOINT: traces.otlpUrl,
      OTEL_BSP_SCHEDULE_DELAY: '200',
    };
    const httpPort = await freePort();
    ingestUrl = `http://127.0.0.1:${httpPort}`;
    envOf.set('ingestion', {
      ...common,
      INGEST_HOST: '127.0.0.1',
      INGEST_HTTP_PORT: String(httpPort),
      INGEST_GRPC_PORT: '0',
      INGEST_REGIONS: REGIONS.join(','),
      INGEST_AUTH_TOKENS: `${createHash('sha256').update(DEVICE_TOKEN).digest('hex')}=*`,
      INGEST_DRAIN_GRACE: '200ms',
      INGEST_RATE_LIMIT_STORE: 'local',
    });
    envOf.set('dedupe', {
      ...common,
      REDIS_URL: dedupeRedis.toString(),
      DEDUPE_KEY_PREFIX: `${ns}:`,
      DEDUPE_ACK_WAIT: '5s',
      DEDUPE_REDIS_TIMEOUT: '500ms',
    });
    envOf.set('aggregator', {
      ...common,
      PG_URL: aggDb.url,
      AGGREGATOR_API_HOST: '127.0.0.1',
      AGGREGATOR_API_PORT: '0',
      AGGREGATOR_RESOLUTIONS: Object.keys(RESOLUTIONS).join(','),
      AGGREGATOR_ALLOWED_LATENESS: '1s',
      AGGREGATOR_FLUSH_INTERVAL: '100ms',
      AGGREGATOR_CLOSE_INTERVAL: '300ms',
      AGGREGATOR_ACK_WAIT: '5s',
    });
    envOf.set('mongo-capture', {
      ...common,
      MONGO_URL: mongoTestUrl(),
      MONGO_DATABASE: captureDb.name,
      MONGO_WRITE_CONCERN: '1',
      MONGO_TELEMETRY_COLLECTION: 'telemetry_{sensor_type}',
      MONGO_CAPTURE_ACK_WAIT: '5s',
    });
    envOf.set('archiver', {
      ...common,
      ARCHIVER_DIR: archiveDir,
      ARCHIVER_FILE_MAX_AGE: '500ms',
      ARCHIVER_ACK_WAIT: '5s',
      ARCHIVER_BATCH_CONCURRENCY: '4',
    });
    envOf.set('exporter', {
      ...common,
      EXPORTER_CONFIG: exporterConfig,
      EXPORTER_RELOAD_POLL: '0',
      EXPORTER_DRAIN_TIMEOUT: '5s',
      EXPORTER_START_TIMEOUT: '30s',
    });
    envOf.set('webhook-dispatcher', {
      ...common,
      PG_URL: hookDb.url,
      REDIS_URL: testUrls.redis,
      WEBHOOK_ADMIN_HOST: '127.0.0.1',
      WEBHOOK_ADMIN_PORT: '0',
      WEBHOOK_ADMIN_TOKEN: ADMIN_TOKEN,
      WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
      WEBHOOK_SUBSCRIPTION_REFRESH: '300ms',
      WEBHOOK_RETRY_JITTER: '0',
      WEBHOOK_RETRY_SCHEDULE: '1s,2s,5s',
      WEBHOOK_ACK_WAIT: '10s',
      WEBHOOK_MATCH_FROM: 'all',
    });
    // Ingestion first: it provisions the raw and clean streams the others bind to.
    await start('ingestion');
    await Promise.all(
      ['dedupe', 'aggregator', 'mongo-capture', 'archiver', 'exporter', 'webhook-dispatcher'].map(
        start,
      ),
    );
    adminUrl = `http://127.0.0.1:${String(
      (await running.get('webhook-dispatcher')!.waitForLog('admin API listening'))['port'],
    )}`;
  }, 900_000);

  afterAll(async () => {
    await Promise.all([...running.values()].map((s) => s.stop()));
    await traces?.close();
    await receiver?.close();
    await redisProxy?.close();
    await rabbit?.cleanup();
    await mqttTopics?.cleanup([mqttClientId]);
    await Promise.all([
      aggDb?.drop(),
      hookDb?.drop(),
      captureDb?.drop(),
      exportMongo?.drop(),
      exportPg?.drop(),
    ]);
    await nats?.cleanup();
    if (root) rmSync(root, { recursive: true, force: true });
  }, 120_000);

  it(
    'stores every accepted event once everywhere, rolls up exactly, alerts once per webhook-id, exports every detection, dead-letters exactly the poison, one trace per batch',
    () =>
      withServiceLogs(
        () => [...running.values()],
        async () => {
          const random = rng(15);
          const res = await fetch(`${adminUrl}/v1/subscriptions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
            body: JSON.stringify({
              url: `${receiver.url}/hook/threshold`,
              filter: {
                type: 'telemetry',
                sensorTypes: [THRESHOLD_SENSOR],
                value: { gt: THRESHOLD },
              },
            }),
          });
          expect(res.status).toBe(201);
          // The matchers reload subscriptions every WEBHOOK_SUBSCRIPTION_REFRESH (300 ms).
          await sleep(2_000);

          const batches: Batch[] = [];
          /** Events the gateway acknowledged, by id (the first time). */
          const accepted = new Map<string, Sent>();
          /** Events the gateway rejected, by id. */
          const rejected = new Set<string>();
          let duplicateAcks = 0;

          /** Posts one batch until the gateway answers it (200 or 422); retries what it cannot. */
          const post = async (b: Batch, opts: { reuseKey?: string } = {}) => {
            const body = JSON.stringify(b.events.map((e) => e.json));
            const deadline = Date.now() + 420_000;
            for (;;) {
              let status = 0;
              let ack: {
                status: string;
                duplicate?: boolean;
                rejections?: Array<{ index: number; event_id: string }>;
              } = { status: '' };
              try {
                const r = await fetch(`${ingestUrl}/v1/events`, {
                  method: 'POST',
                  headers: {
                    authorization: `Bearer ${DEVICE_TOKEN}`,
                    'content-type': 'application/json',
                    'idempotency-key': opts.reuseKey ?? b.key,
                    traceparent: `00-${b.traceId}-${randomBytes(8).toString('hex')}-01`,
                  },
                  body,
                  signal: AbortSignal.timeout(20_000),
                });
                status = r.status;
                ack = (await r.json()) as typeof ack;
              } catch {
                status = 0; // gateway down (killed) or restarting: resend the same batch
              }
              if (status === 200 || status === 422) {
                if (ack.duplicate) duplicateAcks++;
                const bad = new Set((ack.rejections ?? []).map((x) => x.index));
                b.events.forEach((e, i) => {
                  if (bad.has(i)) rejected.add(e.id);
                  else if (!accepted.has(e.id)) accepted.set(e.id, e);
                });
                return ack;
              }
              if (Date.now() > deadline)
                throw new Error(`the gateway did not take batch ${b.key}: last status ${status}`);
              await sleep(300);
            }
          };

          // The fleet: per region two boats (temp and speed) and one camera. Phase p covers event
          // times [base + 20 s p, base + 20 s (p + 1)); each batch is shuffled (out of order), carries
          // two events of the device's previous batch again (duplicates to dedupe), and the last phase
          // goes back to phase 0's times (late events).
          const base = Math.floor((Date.now() - 10 * 60_000) / 60_000) * 60_000;
          const previous = new Map<string, Sent[]>();
          const phaseBatches = (phase: number): Batch[] => {
            const out: Batch[] = [];
            const from = base + 20_000 * (phase === PHASES - 1 ? 0 : phase);
            for (const region of REGIONS) {
              for (const device of [`${region}-boat-1`, `${region}-boat-2`, `${region}-cam`]) {
                const events: Sent[] = [];
                for (let i = 0; i < 10; i++) {
                  const t = from + Math.floor(random() * 20_000);
                  if (device.endsWith('cam')) events.push(detection(device, region, 'cam-1', t, i));
                  else
                    events.push(
                      telemetry(
                        device,
                        region,
                        i % 2 ? 'speed' : THRESHOLD_SENSOR,
                        t,
                        Math.floor(random() * 520) / 4,
                      ),
                    );
                }
                // Poison a service must dead-letter, and one event the gateway must reject.
                if (phase === 2 && device === `${region}-boat-1`)
                  events.push(telemetry(device, region, MONGO_POISON_SENSOR, from + 1_234, 42.5));
                if (phase === 3 && device.endsWith('cam'))
                  events.push(detection(device, region, AMQP_POISON_STREAM, from + 2_345, 1));
                if (phase === 1 && device.endsWith('cam')) {
                  const bad = detection(device, region, 'cam-1', from + 10, 2);
                  (
                    (bad.json['detections'] as { objects: Array<{ bbox: { left: number } }> })
                      .objects[0]!.bbox as { left: number }
                  ).left = 0.9; // 0.9 + 0.25 > 1: outside the frame
                  events.push(bad);
                }
                const repeat = (previous.get(device) ?? []).slice(0, 2);
                previous.set(device, events.slice(0, 5));
                const all = [...events, ...repeat];
                for (let i = all.length - 1; i > 0; i--) {
                  const j = Math.floor(random() * (i + 1));
                  [all[i], all[j]] = [all[j]!, all[i]!];
                }
                out.push({
                  key: uniqueId(`b${phase}`),
                  phase,
                  traceId: randomBytes(16).toString('hex'),
                  events: all,
                });
              }
            }
            return out;
          };
          const sendPhase = async (phase: number) => {
            const bs = phaseBatches(phase);
            batches.push(...bs);
            await Promise.all(bs.map((b) => post(b)));
            return bs;
          };

          // Phases 0-1: everything up.
          await sendPhase(0);
          const phase1 = await sendPhase(1);
          // The same request again (same Idempotency-Key): the gateway answers it as a duplicate.
          const again = await post(phase1[0]!);
          expect(again.duplicate).toBe(true);

          // Garbage on the raw and on the clean subject: dedupe, and every consumer of the clean
          // stream, must dead-letter it.
          const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
          const rawPoison = await publishDurable(nats.js, topo.raw(REGIONS[0]), garbage, {
            msgId: uniqueId('poison-raw'),
            contentType: CONTENT_TYPES.EVENT_BATCH,
          });
          const cleanPoison = await publishDurable(nats.js, topo.clean(REGIONS[0]), garbage, {
            msgId: uniqueId('poison-clean'),
            contentType: CONTENT_TYPES.EVENT_BATCH,
          });

          // Phase 2 while dedupe's Redis is cut off (restored after 3 s).
          redisProxy.cut();
          const phase2 = sendPhase(2);
          await sleep(3_000);
          redisProxy.restore();
          await phase2;

          // The gateway SIGKILLed while phase 3 is posted (the fleet resends until acked), then every
          // other service SIGKILLed and restarted while phase 4 flows.
          const phase3 = sendPhase(3);
          await sleep(200);
          await killAndRestart('ingestion');
          await phase3;
          const phase4 = sendPhase(4);
          await Promise.all(
            [
              'dedupe',
              'aggregator',
              'mongo-capture',
              'archiver',
              'exporter',
              'webhook-dispatcher',
            ].map(killAndRestart),
          );
          await phase4;
          // After every restart: phase 5, then the late phase.
          const traced = [...(await sendPhase(5)), ...(await sendPhase(PHASES - 1))];

          expect(duplicateAcks).toBeGreaterThanOrEqual(1);
          expect(rejected.size).toBe(REGIONS.length);
          const events = [...accepted.values()];
          const tel = events.filter((e) => e.kind === 'telemetry');
          const det = events.filter((e) => e.kind === 'detection');
          const mongoPoison = tel.filter((e) => e.sensor === MONGO_POISON_SENSOR).map((e) => e.id);
          const amqpPoison = det.filter((e) => e.stream === AMQP_POISON_STREAM).map((e) => e.id);
          expect(mongoPoison).toHaveLength(REGIONS.length);
          expect(amqpPoison).toHaveLength(REGIONS.length);
          const sorted = (xs: Iterable<string>) => [...xs].sort();

          // MongoDB (mongo-capture): every accepted event exactly once, but the poison.
          const inMongo = new Set(
            events.map((e) => e.id).filter((id) => !mongoPoison.includes(id)),
          );
          const mongoIds = await waitFor(
            'every accepted event in MongoDB',
            async () => {
              const ids = await captureDb.allIds();
              return ids.filter((id) => inMongo.has(id)).length === inMongo.size ? ids : undefined;
            },
            { timeoutMs: 120_000, intervalMs: 1_000 },
          );
          expect(sorted(mongoIds)).toEqual(sorted(inMongo));

          // The archive (Parquet, read and checksum-verified by libs/archive's reader): every accepted
          // event exactly once.
          const store = new FsStore({ root: archiveDir });
          const archivedIds = async () => {
            const sel = { from: base - 86_400_000, to: Date.now() + 86_400_000 };
            const ids: string[] = [];
            for (const f of await selectFiles(store, sel))
              for (const b of (await readBatches(store, f, sel)).batches)
                ids.push(...b.events.map((e: Event) => e.kind!.value.eventId));
            return ids;
          };
          const archive = await waitFor(
            'every accepted event in the archive',
            async () => {
              const ids = await archivedIds();
              const have = new Set(ids);
              return events.every((e) => have.has(e.id)) ? ids : undefined;
            },
            { timeoutMs: 120_000, intervalMs: 1_000 },
          );
          expect(sorted(archive)).toEqual(sorted(accepted.keys()));

          // Roll-ups: equal to count/sum/min/max computed here over the accepted telemetry.
          const expectedCells = new Map<string, Cell>();
          for (const [k, rs] of groupByRollupCell(
            tel.map((e) => ({
              device: e.device,
              region: e.region,
              sensor: e.sensor,
              t: e.t,
              value: e.value,
            })),
            RESOLUTIONS,
          )) {
            const vs = rs.map((r) => r.value);
            expectedCells.set(k, {
              count: vs.length,
              sum: vs.reduce((a, b) => a + b, 0),
              min: Math.min(...vs),
              max: Math.max(...vs),
            });
          }
          const pg = new Client({ connectionString: aggDb.url });
          await pg.connect();
          const storedCells = async () => {
            const { rows } = await pg.query<{
              resolution: string;
              scope: number;
              series_key: string;
              sensor: string;
              ws: number;
              count: string;
              sum: number;
              min: number;
              max: number;
            }>(
              `SELECT resolution, scope, series_key, sensor, (extract(epoch from window_start)*1000)::float8 AS ws,
                    count, sum, min, max FROM rollups WHERE NOT derived`,
            );
            return new Map(
              rows.map((r) => [
                `${r.resolution}|${r.scope === 1 ? 'device' : 'region'}|${r.series_key}|${r.sensor}|${r.ws}`,
                { count: Number(r.count), sum: r.sum, min: r.min, max: r.max },
              ]),
            );
          };
          const differences = (actual: Map<string, Cell>) => {
            const out: string[] = [];
            for (const k of new Set([...actual.keys(), ...expectedCells.keys()])) {
              const a = actual.get(k);
              const e = expectedCells.get(k);
              if (
                !a ||
                !e ||
                a.count !== e.count ||
                a.min !== e.min ||
                a.max !== e.max ||
                Math.abs(a.sum - e.sum) > 1e-9 * Math.max(1, Math.abs(e.sum))
              )
                out.push(`${k}: stored ${JSON.stringify(a)} expected ${JSON.stringify(e)}`);
            }
            return out;
          };
          try {
            let last: string[] = [];
            await waitFor(
              'the roll-ups to equal the reference',
              async () => {
                last = differences(await storedCells());
                return last.length === 0;
              },
              { timeoutMs: 90_000, intervalMs: 1_000 },
            ).catch((err: Error) => {
              err.message += `\n${last.slice(0, 10).join('\n')}`;
              throw err;
            });
            expect(differences(await storedCells())).toEqual([]);
            expect(expectedCells.size).toBeGreaterThan(100);
          } finally {
            await pg.end();
          }

          // Webhooks: one distinct webhook-id per expected alert; a repeated id is a redelivery of the
          // same delivery (same body).
          const alerts = new Set(
            tel
              .filter((e) => e.sensor === THRESHOLD_SENSOR && e.value > THRESHOLD)
              .map((e) => e.id),
          );
          expect(alerts.size).toBeGreaterThan(10);
          const hooksById = () => {
            const m = new Map<string, typeof receiver.hooks>();
            for (const h of receiver.hooks.filter((x) => x.path === '/hook/threshold')) {
              const id = String(h.headers['webhook-id']);
              m.set(id, [...(m.get(id) ?? []), h]);
            }
            return m;
          };
          await waitFor('every threshold alert delivered', () => hooksById().size >= alerts.size, {
            timeoutMs: 90_000,
            intervalMs: 500,
          });
          await sleep(2_000); // nothing more may come
          const byId = hooksById();
          const alerted = new Map<string, string>(); // event id -> webhook-id
          for (const [wid, hs] of byId) {
            const bodies = new Set(
              hs.map((h) => JSON.stringify((JSON.parse(h.body) as { data: unknown }).data)),
            );
            expect(bodies.size).toBe(1);
            const ev = (JSON.parse(hs[0]!.body) as { data: { event: { event_id: string } } }).data
              .event;
            expect(alerted.has(ev.event_id)).toBe(false);
            alerted.set(ev.event_id, wid);
          }
          expect(sorted(alerted.keys())).toEqual(sorted(alerts));

          // Detections reached every export destination (each refuses the frames it cannot route).
          const detIds = new Set(det.map((e) => e.id));
          const routable = new Set([...detIds].filter((id) => !amqpPoison.includes(id)));
          const covers = (ids: string[], want: Set<string>) => {
            const have = new Set(ids);
            for (const id of want) if (!have.has(id)) return false;
            return true;
          };
          const exported = {
            files: async () =>
              (await readExportFiles(exportDir)).flatMap((f) => f.records.map((r) => r.event_id)),
            broker: () => mqttTopics.storedIds(),
            rabbit: () => rabbit.storedIds(),
            warehouse: () => exportPg.storedIds(),
            docs: () => exportMongo.allIds(),
          };
          for (const [name, read] of Object.entries(exported)) {
            const want = name === 'rabbit' ? routable : detIds;
            const ids = await waitFor(
              `every detection in the ${name} destination`,
              async () => {
                const got = await read();
                return covers(got, want) ? got : undefined;
              },
              { timeoutMs: 90_000, intervalMs: 1_000 },
            );
            // Only detections (the filter), and only accepted ones.
            expect(ids.filter((id) => !detIds.has(id))).toEqual([]);
            // The stores keep each id once; brokers and files may repeat a redelivered id.
            if (name === 'warehouse' || name === 'docs') expect(sorted(ids)).toEqual(sorted(want));
            else expect(sorted(new Set(ids))).toEqual(sorted(want));
          }

          // The DLQ: exactly the injected poison, per service.
          const expectedLetters = [
            `dedupe|${rawPoison.seq}|`,
            ...[
              'aggregator',
              'archiver',
              'mongo-capture',
              'webhook-dispatcher',
              ...DESTINATIONS.map((d) => `exporter-${d}`),
            ].map((s) => `${s}|${cleanPoison.seq}|`),
            ...mongoPoison.map((id) => `mongo-capture||${id}`),
            ...amqpPoison.map((id) => `exporter-rabbit||${id}`),
          ].sort();
          const letters = async () => {
            const info = await nats.jsm.streams.info(topo.streams.dlq.name);
            const out: string[] = [];
            for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
              const m = await nats.jsm.streams.getMessage(topo.streams.dlq.name, { seq });
              if (!m) continue;
              const eventId = m.header.get('Sluice-Dlq-Event-Id');
              out.push(
                `${m.header.get(HEADERS.DLQ_SERVICE)}|${eventId ? '' : m.header.get(HEADERS.DLQ_ORIGINAL_SEQUENCE)}|${eventId}`,
              );
            }
            return out.sort();
          };
          await waitFor(
            'the dead letters',
            async () => (await letters()).length >= expectedLetters.length,
            { timeoutMs: 60_000, intervalMs: 500 },
          ).catch(async (err: Error) => {
            err.message += `\n${(await letters()).join('\n')}`;
            throw err;
          });
          expect(await letters()).toEqual(expectedLetters);

          // Traces (Jaeger's query API, or the receiver): one trace per device batch sent after the
          // restarts, from the gateway's server span through dedupe and the aggregator to the webhook
          // POST of each alert the batch carried first.
          const first = new Map<string, Batch>();
          for (const b of batches)
            for (const e of b.events)
              if (!first.has(e.id) && accepted.has(e.id)) first.set(e.id, b);
          const alertsOf = (b: Batch) =>
            b.events.filter((e) => alerts.has(e.id) && first.get(e.id) === b);
          expect(traced.filter((b) => alertsOf(b).length > 0).length).toBeGreaterThan(0);
          for (const b of traced) {
            const want = alertsOf(b).length;
            const spans = await waitFor(
              `the trace of batch ${b.key} (${b.traceId}) in ${traces.name}`,
              async () => {
                const t = await traces.trace(b.traceId);
                const posts = t.filter(
                  (s) => s.service === 'webhook-dispatcher' && s.kind === 'client',
                );
                const ok =
                  t.some((s) => s.service === 'ingestion' && s.kind === 'server') &&
                  t.some((s) => s.service === 'dedupe') &&
                  t.some((s) => s.service === 'aggregator') &&
                  posts.length >= want;
                return ok ? t : undefined;
              },
              { timeoutMs: 60_000, intervalMs: 500 },
            );
            expect(
              spans.filter((s) => s.service === 'ingestion' && s.kind === 'server'),
            ).toHaveLength(1);
            for (const e of alertsOf(b)) {
              const hook = byId.get(alerted.get(e.id)!)![0]!;
              expect(String(hook.headers['traceparent'])).toContain(`00-${b.traceId}-`);
            }
          }
        },
      ),
    900_000,
  );
});

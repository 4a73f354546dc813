/* eslint-disable no-restricted-properties -- a stand-alone script reads its environment, as the scripts under tools/ do */
/**
 * Detection export demo: a simulated camera (the device SDK) sends detection frames to a local
 * ingestion gateway; dedupe cleans them; the exporter streams them to MQTT, RabbitMQ, PostgreSQL,
 * MongoDB and JSON-lines files at once; a client of each destination's own kind shows them arriving.
 *
 *   examples/detection-export/run.sh [--seconds 20] [--fps 5]
 *
 * Runs its own gateway, dedupe and exporter (namespace `detection-demo`, free ports) beside anything
 * `npm start` runs, against the local servers (`bash scripts/run.sh services`; NATS_URL, REDIS_URL,
 * PG_URL, MONGO_URL, MQTT_URL, AMQP_URL override the loopback defaults). What it exports stays where
 * it landed so the README's recipes can show it with each destination's own client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import mqtt from 'mqtt';
import { Client as PgClient } from 'pg';
import { Connection as AmqpConnection, type AsyncMessage } from 'rabbitmq-client';
import type { Detection, DetectionEvent } from '@sluice/contracts';
import { DeviceClient } from '@sluice/device-sdk';
import { decodeRecord, type DetectionExportRecord, type ExportRecord } from '@sluice/sinks-core';
import { completeText, parseFileName } from '@sluice/sinks-file';

const ROOT = resolve(__dirname, '..', '..');
const NAMESPACE = 'detection-demo';
const REGION = 'eu-west';
const CONFIG = join(__dirname, 'exporter.yaml');
const EXPORT_DIR = join(ROOT, 'tmp', 'detection-export');
const PG_SCHEMA = 'detection_demo';
const MONGO_DATABASE = 'detection_demo';
const MQTT_TOPICS = 'sluice-demo/detections/#';
const AMQP_EXCHANGE = 'sluice.demo';
const POLL_MS = 100;

const env = (name: string, fallback: string) => process.env[name] || fallback;
const URLS = {
  nats: env('NATS_URL', 'nats://127.0.0.1:4222'),
  redis: env('REDIS_URL', 'redis://127.0.0.1:6379'),
  postgres: env('PG_URL', 'postgres://postgres@127.0.0.1:5432/test'),
  mongo: env('MONGO_URL', 'mongodb://127.0.0.1:27017'),
  mqtt: env('MQTT_URL', 'mqtt://127.0.0.1:1883'),
  amqp: env('AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672'),
};

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    fps: { type: 'string', default: '5' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  process.stdout.write('usage: examples/detection-export/run.sh [--seconds 20] [--fps 5]\n');
  process.exit(0);
}
const SECONDS = Math.max(1, Math.min(3600, Number(flags.seconds) || 20));
const FPS = Math.max(1, Math.min(60, Number(flags.fps) || 5));

const useColor = process.stdout.isTTY && !process.env['NO_COLOR'];
const paint = (code: number, s: string) => (useColor ? `\x1b[${code}m${s}\x1b[0m` : s);
const say = (msg: string) => process.stdout.write(`${paint(1, 'demo')} | ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// The pipeline: gateway, dedupe and exporter as child processes, their logs kept (shown on failure).

interface Child {
  name: string;
  proc: ChildProcess;
  lines: string[];
  waitFor(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

const children: Child[] = [];

function startService(name: string, extra: Record<string, string>): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', `apps/${name}/src/main.ts`], {
    cwd: ROOT,
    env: {
      ...process.env,
      TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.base.json'),
      NATS_URL: URLS.nats,
      SLUICE_NAMESPACE: NAMESPACE,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OTEL_SDK_DISABLED: 'true',
      ...extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: Array<{ msg: string; resolve: (r: Record<string, unknown>) => void }> = [];
  for (const stream of [proc.stdout!, proc.stderr!]) {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      if (lines.length < 5_000) lines.push(line);
      let rec: Record<string, unknown> | undefined;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (rec['level'] === 'error' || rec['level'] === 'fatal' || rec['level'] === 50)
        say(paint(91, `${name}: ${String(rec['msg'])} ${JSON.stringify(rec['err'] ?? '')}`));
      for (const w of [...waiters])
        if (rec['msg'] === w.msg) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(rec);
        }
    });
  }
  const child: Child = {
    name,
    proc,
    lines,
    waitFor(msg, timeoutMs = 60_000) {
      return new Promise((resolveWait, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name}: no "${msg}" within ${timeoutMs} ms`)),
          timeoutMs,
        );
        proc.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited (${code}):\n${lines.slice(-15).join('\n')}`));
        });
        waiters.push({
          msg,
          resolve: (r) => {
            clearTimeout(timer);
            resolveWait(r);
          },
        });
      });
    },
  };
  children.push(child);
  return child;
}

async function stopChildren(): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((done) => {
          if (c.proc.exitCode !== null || c.proc.signalCode !== null) return done();
          const hard = setTimeout(() => c.proc.kill('SIGKILL'), 15_000);
          c.proc.once('exit', () => {
            clearTimeout(hard);
            done();
          });
          c.proc.kill('SIGTERM');
        }),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Watchers: each destination read back with a client of its own kind.

type Arrive = (record: ExportRecord) => void;

interface Watcher {
  name: string;
  /** How it reads: shown in the summary (polling adds up to POLL_MS to the latency). */
  how: string;
  start(onArrive: Arrive, pending: () => string[]): Promise<void>;
  stop(): Promise<void>;
}

function mqttWatcher(): Watcher {
  let client: mqtt.MqttClient | undefined;
  return {
    name: 'mqtt',
    how: `subscribed to ${MQTT_TOPICS}`,
    async start(onArrive) {
      client = await mqtt.connectAsync(URLS.mqtt, {
        clientId: `demo-watch-${randomBytes(3).toString('hex')}`,
      });
      client.on('message', (_topic, payload) => onArrive(decodeRecord('json', payload)));
      await client.subscribeAsync(MQTT_TOPICS, { qos: 1 });
    },
    async stop() {
      await client?.endAsync();
    },
  };
}

function amqpWatcher(): Watcher {
  let conn: AmqpConnection | undefined;
  let consumer: ReturnType<AmqpConnection['createConsumer']> | undefined;
  return {
    name: 'rabbitmq',
    how: `a queue of its own bound to exchange ${AMQP_EXCHANGE}`,
    async start(onArrive) {
      conn = new AmqpConnection({ url: URLS.amqp, connectionTimeout: 5_000 });
      conn.on('error', () => undefined);
      await conn.onConnect(10_000);
      const queue = `sluice.demo.watch.${randomBytes(3).toString('hex')}`;
      consumer = conn.createConsumer(
        {
          queue,
          queueOptions: { exclusive: true, autoDelete: true },
          exchanges: [{ exchange: AMQP_EXCHANGE, type: 'topic', durable: true }],
          queueBindings: [{ queue, exchange: AMQP_EXCHANGE, routingKey: '#' }],
        },
        (m: AsyncMessage) => {
          // rabbitmq-client parses an application/json body already.
          const body = Buffer.isBuffer(m.body) ? m.body : Buffer.from(JSON.stringify(m.body));
          onArrive(decodeRecord('json', body));
        },
      );
      consumer.on('error', () => undefined);
      await new Promise<void>((ok) => consumer!.once('ready', () => ok()));
    },
    async stop() {
      // The consumer first: a connection with an open consumer does not finish closing.
      await consumer?.close();
      await conn?.close();
    },
  };
}

/** Polls while something is pending; `read(ids)` returns the records of those ids found so far. */
function poller(read: (ids: string[]) => Promise<ExportRecord[]>) {
  let timer: NodeJS.Timeout | undefined;
  let busy = false;
  return {
    start(onArrive: Arrive, pending: () => string[]) {
      timer = setInterval(() => {
        const ids = pending();
        if (busy || ids.length === 0) return;
        busy = true;
        read(ids)
          .then((records) => records.forEach(onArrive))
          .catch(() => undefined)
          .finally(() => (busy = false));
      }, POLL_MS);
    },
    stop() {
      clearInterval(timer);
    },
  };
}

function postgresWatcher(): Watcher {
  const client = new PgClient({ connectionString: URLS.postgres });
  const poll = poller(async (ids) => {
    const { rows } = await client.query<{ record: ExportRecord }>(
      `SELECT record FROM ${PG_SCHEMA}.detection_records WHERE record->>'event_id' = ANY($1)`,
      [ids],
    );
    return rows.map((r) => r.record);
  });
  return {
    name: 'postgres',
    how: `SELECT record FROM ${PG_SCHEMA}.detection_records every ${POLL_MS} ms`,
    async start(onArrive, pending) {
      await client.connect();
      poll.start(onArrive, pending);
    },
    async stop() {
      poll.stop();
      await client.end();
    },
  };
}

function mongoWatcher(): Watcher {
  const client = new MongoClient(URLS.mongo, { serverSelectionTimeoutMS: 5_000 });
  const poll = poller(async (ids) => {
    const docs = await client
      .db(MONGO_DATABASE)
      .collection<{ _id: string }>('detections')
      .find({ _id: { $in: ids } })
      .toArray();
    return docs.map(
      (d) => ({ kind: 'detection', event_id: d._id, ...d }) as unknown as ExportRecord,
    );
  });
  return {
    name: 'mongodb',
    how: `db.detections.find() in ${MONGO_DATABASE} every ${POLL_MS} ms`,
    async start(onArrive, pending) {
      await client.connect();
      poll.start(onArrive, pending);
    },
    async stop() {
      poll.stop();
      await client.close();
    },
  };
}

function fileWatcher(): Watcher {
  const dir = join(EXPORT_DIR, 'files');
  const poll = poller(async (ids) => {
    const want = new Set(ids);
    const out: ExportRecord[] = [];
    if (!existsSync(dir)) return out;
    for (const name of await readdir(dir)) {
      const p = parseFileName(name);
      if (!p || p.format !== 'jsonl') continue;
      const bytes = await readFile(join(dir, name)).catch(() => undefined);
      if (!bytes) continue; // renamed meanwhile: read at the next poll
      for (const line of completeText(bytes, p.gzip, p.format).toString('utf8').split('\n')) {
        if (!line) continue;
        const r = JSON.parse(line) as ExportRecord;
        if (want.has(r.event_id)) out.push(r);
      }
    }
    return out;
  });
  return {
    name: 'files',
    how: `JSON lines in ${dir} read every ${POLL_MS} ms`,
    async start(onArrive, pending) {
      poll.start(onArrive, pending);
      return Promise.resolve();
    },
    async stop() {
      poll.stop();
      return Promise.resolve();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The camera: frames of a few objects, people at high confidence sent as safety events.

const CLASSES = [
  { classId: 0, label: 'person' },
  { classId: 2, label: 'car' },
  { classId: 16, label: 'dog' },
] as const;

function frame(n: number, deviceId: string, start: number): DetectionEvent {
  const detections: Detection[] = [];
  const count = 1 + (n % 3);
  for (let i = 0; i < count; i++) {
    const c = CLASSES[(n + i) % CLASSES.length]!;
    const x = ((n * 37 + i * 101) % 80) / 100;
    detections.push({
      objectId: `o${i}`,
      classId: c.classId,
      label: c.label,
      confidence: 0.5 + ((n * 13 + i * 7) % 50) / 100,
      trackerId: String(1000 + ((n + i) % 7)),
      bbox: { left: x, top: 0.1 + i * 0.2, width: 0.15, height: 0.3 },
    });
  }
  const frameTime = new Date(start + Math.round((n * 1000) / FPS));
  return {
    eventId: `${deviceId}:cam-1:${frameTime.getTime()}:${n}`,
    deviceId,
    streamId: 'cam-1',
    frameTime,
    region: REGION,
    schemaVersion: 0,
    detections,
    attributes: { model: 'demo-yolo', site: 'loading-dock' },
    firmwareVersion: '4.2.1',
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const token = randomBytes(24).toString('hex');
  say(`starting gateway, dedupe and exporter (namespace ${NAMESPACE})`);
  const gateway = startService('ingestion', {
    INGEST_HOST: '127.0.0.1',
    INGEST_GRPC_PORT: '0',
    INGEST_HTTP_PORT: '0',
    INGEST_REGIONS: REGION,
    INGEST_AUTH_TOKENS: `${createHash('sha256').update(token).digest('hex')}=*`,
  });
  const dedupe = startService('dedupe', {
    REDIS_URL: URLS.redis,
    DEDUPE_KEY_PREFIX: `${NAMESPACE}:`,
  });
  const exporter = startService('exporter', {
    EXPORTER_CONFIG: CONFIG,
    DEMO_MQTT_URL: URLS.mqtt,
    DEMO_AMQP_URL: URLS.amqp,
    DEMO_PG_URL: URLS.postgres,
    DEMO_MONGO_URL: URLS.mongo,
    DEMO_EXPORT_DIR: join(EXPORT_DIR, 'files'),
  });
  const [gw] = await Promise.all([
    gateway.waitFor('ingestion running'),
    dedupe.waitFor('dedupe running'),
    exporter.waitFor('exporter running'),
  ]);
  const target = `127.0.0.1:${String(gw['grpcPort'])}`;
  say(`gateway ${target}; exporter destinations from ${CONFIG.slice(ROOT.length + 1)}`);

  const watchers = [mqttWatcher(), amqpWatcher(), postgresWatcher(), mongoWatcher(), fileWatcher()];
  const emitted = new Map<string, number>();
  const arrived = new Map<string, Map<string, number>>(watchers.map((w) => [w.name, new Map()]));
  let shown = 0;
  for (const w of watchers) {
    const seen = arrived.get(w.name)!;
    await w.start(
      (record) => {
        const at = Date.now();
        const sent = emitted.get(record.event_id);
        if (sent === undefined || seen.has(record.event_id)) return;
        seen.set(record.event_id, at - sent);
        if (shown < 10) {
          shown++;
          const r = record as DetectionExportRecord;
          const objects = (r.detections ?? [])
            .map((d) => `${d.label} ${Number(d.confidence).toFixed(2)}`)
            .join(', ');
          const which = r.event_id.includes('-warmup:')
            ? 'warm-up frame'
            : `frame ${r.event_id.split(':').slice(-1)[0]}`;
          say(
            `${paint(36, w.name.padEnd(8))} ${which} of ${r.stream_id} (${objects}) +${at - sent} ms after emit`,
          );
        }
      },
      () => [...emitted.keys()].filter((id) => !seen.has(id)).slice(0, 1_000),
    );
    say(`  watching ${w.name}: ${w.how}`);
  }

  const camera = new DeviceClient({ target, token, name: 'demo-camera' });
  const deviceId = `demo-cam-${randomBytes(2).toString('hex')}`;
  // One frame through the whole pipeline first: connections opened, tables created, dedupe's start-up
  // fence passed. It is shown, and left out of the numbers.
  const warm = frame(0, `${deviceId}-warmup`, Date.now());
  emitted.set(warm.eventId, Date.now());
  camera.emitDetection(warm);
  const warmBy = Date.now() + 60_000;
  while (Date.now() < warmBy && watchers.some((w) => !arrived.get(w.name)!.has(warm.eventId)))
    await new Promise((r) => setTimeout(r, 100));
  emitted.delete(warm.eventId);
  for (const seen of arrived.values()) seen.delete(warm.eventId);
  const frames = SECONDS * FPS;
  const start = Date.now();
  say(`camera ${deviceId}: ${frames} frames at ${FPS} fps`);
  const progress = setInterval(() => {
    const counts = watchers.map((w) => `${w.name} ${arrived.get(w.name)!.size}`).join(' | ');
    say(`emitted ${emitted.size} | ${counts}`);
  }, 2_000);
  for (let n = 0; n < frames; n++) {
    const f = frame(n, deviceId, start);
    const safety = f.detections.some((d) => d.label === 'person' && d.confidence >= 0.9);
    emitted.set(f.eventId, Date.now());
    camera.emitDetection(f, safety ? 'safety' : 'normal');
    await new Promise((r) =>
      setTimeout(r, Math.max(0, start + ((n + 1) * 1000) / FPS - Date.now())),
    );
  }
  const closed = await camera.close(10_000);
  say(
    `camera closed: ${closed.flushed ? 'every frame acknowledged by the gateway' : `${closed.abandoned} frame(s) abandoned`}`,
  );

  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && watchers.some((w) => arrived.get(w.name)!.size < emitted.size))
    await new Promise((r) => setTimeout(r, 200));
  clearInterval(progress);

  say('');
  say(
    `${'destination'.padEnd(12)} ${'frames'.padStart(9)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)}  (emit → seen by the watcher)`,
  );
  let complete = true;
  for (const w of watchers) {
    const lat = [...arrived.get(w.name)!.values()].sort((a, b) => a - b);
    if (lat.length < emitted.size) complete = false;
    say(
      `${w.name.padEnd(12)} ${`${lat.length}/${emitted.size}`.padStart(9)} ${String(percentile(lat, 50)).padStart(7)} ${String(percentile(lat, 99)).padStart(7)}`,
    );
  }
  say('');
  say(
    'the latency includes the SDK batch linger (20 ms) and, for the polled watchers, up to 100 ms of polling',
  );
  say('look with each destination’s own client: examples/detection-export/README.md');
  await Promise.all(watchers.map((w) => w.stop().catch(() => undefined)));
  await stopChildren();
  process.exitCode = complete ? 0 : 1;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    say(`${sig}: stopping`);
    void stopChildren().then(() => process.exit(130));
  });

main().catch(async (err: unknown) => {
  say(paint(91, `failed: ${err instanceof Error ? err.message : String(err)}`));
  await stopChildren();
  process.exit(1);
});

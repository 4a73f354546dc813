// `npm run bench -- export [--seconds 10] [--rate 1000] [--flag value ...]`: detections through the
// real pipeline to MQTT, RabbitMQ, PostgreSQL, MongoDB and JSON-lines files, in four phases, each
// against a reference measured in the same run. Gateway (apps/ingestion), dedupe and exporter run as
// production runs them (esbuild bundles on plain node, built-app.ts) against the local servers.
//
// 1. latency (namespace of its own): a gRPC client (the device SDK's transport) sends detection
//    frames at --rate (default 1,000/s, ten times the requirement) for --seconds and records the
//    gateway's ack time of every frame; the exporter has the five destinations at once. An observer
//    on 127.0.0.1 stamps each frame's arrival at each destination: an MQTT subscriber, a RabbitMQ
//    queue consumer (QoS 0 / no-ack, so the observer never throttles delivery), a PostgreSQL poll by
//    primary key every --poll-ms (stamped at the poll's start: late by at most one interval and
//    query), the MongoDB server's acknowledgement of each insert seen on the wire by a TCP relay
//    between the exporter and the server (in a worker thread; a poll would be a full collection
//    scan on FerretDB/SQLite, ~0.1 ms per stored document), and a tail of the file sink's open
//    `.tmp` file every --poll-ms. Latency = arrival − gateway ack. A core NATS subscriber on the
//    clean subjects stamps when dedupe published each frame, and the exporter's own metrics (write
//    time, frames per write) and every process's CPU show where the time goes.
// 1b. latency-each: the same phase once per destination, each alone in a pipeline of its own
//    (gateway, dedupe, an exporter with that one destination), as a team running one exporter per
//    destination would: the other servers' CPU is out of the measurement. Each destination's
//    `timeline` gives p50/p99 per half second of the window, to tell a steady tail from bursts.
// 2. sdk: measureEmitOverhead (libs/device-sdk) on a 30 fps loop of 20 ms frames, the DeviceClient
//    sending to the same gateway, in 5 alternating rounds; plus the SDK's own CPU per frame (this
//    thread's CPU time with and without one emit() per frame on the same pacing, no busy work).
// 3. gateway: closed-loop gRPC load of unique detection frames (--batch per request) for
//    --gw-seconds with the exporter running and with it paused (SIGSTOP), alternated --gw-pairs
//    times, dedupe caught up before each run.
// 4. throughput (another namespace): a clean stream pre-filled with --backlog frames is drained by
//    the exporter into one destination at a time (added by a reload, production batch defaults);
//    ceiling = the same records written straight with the same client library right after: mqtt.js
//    QoS 1 publishes, rabbitmq-client confirmed publishes, the sink's own unnest statement on pg,
//    insertMany with the mongodb driver, appends + fdatasync; pre-encoded (the encoding time is
//    reported beside), in the exporter's batch sizes (64 messages per write) and in-flight bounds
//    (1,000 publishes, within the broker's receive maximum).
//
// A "detection" is one DetectionEvent (one frame of one camera stream) with 1 to 3 objects (2 on
// average). Every run removes its streams, Redis keys, schemas, databases, queues and files.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  CONTENT_TYPES,
  decodeBatch,
  encodeBatch,
  HEADERS,
  IngestStatus,
  topology,
  type Event,
  type IngestAck,
} from '@sluice/contracts';
import {
  bearerMetadata,
  createIngestChannel,
  DeviceClient,
  encodeIngestRequest,
  measureEmitOverhead,
  openIngestStream,
  type IngestStream,
  type OverheadResult,
} from '@sluice/device-sdk';
import { ensureStream, publishDurable } from '@sluice/jetstream';
import {
  EXPORT_HEADERS,
  encodeJsonRecord,
  renderRecord,
  toExportRecord,
  type DetectionExportRecord,
  type SinkRecord,
} from '@sluice/sinks-core';
import { MongoSink, toDocument } from '@sluice/sinks-mongodb';
import { PostgresSink } from '@sluice/sinks-postgres';
import { freePort, testUrls, uniqueId, waitFor } from '@sluice/testing';
import { MongoClient } from 'mongodb';
import mqtt, { type IClientPublishOptions, type IConnackPacket } from 'mqtt';
import { Client as PgClient } from 'pg';
import { Connection as AmqpConnection, type Envelope } from 'rabbitmq-client';
// The PostgreSQL ceiling runs the sink's own statement (frames and their objects in one unnest).
// eslint-disable-next-line @nx/enforce-module-boundaries
import { detectionParams, INSERT_DETECTIONS } from '../../../../libs/sinks/postgres/src/rows';
import { startBuiltApp } from '../built-app';
import { cpuSnapshot } from '../cpu';
import { dropRedisPrefix } from '../redis-keys';
import { percentile, round, type Bench, type BenchFlags, type BenchResult } from '../result';

export const flags: BenchFlags = {
  linger: 'exporter batch linger in the latency and gateway phases (default 0ms; production 20ms)',
  'poll-ms': 'poll interval of the PostgreSQL and file observers (default 5)',
  streams: 'camera streams of the latency load (default 40)',
  backlog: 'frames in the clean stream each destination drains alone (default 20000)',
  batch: 'frames per clean message of the backlog and per closed-loop gateway batch (default 100)',
  'gw-seconds': 'length of each closed-loop gateway run (default 5)',
  'gw-pairs': 'runs with and without the exporter, alternated (default 2, at most 2)',
  'sdk-frames': 'frames of each SDK overhead run at 30 fps (default 300: 10 s)',
  only: 'phases to run, comma-separated: latency,latency-each,sdk,gateway,throughput (default all)',
  dests: 'destinations, comma-separated: mqtt,amqp,postgres,mongodb,file (default all)',
};

const PHASES = ['latency', 'latency-each', 'sdk', 'gateway', 'throughput'] as const;
const REGION = 'eu-west';
const DESTINATIONS = ['mqtt', 'amqp', 'postgres', 'mongodb', 'file'] as const;
type Dest = (typeof DESTINATIONS)[number];
type Observed = Dest | 'clean';
/** The issue's targets for p99 from gateway ack to arrival; files have none. */
const TARGET_P99_MS: Record<Dest, number | null> = {
  mqtt: 50,
  amqp: 50,
  postgres: 100,
  mongodb: 100,
  file: null,
};
/** Local servers whose CPU is reported (process names). */
const SERVERS = ['nats-server', 'redis-server', 'postgres', 'ferretdb', 'beam.smp', 'mosquitto'];
/** Messages per exporter write at its default (`batch.max_messages`), mirrored by the ceilings. */
const EXPORTER_BATCH_MESSAGES = 64;
/** Publishes in flight of the MQTT and AMQP sinks (`maxInFlight`), mirrored by the ceilings. */
const PUBLISH_WINDOW = 1_000;

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across threads and with the servers' clocks. */
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const say = (line: string) => process.stdout.write(`export | ${line}\n`);
/** A name usable as a PostgreSQL schema and a MongoDB database. */
const sqlName = (run: string) => run.replace(/-/g, '_');
/** Event ids sort in sending order within a phase (the PostgreSQL observer relies on it). */
const eventId = (run: string, phase: number, n: number) =>
  `${run}-${phase}-${String(n).padStart(9, '0')}`;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function stats(values: number[]): { p50_ms: number; p99_ms: number; max_ms: number } {
  const s = [...values].sort((a, b) => a - b);
  return {
    p50_ms: round(percentile(s, 50), 1),
    p99_ms: round(percentile(s, 99), 1),
    max_ms: round(s.at(-1) ?? 0, 1),
  };
}

const LABELS = [
  { classId: 0, label: 'person' },
  { classId: 2, label: 'car' },
  { classId: 16, label: 'dog' },
] as const;

/** Frame `n` of camera `n % streams`: 1 to 3 objects. */
function detectionEvent(id: string, n: number, streams: number, frameTime: Date): Event {
  const cam = n % streams;
  const count = 1 + (n % 3);
  return {
    kind: {
      $case: 'detection',
      value: {
        eventId: id,
        deviceId: `bench-edge-${cam % 8}`,
        streamId: `cam-${cam}`,
        frameTime,
        region: REGION,
        schemaVersion: 0,
        detections: Array.from({ length: count }, (_, i) => {
          const c = LABELS[(n + i) % LABELS.length]!;
          return {
            objectId: `o${i}`,
            classId: c.classId,
            label: c.label,
            confidence: 0.5 + ((n * 13 + i * 7) % 50) / 100,
            trackerId: String(1000 + ((n + i) % 97)),
            bbox: {
              left: ((n * 37 + i * 101) % 80) / 100,
              top: 0.1 + i * 0.2,
              width: 0.15,
              height: 0.3,
            },
          };
        }),
        attributes: { model: 'bench-yolo', site: `site-${cam % 4}` },
        firmwareVersion: '4.2.1',
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Services under test: built apps as child processes, their JSON log lines read for readiness.

class Child {
  private readonly lines: string[] = [];
  private readonly waiters: Array<{ msg: string; resolve: (r: Record<string, unknown>) => void }> =
    [];
  private errorsShown = 0;
  /** Warnings and errors logged so far, by message. */
  readonly warnings = new Map<string, number>();
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    this.exited = new Promise((r) => proc.once('exit', () => r()));
    for (const s of [proc.stdout, proc.stderr])
      if (s) createInterface({ input: s, crlfDelay: Infinity }).on('line', (l) => this.onLine(l));
  }

  static start(app: string, env: Record<string, string>): Child {
    return new Child(app, startBuiltApp(app, env));
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  private onLine(line: string): void {
    if (this.lines.length >= 200) this.lines.shift();
    this.lines.push(line);
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const level = rec['level'];
    const warn =
      level === 'warn' ||
      level === 'error' ||
      level === 'fatal' ||
      (typeof level === 'number' && level >= 40);
    if (warn) {
      const key = `${String(rec['msg'])}${rec['status'] ? ` (${String(rec['status'])})` : ''}`;
      this.warnings.set(key, (this.warnings.get(key) ?? 0) + 1);
    }
    if (warn && this.errorsShown++ < 20)
      process.stderr.write(
        `${this.name}: ${String(rec['msg'])} ${JSON.stringify(rec['err'] ?? '')}\n`,
      );
    for (const w of [...this.waiters])
      if (rec['msg'] === w.msg) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(rec);
      }
  }

  /** Resolves with the first log record whose `msg` is `msg` (registered before it can be printed). */
  waitFor(msg: string, timeoutMs = 120_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.name}: no "${msg}" within ${timeoutMs} ms:\n${this.tail()}`));
      }, timeoutMs);
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${this.proc.exitCode}):\n${this.tail()}`));
      });
      this.waiters.push({
        msg,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
    });
  }

  tail(n = 15): string {
    return this.lines.slice(-n).join('\n');
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// The device side: one gRPC Ingest stream, the ack time of every batch.

interface BatchAck {
  status: IngestStatus;
  accepted: number;
  retryAfterMs: number;
  /** When the ack reached this process (now()). */
  at: number;
}

class IngestClient {
  private readonly channel: ReturnType<typeof createIngestChannel>;
  private readonly call: IngestStream;
  private readonly pending: Array<{
    batchId: string;
    resolve: (a: BatchAck) => void;
    reject: (e: Error) => void;
  }> = [];
  private failed: Error | undefined;

  constructor(target: string, token: string) {
    this.channel = createIngestChannel(target, { ownConnection: true });
    this.call = openIngestStream(this.channel, bearerMetadata(token));
    this.call.on('data', (ack: IngestAck) => {
      const at = now();
      const p = this.pending.shift();
      if (!p) return;
      if (p.batchId !== ack.batchId)
        p.reject(new Error(`ack of ${ack.batchId} while ${p.batchId} was expected`));
      else
        p.resolve({
          status: ack.status,
          accepted: ack.accepted,
          retryAfterMs: ack.retryAfterMs,
          at,
        });
    });
    const fail = (err?: Error) => {
      this.failed ??= err ?? new Error('the Ingest stream ended');
      for (const p of this.pending.splice(0)) p.reject(this.failed);
    };
    this.call.on('error', fail);
    this.call.on('end', () => fail());
  }

  /** Writes one encoded IngestRequest; resolves with its ack (acks come in request order). */
  send(batchId: string, bytes: Buffer): Promise<BatchAck> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.pending.push({ batchId, resolve, reject });
      this.call.write(bytes);
    });
  }

  close(): void {
    this.failed ??= new Error('closed');
    this.call.end();
    this.channel.close();
  }
}

/**
 * One encoded IngestRequest of `size` frames whose batch id and event ids are rewritten in place for
 * every batch (same lengths): closed-loop load of unique frames without encoding in the loop.
 */
class BatchTemplate {
  private readonly bytes: Buffer;
  private readonly batchOffset: number;
  private readonly idOffsets: number[] = [];

  constructor(
    private readonly run: string,
    private readonly phase: number,
    private readonly size: number,
  ) {
    const events = Array.from({ length: size }, (_, i) =>
      detectionEvent(eventId(run, phase, i), i, 40, new Date()),
    );
    this.bytes = encodeIngestRequest({ batchId: this.batchId(0), events });
    this.batchOffset = this.bytes.indexOf(this.batchId(0), 0, 'latin1');
    let from = 0;
    for (let i = 0; i < size; i++) {
      const at = this.bytes.indexOf(eventId(run, phase, i), from, 'latin1');
      if (at < 0 || this.batchOffset < 0) throw new Error('template ids not found in the encoding');
      this.idOffsets.push(at);
      from = at + 1;
    }
  }

  private batchId(k: number): string {
    return `${this.run}-g${this.phase}-${String(k).padStart(9, '0')}`;
  }

  make(k: number): { batchId: string; bytes: Buffer } {
    const bytes = Buffer.from(this.bytes);
    const batchId = this.batchId(k);
    bytes.write(batchId, this.batchOffset, 'latin1');
    this.idOffsets.forEach((off, i) =>
      bytes.write(eventId(this.run, this.phase, k * this.size + i), off, 'latin1'),
    );
    return { batchId, bytes };
  }
}

// ---------------------------------------------------------------------------------------------
// Arrivals: which frames each observer still waits for, and when each arrived.

class Arrivals {
  readonly pending = new Map<Observed, Set<string>>();
  readonly at = new Map<Observed, Map<string, number>>();

  constructor(readonly observed: readonly Observed[]) {
    for (const o of observed) {
      this.pending.set(o, new Set());
      this.at.set(o, new Map());
    }
  }

  expect(ids: readonly string[]): void {
    for (const set of this.pending.values()) for (const id of ids) set.add(id);
  }

  forget(ids: readonly string[]): void {
    for (const set of this.pending.values()) for (const id of ids) set.delete(id);
  }

  arrive(o: Observed, id: string, t: number): void {
    if (this.pending.get(o)?.delete(id)) this.at.get(o)!.set(id, t);
  }

  waiting(): number {
    let n = 0;
    for (const set of this.pending.values()) n += set.size;
    return n;
  }

  reset(): void {
    for (const o of this.observed) {
      this.pending.get(o)!.clear();
      this.at.get(o)!.clear();
    }
  }
}

type Stop = () => Promise<void>;

/** The CONNACK of a connecting mqtt.js client, or its first error. */
function mqttConnected(client: mqtt.MqttClient): Promise<IConnackPacket> {
  return new Promise((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
}

async function mqttObserver(
  topicFilter: string,
  clientId: string,
  arrivals: Arrivals,
): Promise<Stop> {
  const client = mqtt.connect(testUrls.mqtt, {
    protocolVersion: 5,
    clientId,
    clean: true,
    reconnectPeriod: 0,
  });
  client.on('error', () => undefined);
  await mqttConnected(client);
  client.on('message', (_topic, _payload, packet) => {
    const t = now();
    const v = packet.properties?.userProperties?.[EXPORT_HEADERS.EVENT_ID];
    const id = Array.isArray(v) ? v[0] : v;
    if (id) arrivals.arrive('mqtt', id, t);
  });
  // QoS 0 to the observer: the broker's in-flight window (20 on Mosquitto) to a subscriber that is
  // late to ack would throttle delivery and be measured as export latency.
  await client.subscribeAsync(topicFilter, { qos: 0 });
  return async () => {
    await client.endAsync(true);
  };
}

async function amqpObserver(queue: string, arrivals: Arrivals): Promise<Stop> {
  const conn = new AmqpConnection({ url: testUrls.amqp, connectionTimeout: 5_000 });
  conn.on('error', () => undefined);
  await conn.onConnect(10_000);
  const consumer = conn.createConsumer(
    { queue, queueOptions: { passive: true }, qos: { prefetchCount: 1_000 }, noAck: true },
    (m) => {
      const t = now();
      if (m.messageId) arrivals.arrive('amqp', m.messageId, t);
    },
  );
  consumer.on('error', (err) => process.stderr.write(`amqp observer: ${String(err)}\n`));
  await once(consumer, 'ready');
  return async () => {
    await consumer.close();
    await conn.close();
  };
}

/**
 * Polls the frames table by primary key while frames are awaited: rows above the highest id seen,
 * plus awaited ids below it (a later frame may land first). A row visible to the poll arrived before
 * the poll started: stamped with the start, late by at most one interval and query.
 */
function pgObserver(schema: string, run: string, arrivals: Arrivals, pollMs: number) {
  const client = new PgClient({ connectionString: testUrls.postgres });
  const sql = `(SELECT event_id FROM ${schema}.detection_events WHERE event_id > $1 ORDER BY event_id LIMIT 5000)
    UNION ALL (SELECT event_id FROM ${schema}.detection_events WHERE event_id = ANY($2::text[]))`;
  let maxSeen = `${run}-`;
  let running = true;
  let polls = 0;
  let errors = 0;
  const loop = (async () => {
    await client.connect();
    while (running) {
      const pending = arrivals.pending.get('postgres')!;
      if (pending.size > 0) {
        const below: string[] = [];
        for (const id of pending) {
          if (id < maxSeen) below.push(id);
          if (below.length >= 1_000) break;
        }
        const t = now();
        try {
          const { rows } = await client.query<{ event_id: string }>(sql, [maxSeen, below]);
          polls++;
          for (const r of rows) {
            if (r.event_id > maxSeen) maxSeen = r.event_id;
            arrivals.arrive('postgres', r.event_id, t);
          }
        } catch {
          errors++; // the table is created by the sink's first connect
        }
      }
      await sleep(pollMs);
    }
  })();
  return {
    counts: () => ({ polls, errors }),
    stop: async () => {
      running = false;
      await loop.catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}

const lineEventId = (line: string): string | undefined => {
  const i = line.indexOf('"event_id":"');
  if (i < 0) return undefined;
  const start = i + 12;
  const end = line.indexOf('"', start);
  return end > start ? line.slice(start, end) : undefined;
};

/** Tails the file sink's open `.tmp` file (whole lines only) every `pollMs` while frames are awaited. */
function fileObserver(dir: string, arrivals: Arrivals, pollMs: number) {
  let fh: FileHandle | undefined;
  let current = '';
  let offset = 0;
  let rest = '';
  let lastScan = 0;
  let running = true;
  const buf = Buffer.allocUnsafe(1 << 20);
  const readNew = async (t: number) => {
    for (;;) {
      const { bytesRead } = await fh!.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) return;
      offset += bytesRead;
      const lines = (rest + buf.toString('utf8', 0, bytesRead)).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        const id = lineEventId(line);
        if (id) arrivals.arrive('file', id, t);
      }
    }
  };
  const loop = (async () => {
    while (running) {
      if (arrivals.pending.get('file')!.size > 0) {
        const t = now();
        try {
          if (!fh || t - lastScan > 250) {
            lastScan = t;
            const newest = (await readdir(dir))
              .filter((n) => n.endsWith('.tmp'))
              .sort()
              .at(-1);
            if (newest && newest !== current) {
              if (fh) {
                await readNew(t);
                await fh.close();
              }
              fh = await open(join(dir, newest), 'r');
              current = newest;
              offset = 0;
              rest = '';
            }
          }
          if (fh) await readNew(t);
        } catch {
          // the folder appears at the sink's first connect; a finalised file is read to its end above
        }
      }
      await sleep(pollMs);
    }
  })();
  return async () => {
    running = false;
    await loop;
    await fh?.close().catch(() => undefined);
  };
}

// The MongoDB observer: a TCP relay in a worker thread (its own event loop, so the bench's observers
// never delay the exporter's writes) between the exporter and the server. It forwards bytes as they
// come and reads the OP_MSG frames on the side: the `_id`s of each insert command, and the time the
// server's reply to it (ok: 1) came through. Replies are forwarded before they are parsed.
const MONGO_RELAY = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const { BSON } = require(workerData.mongodb);
const now = () => performance.timeOrigin + performance.now();
let observe = true;
parentPort.on('message', (m) => { if (m === 'quiet') observe = false; });
function framer(onMessage) {
  let buf = null;
  return (chunk, at) => {
    buf = buf ? Buffer.concat([buf, chunk]) : chunk;
    while (buf && buf.length >= 4) {
      const len = buf.readInt32LE(0);
      if (buf.length < len) break;
      const msg = buf.subarray(0, len);
      buf = buf.length > len ? buf.subarray(len) : null;
      onMessage(msg, at);
    }
  };
}
function sections(msg) {
  const out = { body: undefined, seqs: {} };
  if (msg.readInt32LE(12) !== 2013) return out;
  const end = msg.length - (msg.readUInt32LE(16) & 1 ? 4 : 0);
  let pos = 20;
  while (pos < end) {
    const kind = msg[pos++];
    const size = msg.readInt32LE(pos);
    if (kind === 0) out.body = msg.subarray(pos, pos + size);
    else if (kind === 1) {
      const z = msg.indexOf(0, pos + 4);
      const docs = [];
      for (let p = z + 1; p < pos + size; p += msg.readInt32LE(p)) docs.push(msg.subarray(p, p + msg.readInt32LE(p)));
      out.seqs[msg.toString('latin1', pos + 4, z)] = docs;
    } else throw new Error('OP_MSG section kind ' + kind);
    pos += size;
  }
  return out;
}
const server = net.createServer((down) => {
  const up = net.connect(workerData.port, workerData.host);
  down.setNoDelay(true);
  up.setNoDelay(true);
  const inserts = new Map();
  const end = () => { down.destroy(); up.destroy(); };
  for (const s of [down, up]) { s.on('error', end); s.on('close', end); }
  const requests = framer((msg) => {
    const s = sections(msg);
    if (!s.body) return;
    const cmd = BSON.deserialize(s.body);
    if (typeof cmd.insert !== 'string') return;
    const docs = cmd.documents || (s.seqs.documents || []).map((d) => BSON.deserialize(d));
    inserts.set(msg.readInt32LE(4), docs.map((d) => String(d._id)));
  });
  const replies = framer((msg, at) => {
    const ids = inserts.get(msg.readInt32LE(8));
    if (!ids) return;
    inserts.delete(msg.readInt32LE(8));
    const s = sections(msg);
    const r = s.body ? BSON.deserialize(s.body) : {};
    parentPort.postMessage({ ids, at, ok: r.ok === 1, writeErrors: Array.isArray(r.writeErrors) ? r.writeErrors.length : 0 });
  });
  const guarded = (fn) => (chunk, at) => {
    if (!observe) return;
    try { fn(chunk, at); } catch (err) { observe = false; parentPort.postMessage({ error: String(err) }); }
  };
  const onRequest = guarded(requests);
  const onReply = guarded(replies);
  down.on('data', (c) => { up.write(c); onRequest(c, 0); });
  up.on('data', (c) => { const at = now(); down.write(c); onReply(c, at); });
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
`;

/** What the relay's worker posts: its port, an acknowledged insert, or why it stopped reading. */
interface RelayMessage {
  port?: number;
  ids?: string[];
  at?: number;
  ok?: boolean;
  writeErrors?: number;
  error?: string;
}

class MongoRelay {
  insertReplies = 0;
  failedReplies = 0;
  writeErrors = 0;
  error: string | undefined;
  /** The relay's port on 127.0.0.1. */
  port = 0;
  private constructor(private readonly worker: Worker) {}

  static async start(arrivals: Arrivals): Promise<MongoRelay> {
    const target = new URL(testUrls.mongo);
    const relay = new MongoRelay(
      new Worker(MONGO_RELAY, {
        eval: true,
        workerData: {
          mongodb: require.resolve('mongodb'),
          host: target.hostname,
          port: Number(target.port || 27017),
        },
      }),
    );
    relay.port = await new Promise<number>((resolve, reject) => {
      relay.worker.once('error', reject);
      relay.worker.on('message', (m: RelayMessage) => {
        if (m.port !== undefined) return resolve(m.port);
        if (m.error !== undefined) relay.error = m.error;
        if (!m.ids) return;
        relay.insertReplies++;
        relay.writeErrors += m.writeErrors ?? 0;
        if (!m.ok) return void relay.failedReplies++;
        for (const id of m.ids) arrivals.arrive('mongodb', id, m.at!);
      });
    });
    return relay;
  }

  /** Stops reading the frames (the relay keeps forwarding). */
  quiet(): void {
    this.worker.postMessage('quiet');
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// Destinations in the exporter's file, and the exporter's own metrics.

interface DestinationContext {
  run: string;
  schema: string;
  database: string;
  mongoUrl: string;
  exchange: string;
  queue: string;
  dir: string;
  topicRoot: string;
}

function destinationSpec(dest: Dest, name: string, c: DestinationContext): Record<string, unknown> {
  switch (dest) {
    case 'mqtt':
      return {
        name,
        type: 'mqtt',
        format: 'json',
        options: {
          url: testUrls.mqtt,
          clientId: `bench-${c.run}-${name}`,
          detectionTopic: `${c.topicRoot}/detections/{stream_id}`,
          qos: 1,
          sessionExpirySeconds: 60,
        },
      };
    case 'amqp':
      return {
        name,
        type: 'amqp',
        format: 'json',
        options: {
          url: testUrls.amqp,
          exchange: c.exchange,
          queues: [{ name: c.queue, bindings: ['detection.#'] }],
        },
      };
    case 'postgres':
      return { name, type: 'postgres', options: { url: testUrls.postgres, schema: c.schema } };
    case 'mongodb':
      return {
        name,
        type: 'mongodb',
        options: {
          url: c.mongoUrl,
          database: c.database,
          detectionCollection: 'detections',
          writeConcernW: 1,
        },
      };
    case 'file':
      return {
        name,
        type: 'file',
        format: 'json',
        options: { dir: c.dir, prefix: 'detections', maxAgeMs: '10m' },
      };
  }
}

/** Writes the exporter's destinations file whole (temp + rename: a reload never reads half of it). */
function writeDestinations(file: string, content: object): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(content));
  renameSync(`${file}.tmp`, file);
}

/** The exporter's environment; `reloadPoll` is EXPORTER_RELOAD_POLL (`0`: no reloads). */
function exporterEnv(ns: string, config: string, reloadPoll = '0'): Record<string, string> {
  return {
    NATS_URL: testUrls.nats,
    SLUICE_NAMESPACE: ns,
    EXPORTER_CONFIG: config,
    EXPORTER_RELOAD_POLL: reloadPoll,
    EXPORTER_DRAIN_TIMEOUT: '5s',
    OPS_PORT: '0',
    OPS_HOST: '127.0.0.1',
    OTEL_SDK_DISABLED: 'true',
    LOG_LEVEL: 'info',
  };
}

interface SinkCounters {
  writeSeconds: number;
  writes: number;
  records: number;
  lagSeconds: number;
  lagCount: number;
}

/** Per destination: time in writes, writes, records, and the clean-publish-to-stored sum/count. */
async function scrapeSinks(opsPort: number): Promise<Map<string, SinkCounters>> {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  const out = new Map<string, SinkCounters>();
  const fields: Record<string, keyof SinkCounters> = {
    sluice_sink_write_duration_seconds_sum: 'writeSeconds',
    sluice_sink_write_duration_seconds_count: 'writes',
    sluice_sink_records_written_total: 'records',
    sluice_sink_publish_to_store_seconds_sum: 'lagSeconds',
    sluice_sink_publish_to_store_seconds_count: 'lagCount',
  };
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{[^}]*sink="([^"]+)"[^}]*\} ([\d.e+-]+)$/.exec(line);
    const field = m && fields[m[1]!];
    if (!m || !field) continue;
    const c = out.get(m[2]!) ?? {
      writeSeconds: 0,
      writes: 0,
      records: 0,
      lagSeconds: 0,
      lagCount: 0,
    };
    c[field] += Number(m[3]);
    out.set(m[2]!, c);
  }
  return out;
}

/** Percent of one core per snapshot key over `seconds`; `other` = machine − every listed process. */
function cpuPercent(
  before: Record<string, number>,
  after: Record<string, number>,
  seconds: number,
) {
  const out: Record<string, number> = {};
  let listed = 0;
  for (const k of Object.keys(after)) {
    out[k] = round((100 * (after[k]! - (before[k] ?? 0))) / seconds, 1);
    if (k !== 'machine') listed += out[k];
  }
  out['other'] = round(out['machine']! - listed, 1);
  return out;
}

let clockTicks: number | undefined;

/** CPU seconds of the whole machine (all cores, /proc/stat), busy = everything but idle and iowait. */
function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1);
  const ticks = fields.map(Number);
  const busy = ticks.reduce((a, b) => a + b, 0) - ticks[3]! - (ticks[4] ?? 0);
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return busy / clockTicks;
}

/**
 * CPU seconds so far of this process, the services under test, the local servers and the whole
 * machine; `cpuPercent` of two snapshots adds `other`: what the rest of the machine's work took.
 */
function processCpu(children: Record<string, Child>): Record<string, number> {
  const snap = cpuSnapshot({ service: process.pid, servers: SERVERS });
  const out: Record<string, number> = { machine: machineBusySeconds(), bench: snap['service']! };
  for (const [name, child] of Object.entries(children))
    out[name] = cpuSnapshot({ service: child.pid, servers: [] })['service']!;
  for (const s of SERVERS) out[s] = snap[s]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Phase 1: latency at the offered rate.

/** Sends frames of `phase` at `rate` for `seconds`, ~every 5 ms, recording each frame's ack time. */
async function offer(
  client: IngestClient,
  o: { run: string; phase: number; rate: number; seconds: number; streams: number },
  arrivals: Arrivals,
  acks: Map<string, number>,
): Promise<{ sent: number; accepted: number; failed: number; seconds: number }> {
  const start = now();
  const end = start + o.seconds * 1000;
  const total = Math.round(o.seconds * o.rate);
  let n = 0;
  let k = 0;
  let accepted = 0;
  let failed = 0;
  const inflight = new Set<Promise<void>>();
  while (now() < end && n < total) {
    const due = Math.min(total, Math.floor(((now() - start) / 1000) * o.rate));
    if (due > n) {
      const frameTime = new Date();
      const ids: string[] = [];
      const events: Event[] = [];
      for (const stop = Math.min(due, n + 1_000); n < stop; n++) {
        const id = eventId(o.run, o.phase, n);
        ids.push(id);
        events.push(detectionEvent(id, n, o.streams, frameTime));
      }
      arrivals.expect(ids);
      const batchId = `${o.run}-b${o.phase}-${k++}`;
      const p = client.send(batchId, encodeIngestRequest({ batchId, events })).then(
        (ack) => {
          if (ack.status === IngestStatus.OK) {
            accepted += ids.length;
            for (const id of ids) acks.set(id, ack.at);
          } else {
            failed += ids.length;
            arrivals.forget(ids);
          }
        },
        () => {
          failed += ids.length;
          arrivals.forget(ids);
        },
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    await sleep(5);
  }
  await Promise.all(inflight);
  return { sent: n, accepted, failed, seconds: (now() - start) / 1000 };
}

async function drained(arrivals: Arrivals, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (arrivals.waiting() > 0 && Date.now() < deadline) await sleep(50);
  return arrivals.waiting() === 0;
}

// ---------------------------------------------------------------------------------------------
// Phase 3: closed-loop gateway throughput.

async function closedLoop(
  target: string,
  token: string,
  tpl: BatchTemplate,
  batch: number,
  seconds: number,
  children: Record<string, Child>,
): Promise<Record<string, unknown>> {
  const streams = 2;
  const window = 16;
  const clients = Array.from({ length: streams }, () => new IngestClient(target, token));
  const latencies: number[] = [];
  let events = 0;
  let retries = 0;
  let failures = 0;
  let k = 0;
  const cpuBefore = processCpu(children);
  const start = now();
  const end = start + seconds * 1000;
  const worker = async (c: IngestClient) => {
    while (now() < end) {
      const b = tpl.make(k++);
      const t = now();
      try {
        const ack = await c.send(b.batchId, b.bytes);
        if (ack.status === IngestStatus.OK || ack.status === IngestStatus.PARTIAL) {
          events += ack.accepted;
          latencies.push(ack.at - t);
        } else {
          retries++;
          await sleep(Math.max(10, ack.retryAfterMs));
        }
      } catch {
        failures++;
        return;
      }
    }
  };
  await Promise.all(clients.flatMap((c) => Array.from({ length: window }, () => worker(c))));
  const elapsed = (now() - start) / 1000;
  const cpu = cpuPercent(cpuBefore, processCpu(children), elapsed);
  for (const c of clients) c.close();
  const s = stats(latencies);
  return {
    events_per_s: round(events / elapsed, 0),
    ack_p50_ms: s.p50_ms,
    ack_p99_ms: s.p99_ms,
    events,
    batch_events: batch,
    streams,
    in_flight_per_stream: window,
    retry_acks: retries,
    failures,
    seconds: round(elapsed, 1),
    cpu_pct: cpu,
  };
}

// ---------------------------------------------------------------------------------------------
// Phases 1-3 share one pipeline: gateway, dedupe and an exporter with the destinations under test.

interface PipelineOptions {
  rate: number;
  seconds: number;
  linger: string;
  pollMs: number;
  streams: number;
  batch: number;
  gwSeconds: number;
  gwPairs: number;
  sdkFrames: number;
  phases: Set<string>;
  dests: readonly Dest[];
}

interface Pipeline {
  run: string;
  topo: ReturnType<typeof topology>;
  token: string;
  /** The gateway's gRPC address. */
  target: string;
  nc: NatsConnection;
  jsm: JetStreamManager;
  ctx: DestinationContext;
  dir: string;
  arrivals: Arrivals;
  children: Record<string, Child>;
  exporterOps: number;
  relay: MongoRelay | undefined;
}

const serviceEnv = (ns: string): Record<string, string> => ({
  NATS_URL: testUrls.nats,
  REDIS_URL: testUrls.redis,
  SLUICE_NAMESPACE: ns,
  OPS_PORT: '0',
  OPS_HOST: '127.0.0.1',
  OTEL_SDK_DISABLED: 'true',
  LOG_LEVEL: 'info',
});

/** Starts gateway, dedupe and exporter (in that order of readiness); `p` is filled in as it goes, for cleanup. */
async function startPipeline(p: Pipeline, o: PipelineOptions): Promise<void> {
  if (o.dests.includes('mongodb')) {
    p.relay = await MongoRelay.start(p.arrivals);
    p.ctx.mongoUrl = `mongodb://127.0.0.1:${p.relay.port}/?directConnection=true`;
  }
  const config = join(p.dir, 'exporter.json');
  writeDestinations(config, {
    defaults: { batch: { linger: o.linger } },
    destinations: o.dests.map((d) => destinationSpec(d, `l-${d}`, p.ctx)),
  });
  const grpcPort = await freePort();
  p.target = `127.0.0.1:${grpcPort}`;
  say(`pipeline: building and starting gateway, dedupe, exporter (namespace ${p.run})`);
  const gateway = Child.start('ingestion', {
    ...serviceEnv(p.run),
    INGEST_HOST: '127.0.0.1',
    INGEST_GRPC_PORT: String(grpcPort),
    INGEST_HTTP_PORT: '0',
    INGEST_REGIONS: REGION,
    INGEST_AUTH_TOKENS: `${createHash('sha256').update(p.token).digest('hex')}=*`,
    // A few simulated edge devices send all the frames: no per-device limit.
    INGEST_DEVICE_RATE: '1000000000',
    INGEST_DEVICE_BURST: '1000000000',
    INGEST_STREAM_MAX_AGE: '10m',
  });
  p.children['gateway'] = gateway;
  const gatewayUp = gateway.waitFor('ingestion running');
  const dedupe = Child.start('dedupe', {
    ...serviceEnv(p.run),
    DEDUPE_KEY_PREFIX: `${p.run}:`,
    DEDUPE_TTL: '1h',
  });
  p.children['dedupe'] = dedupe;
  await Promise.all([gatewayUp, dedupe.waitFor('dedupe running')]);
  // After dedupe, which provisions the clean stream.
  const exporter = Child.start('exporter', exporterEnv(p.run, config));
  p.children['exporter'] = exporter;
  p.exporterOps = Number((await exporter.waitFor('exporter running'))['opsPort']);
}

/** The observers of the destinations under test, and the tap on the clean subjects. */
async function startObservers(p: Pipeline, o: PipelineOptions): Promise<Stop[]> {
  const stops: Stop[] = [];
  const { arrivals, ctx } = p;
  try {
    if (o.dests.includes('mqtt'))
      stops.push(await mqttObserver(`${ctx.topicRoot}/#`, `bench-${p.run}-watch`, arrivals));
    if (o.dests.includes('amqp')) stops.push(await amqpObserver(ctx.queue, arrivals));
    if (o.dests.includes('postgres'))
      stops.push(pgObserver(ctx.schema, p.run, arrivals, o.pollMs).stop);
    if (o.dests.includes('file')) stops.push(fileObserver(ctx.dir, arrivals, o.pollMs));
    const tap = p.nc.subscribe(p.topo.filters.clean, {
      callback: (err, m) => {
        if (err) return;
        const t = now();
        for (const e of decodeBatch(m.data).events) {
          const id = e.kind?.value.eventId;
          if (id) arrivals.arrive('clean', id, t);
        }
      },
    });
    stops.push(() => Promise.resolve(tap.unsubscribe()));
    return stops;
  } catch (err) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    throw err;
  }
}

/** p50/p99/max of each half second of the window (by ack time): where a tail comes from, steady or bursts. */
function timeline(at: Map<string, number>, acks: Map<string, number>) {
  const slots: number[][] = [];
  let first: number | undefined;
  for (const [id, ack] of acks) {
    const a = at.get(id);
    if (a === undefined) continue;
    first ??= ack;
    (slots[Math.floor((ack - first) / 500)] ??= []).push(a - ack);
  }
  return Array.from(slots, (v = [], i) => ({ at_s: i / 2, frames: v.length, ...stats(v) }));
}

/** Latency percentiles of the frames acked in `acks` at observer `obs`, in sending order. */
function latencyAt(p: Pipeline, obs: Observed, acks: Map<string, number>) {
  const at = p.arrivals.at.get(obs)!;
  const lat: number[] = [];
  for (const [id, ack] of acks) {
    const a = at.get(id);
    if (a !== undefined) lat.push(a - ack);
  }
  // Keeping up or falling behind: the median of the first and of the last tenth of the frames.
  const tenth = Math.max(1, Math.floor(lat.length / 10));
  return {
    arrived: lat.length,
    ...stats(lat),
    first_tenth_p50_ms: stats(lat.slice(0, tenth)).p50_ms,
    last_tenth_p50_ms: stats(lat.slice(-tenth)).p50_ms,
    timeline: timeline(at, acks),
  };
}

/** The exporter's own view of one destination between two scrapes. */
function exporterView(before: SinkCounters | undefined, after: SinkCounters | undefined) {
  const d = (k: keyof SinkCounters) => (after?.[k] ?? 0) - (before?.[k] ?? 0);
  const writes = d('writes');
  return {
    exporter_writes: writes,
    exporter_frames_per_write: writes ? round(d('records') / writes, 1) : 0,
    exporter_write_mean_ms: writes ? round((1000 * d('writeSeconds')) / writes, 1) : 0,
    exporter_clean_to_stored_mean_ms: d('lagCount')
      ? round((1000 * d('lagSeconds')) / d('lagCount'), 1)
      : 0,
  };
}

/** Supplementary: the PostgreSQL server's now() when each frame's insert statement began (exported_at). */
async function pgInsertBegan(p: Pipeline, acks: Map<string, number>) {
  const c = new PgClient({ connectionString: testUrls.postgres });
  await c.connect();
  try {
    const { rows } = await c.query<{ event_id: string; ms: number }>(
      `SELECT event_id, extract(epoch FROM exported_at) * 1000 AS ms FROM ${p.ctx.schema}.detection_events WHERE event_id LIKE $1`,
      [`${p.run}-1-%`],
    );
    const lat: number[] = [];
    for (const r of rows) {
      const ack = acks.get(r.event_id);
      if (ack !== undefined) lat.push(Number(r.ms) - ack);
    }
    return stats(lat);
  } finally {
    await c.end();
  }
}

/** Phase 1: warm-up, then frames at the offered rate; arrival − gateway ack per destination. */
async function latencyPhase(p: Pipeline, o: PipelineOptions): Promise<Record<string, unknown>> {
  const stops = await startObservers(p, o);
  const client = new IngestClient(p.target, p.token);
  const load = { run: p.run, rate: o.rate, streams: o.streams };
  try {
    // Warm-up through everything: tables, collections, files, JIT, dedupe's start-up fence.
    const warm = await offer(client, { ...load, phase: 0, seconds: 2 }, p.arrivals, new Map());
    if (!(await drained(p.arrivals, 90_000)))
      throw new Error(
        `warm-up frames missing: ${[...p.arrivals.pending].map(([k, v]) => `${k} ${v.size}`).join(', ')}`,
      );
    p.arrivals.reset();
    say(`warm-up: ${warm.accepted} frames reached every destination`);

    const acks = new Map<string, number>();
    const metricsBefore = await scrapeSinks(p.exporterOps);
    const cpuBefore = processCpu(p.children);
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const sent = await offer(client, { ...load, phase: 1, seconds: o.seconds }, p.arrivals, acks);
    const cpuAfter = processCpu(p.children);
    const complete = await drained(p.arrivals, 30_000);
    loop.disable();
    const metricsAfter = await scrapeSinks(p.exporterOps);
    p.relay?.quiet();
    for (const stop of stops.splice(0).reverse()) await stop();

    const destinations: Record<string, ReturnType<typeof latencyAt> & Record<string, unknown>> = {};
    for (const d of o.dests) {
      const r = latencyAt(p, d, acks);
      const target = TARGET_P99_MS[d];
      destinations[d] = {
        ...r,
        expected: acks.size,
        target_p99_ms: target,
        met: target === null ? null : r.arrived === acks.size && r.p99_ms < target,
        ...exporterView(metricsBefore.get(`l-${d}`), metricsAfter.get(`l-${d}`)),
      };
    }
    const clean = latencyAt(p, 'clean', acks);
    const window = sent.seconds;
    const extra: Record<string, unknown> = {};
    if (o.dests.includes('postgres')) extra['postgres_insert_began'] = await pgInsertBegan(p, acks);
    if (p.relay) {
      // One scan afterwards, not timed (a full collection scan on FerretDB): every frame is stored.
      const mc = await MongoClient.connect(testUrls.mongo);
      extra['mongodb_stored_after'] = await mc
        .db(p.ctx.database)
        .collection('detections')
        .countDocuments({ _id: { $gte: `${p.run}-1-`, $lt: `${p.run}-2-` } } as never);
      await mc.close();
      extra['mongodb_relay'] = {
        insert_replies: p.relay.insertReplies,
        failed_replies: p.relay.failedReplies,
        write_errors: p.relay.writeErrors,
        parse_error: p.relay.error ?? null,
      };
    }
    say(
      `latency at ${o.rate}/s: ${sent.accepted} frames in ${window.toFixed(1)} s; gateway ack → clean p50 ${clean.p50_ms} / p99 ${clean.p99_ms} ms`,
    );
    for (const d of o.dests) {
      const r = destinations[d]!;
      const verdict =
        r.met === null ? '' : ` (p99 < ${TARGET_P99_MS[d]} ms: ${r.met ? 'met' : 'NOT met'})`;
      say(
        `  ${d.padEnd(9)} ${r.arrived}/${acks.size} p50 ${r.p50_ms} ms p99 ${r.p99_ms} ms${verdict}; exporter write ${String(r['exporter_write_mean_ms'])} ms for ${String(r['exporter_frames_per_write'])} frames`,
      );
    }
    return {
      offered_per_s: o.rate,
      achieved_per_s: round(sent.accepted / window, 0),
      frames: sent.accepted,
      failed: sent.failed,
      seconds: round(window, 1),
      camera_streams: o.streams,
      exporter_linger: o.linger,
      complete,
      destinations,
      gateway_ack_to_clean: {
        arrived: clean.arrived,
        p50_ms: clean.p50_ms,
        p99_ms: clean.p99_ms,
      },
      ...extra,
      poll_ms: o.pollMs,
      bench_event_loop_delay_p99_ms: round(loop.percentile(99) / 1e6, 1),
      cpu_pct: cpuPercent(cpuBefore, cpuAfter, window),
    };
  } finally {
    client.close();
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

/** Rounds of the SDK measurement: without/with alternate, so a change of machine load hits both. */
const SDK_ROUNDS = 5;

/**
 * The SDK's own CPU per frame, free of the busy-wait's preemption noise: the same 30 fps pacing
 * without work, once idle and once with one emit() per frame (and the sender's encoding, writes and
 * acks until flushed), alternated `rounds` times; CPU time of this thread, not wall time.
 */
async function sdkCpuPerFrame(
  sdk: DeviceClient,
  makeEvent: () => Event,
  frames: number,
  rounds: number,
): Promise<number> {
  const period = 1000 / 30;
  const paced = async (emit: boolean) => {
    // This thread only: the MongoDB relay's worker forwards the exporter's writes meanwhile.
    const cpu0 = process.threadCpuUsage();
    const start = performance.now();
    for (let i = 0; i < frames; i++) {
      await sleep(Math.max(0, start + i * period - performance.now()));
      if (emit) sdk.emit(makeEvent());
    }
    if (emit) await sdk.flush(10_000);
    else await sleep(Math.max(0, start + frames * period - performance.now()));
    const cpu = process.threadCpuUsage(cpu0);
    return cpu.user + cpu.system;
  };
  let extra = 0;
  for (let r = 0; r < rounds; r++) extra += (await paced(true)) - (await paced(false));
  return extra / (frames * rounds);
}

/** Phase 2: the device SDK's cost to a 30 fps loop of 20 ms frames, sending to the gateway. */
async function sdkPhase(p: Pipeline, o: PipelineOptions): Promise<Record<string, unknown>> {
  const sdk = new DeviceClient({ target: p.target, token: p.token, name: 'bench-sdk' });
  try {
    // Connected before measuring.
    sdk.emit(detectionEvent(eventId(p.run, 4, 0), 0, 4, new Date()));
    await sdk.flush(30_000);
    const frames = Math.max(10, Math.round(o.sdkFrames / SDK_ROUNDS));
    let n = 1;
    const rounds: OverheadResult[] = [];
    for (let r = 0; r < SDK_ROUNDS; r++)
      rounds.push(
        await measureEmitOverhead({
          client: sdk,
          makeEvent: () => detectionEvent(eventId(p.run, 4, n), n++, 4, new Date()),
          frames,
          fps: 30,
          frameMs: 20,
        }),
      );
    const sum = (f: (r: OverheadResult) => number) => rounds.reduce((t, r) => t + f(r), 0);
    const median = (f: (r: OverheadResult) => number) =>
      percentile(
        rounds.map(f).sort((x, y) => x - y),
        50,
      );
    const base = sum((r) => r.baselineFrameMs) / rounds.length;
    const withSdk = sum((r) => r.sdkFrameMs) / rounds.length;
    const pooled = (100 * (withSdk - base)) / base;
    const emitMean = sum((r) => r.emitMeanUs) / rounds.length;
    const emitP99 = median((r) => r.emitP99Us);
    const cpuUs = await sdkCpuPerFrame(
      sdk,
      () => detectionEvent(eventId(p.run, 4, n), n++, 4, new Date()),
      frames,
      3,
    );
    say(
      `sdk: frame ${base.toFixed(2)} → ${withSdk.toFixed(2)} ms (${pooled.toFixed(2)} %; rounds ${rounds.map((r) => r.frameOverheadPct.toFixed(1)).join(' ')} %), emit() mean ${emitMean.toFixed(1)} µs, p99 ${emitP99.toFixed(1)} µs; SDK CPU ${cpuUs.toFixed(0)} µs per frame (${((100 * cpuUs) / 20_000).toFixed(2)} % of a 20 ms frame)`,
    );
    return {
      frames: frames * SDK_ROUNDS,
      rounds: SDK_ROUNDS,
      fps: 30,
      frame_work_ms: 20,
      baseline_frame_ms: round(base, 3),
      sdk_frame_ms: round(withSdk, 3),
      frame_overhead_pct: round(pooled, 2),
      frame_overhead_pct_rounds: rounds.map((r) => round(r.frameOverheadPct, 2)),
      cpu_overhead_pct_median: round(
        median((r) => r.cpuOverheadPct),
        2,
      ),
      emit_mean_us: round(emitMean, 1),
      emit_p99_us_median: round(emitP99, 1),
      emit_mean_pct_of_frame: round((100 * emitMean) / 1000 / 20, 3),
      sdk_cpu_us_per_frame: round(cpuUs, 1),
      sdk_cpu_pct_of_frame: round((100 * cpuUs) / 20_000, 2),
      target_pct: 2,
      met: pooled < 2,
      all_acked: (await sdk.close(10_000)).flushed,
    };
  } finally {
    await sdk.close(1_000);
  }
}

/**
 * Phase 3: closed-loop gateway throughput with the exporter running and without it (SIGSTOP:
 * paused, no CPU), alternated `gwPairs` times, each run starting with dedupe caught up. First a few
 * batches of the closed-loop size go through every destination: the message size jumps from the
 * latency phase's few frames to `batch` frames, which can stall a byte-bounded pull consumer until
 * its heartbeats are missed (~30 s; see docs/BENCHMARKS.md) — waited out here, not measured.
 */
async function gatewayPhase(p: Pipeline, o: PipelineOptions): Promise<Record<string, unknown>> {
  const clean = p.topo.streams.clean.name;
  const exporter = p.children['exporter']!;
  const floors = () =>
    Promise.all(
      o.dests.map(
        async (d) => (await p.jsm.consumers.info(clean, `exporter-l-${d}`)).ack_floor.stream_seq,
      ),
    );
  const dedupeCaughtUp = () =>
    waitFor(
      'dedupe to catch up',
      async () => {
        const i = await p.jsm.consumers.info(p.topo.streams.raw.name, 'dedupe');
        return i.num_pending === 0 && i.num_ack_pending === 0;
      },
      { timeoutMs: 120_000, intervalMs: 100 },
    );
  const pre0 = now();
  {
    const tpl = new BatchTemplate(p.run, 2, o.batch);
    const client = new IngestClient(p.target, p.token);
    for (let k = 0; k < 4; k++) {
      const b = tpl.make(k);
      await client.send(b.batchId, b.bytes);
    }
    client.close();
    await dedupeCaughtUp();
    const last = (await p.jsm.streams.info(clean)).state.last_seq;
    await waitFor(
      'the exporter to take large messages',
      async () => (await floors()).every((f) => f >= last),
      { timeoutMs: 120_000, intervalMs: 100 },
    );
  }
  const preconditionSeconds = (now() - pre0) / 1000;
  say(
    `gateway: ${o.batch}-frame batches reached every destination after ${preconditionSeconds.toFixed(1)} s`,
  );
  const runs: Array<Record<string, unknown>> = [];
  /** Destinations that completed no write during a run with the exporter running. */
  const idle = new Set<string>();
  try {
    for (let pair = 0; pair < o.gwPairs; pair++)
      for (const mode of ['with', 'without'] as const) {
        await dedupeCaughtUp();
        const f0 = await floors();
        if (mode === 'without') exporter.proc.kill('SIGSTOP');
        const r = await closedLoop(
          p.target,
          p.token,
          new BatchTemplate(p.run, 5 + runs.length, o.batch),
          o.batch,
          o.gwSeconds,
          p.children,
        );
        if (mode === 'without') exporter.proc.kill('SIGCONT');
        const f1 = await floors();
        const exported: Record<string, number> = {};
        o.dests.forEach((d, i) => {
          exported[d] = (f1[i]! - f0[i]!) * o.batch;
          if (mode === 'with' && exported[d] === 0) idle.add(d);
        });
        runs.push({
          exporter: mode === 'with' ? 'running' : 'paused',
          ...r,
          exported_frames: exported,
        });
        say(
          `  exporter ${mode === 'with' ? 'running' : 'paused '}: ${r['events_per_s']} frames/s (ack p99 ${r['ack_p99_ms']} ms); exported meanwhile ${o.dests.map((d) => `${d} ${exported[d]}`).join(', ')}`,
        );
      }
  } finally {
    exporter.proc.kill('SIGCONT');
  }
  const mean = (mode: string) => {
    const rs = runs.filter((r) => r['exporter'] === mode).map((r) => Number(r['events_per_s']));
    return rs.reduce((a, b) => a + b, 0) / Math.max(1, rs.length);
  };
  if (idle.size > 0)
    say(
      `  (${[...idle].join(', ')}: no write completed during a run with the exporter running; writes of up to 64 messages × ${o.batch} frames)`,
    );
  return {
    batch_frames: o.batch,
    precondition_seconds: round(preconditionSeconds, 1),
    with_exporter_per_s: round(mean('running'), 0),
    without_exporter_per_s: round(mean('paused'), 0),
    ratio: round(mean('running') / Math.max(1, mean('paused')), 2),
    no_write_completed_during_a_run: [...idle],
    runs,
  };
}

async function pipelinePhases(o: PipelineOptions): Promise<Record<string, unknown>> {
  const run = uniqueId('xl');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-export-'));
  const nc = await connect({ servers: testUrls.nats, name: 'bench-export' });
  const p: Pipeline = {
    run,
    topo: topology(run),
    token: randomBytes(24).toString('hex'),
    target: '',
    nc,
    jsm: await jetstreamManager(nc),
    ctx: {
      run,
      schema: sqlName(run),
      database: sqlName(run),
      mongoUrl: testUrls.mongo,
      exchange: `sluice.bench.${run}`,
      queue: `sluice.bench.${run}.detections`,
      dir: join(dir, 'files'),
      topicRoot: `sluice-bench/${run}`,
    },
    dir,
    arrivals: new Arrivals([...o.dests, 'clean']),
    children: {},
    exporterOps: 0,
    relay: undefined,
  };
  const out: Record<string, unknown> = {};
  try {
    await startPipeline(p, o);
    if (o.phases.has('latency')) out['latency'] = await latencyPhase(p, o);
    else p.relay?.quiet();
    if (o.phases.has('sdk')) out['sdk'] = await sdkPhase(p, o);
    if (o.phases.has('gateway')) out['gateway'] = await gatewayPhase(p, o);
    const dlq = await p.jsm.streams.info(p.topo.streams.dlq.name).catch(() => undefined);
    out['dead_letters'] = dlq?.state.messages ?? 0;
    if (dlq && dlq.state.messages > 0) {
      // What they are: by service and error class, with one message each (a bench should have none).
      const why = new Map<string, { count: number; error: string }>();
      for (let seq = dlq.state.first_seq; seq <= dlq.state.last_seq; seq++) {
        const m = await p.jsm.streams.getMessage(dlq.config.name, { seq }).catch(() => undefined);
        if (!m?.header) continue;
        const key = `${m.header.get(HEADERS.DLQ_SERVICE)} ${m.header.get(HEADERS.DLQ_ERROR_CLASS)}`;
        const e = why.get(key) ?? { count: 0, error: m.header.get(HEADERS.DLQ_ERROR) };
        e.count++;
        why.set(key, e);
      }
      out['dead_letter_reasons'] = Object.fromEntries(why);
    }
    out['service_warnings'] = Object.fromEntries(
      Object.entries(p.children).map(([name, c]) => [name, Object.fromEntries(c.warnings)]),
    );
    return out;
  } finally {
    await Promise.all(Object.values(p.children).map((c) => c.stop(10_000)));
    await p.relay?.stop().catch(() => undefined);
    const s = p.topo.streams;
    for (const stream of [s.raw, s.clean, s.dlq, s.replay])
      await p.jsm.streams.delete(stream.name).catch(() => undefined);
    await nc.drain().catch(() => undefined);
    await cleanStores({
      schemas: [p.ctx.schema],
      databases: [p.ctx.database],
      amqp: [[p.ctx.exchange, p.ctx.queue]],
      redisPrefix: `${run}:`,
    });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function cleanStores(o: {
  schemas: string[];
  databases: string[];
  amqp: Array<[exchange: string, queue: string]>;
  redisPrefix?: string;
}): Promise<void> {
  const pg = new PgClient({ connectionString: testUrls.postgres });
  await pg.connect().catch(() => undefined);
  for (const s of o.schemas)
    await pg.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`).catch(() => undefined);
  await pg.end().catch(() => undefined);
  const mc = await MongoClient.connect(testUrls.mongo).catch(() => undefined);
  for (const d of o.databases)
    await mc
      ?.db(d)
      .dropDatabase()
      .catch(() => undefined);
  await mc?.close().catch(() => undefined);
  const amqp = new AmqpConnection({ url: testUrls.amqp, connectionTimeout: 5_000 });
  amqp.on('error', () => undefined);
  await amqp.onConnect(10_000).catch(() => undefined);
  for (const [exchange, queue] of o.amqp) {
    await amqp.queueDelete({ queue }).catch(() => undefined);
    await amqp.exchangeDelete({ exchange }).catch(() => undefined);
  }
  await amqp.close().catch(() => undefined);
  if (o.redisPrefix) await dropRedisPrefix(o.redisPrefix);
}

// ---------------------------------------------------------------------------------------------
// Phase 4: sustained throughput per destination, against the same client library written straight.

function sinkRecords(events: readonly Event[], batch: number, subject: string): SinkRecord[] {
  return events.map((event, i) => ({
    id: event.kind!.value.eventId,
    event,
    source: {
      stream: 'CEILING',
      seq: 1 + Math.floor(i / batch),
      subject,
      index: i % batch,
      batchId: `ceiling-${Math.floor(i / batch)}`,
      publishedAt: new Date(),
      deliveryCount: 1,
    },
  }));
}

/** Runs `fn` over `items` with at most `window` calls in flight. */
async function windowed<T>(items: readonly T[], window: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(window, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** The value of `fn` and the seconds it took. */
function timed<T>(fn: () => T): [T, number] {
  const t0 = now();
  const v = fn();
  return [v, (now() - t0) / 1000];
}

/**
 * Seconds to write `events` straight to the destination of `dest` (see the header), pre-encoded;
 * `encodeSeconds` is what encoding them took (records, JSON, rows or documents), outside the timing.
 */
async function ceiling(
  dest: Dest,
  events: readonly Event[],
  c: DestinationContext,
  group: number,
): Promise<{ seconds: number; records: number; encodeSeconds: number }> {
  switch (dest) {
    case 'file': {
      const [bufs, encodeSeconds] = timed(() =>
        chunks(
          events.map((e) =>
            Buffer.concat([encodeJsonRecord(toExportRecord(e)), Buffer.from('\n')]),
          ),
          group,
        ).map((g) => Buffer.concat(g)),
      );
      const fh = await open(join(c.dir, 'ceiling.jsonl'), 'w');
      try {
        const t0 = now();
        for (const b of bufs) {
          await fh.write(b);
          await fh.datasync();
        }
        return { seconds: (now() - t0) / 1000, records: events.length, encodeSeconds };
      } finally {
        await fh.close();
      }
    }
    case 'postgres': {
      const sink = new PostgresSink({ url: testUrls.postgres, schema: c.schema });
      await sink.connect(); // the sink's migrations make the same tables and indexes
      await sink.close(Date.now() + 5_000);
      const [params, encodeSeconds] = timed(() =>
        chunks(
          events.map((e) => toExportRecord(e) as DetectionExportRecord),
          group,
        ).map((g) => detectionParams(g)),
      );
      const pg = new PgClient({ connectionString: testUrls.postgres });
      await pg.connect();
      try {
        await pg.query(`SET search_path TO ${c.schema}`);
        const t0 = now();
        for (const p of params) await pg.query(INSERT_DETECTIONS, p);
        return { seconds: (now() - t0) / 1000, records: events.length, encodeSeconds };
      } finally {
        await pg.end();
      }
    }
    case 'mongodb': {
      const records = sinkRecords(events, group, 'ceiling');
      const sink = new MongoSink({
        url: testUrls.mongo,
        database: c.database,
        detectionCollection: 'detections',
        writeConcernW: 1,
        name: 'ceiling',
      });
      await sink.connect();
      await sink.write(records.slice(0, 1)); // the collection and its indexes, as the sink makes them
      await sink.close(Date.now() + 5_000);
      const [docs, encodeSeconds] = timed(() =>
        chunks(
          records.slice(1).map((r) => toDocument(r).doc),
          group,
        ),
      );
      const mc = await MongoClient.connect(testUrls.mongo);
      try {
        const coll = mc.db(c.database).collection('detections');
        const t0 = now();
        for (const d of docs)
          await coll.insertMany(d as never[], {
            ordered: false,
            writeConcern: { w: 1, journal: true },
          });
        return { seconds: (now() - t0) / 1000, records: records.length - 1, encodeSeconds };
      } finally {
        await mc.close();
      }
    }
    case 'mqtt': {
      const client = mqtt.connect(testUrls.mqtt, {
        protocolVersion: 5,
        clientId: `bench-${c.run}-ceiling`,
        clean: true,
        reconnectPeriod: 0,
      });
      client.on('error', () => undefined);
      const connack = await mqttConnected(client);
      const window = Math.max(
        1,
        Math.min(PUBLISH_WINDOW, connack.properties?.receiveMaximum ?? PUBLISH_WINDOW),
      );
      const [msgs, encodeSeconds] = timed(() =>
        events.map((e) => {
          const r = renderRecord(e, 'json');
          const rec = r.record as DetectionExportRecord;
          const opts: IClientPublishOptions = {
            qos: 1,
            retain: false,
            properties: {
              contentType: r.contentType,
              payloadFormatIndicator: true,
              userProperties: {
                [EXPORT_HEADERS.SCHEMA_VERSION]: String(rec.export_schema_version),
                [EXPORT_HEADERS.EVENT_ID]: rec.event_id,
                [EXPORT_HEADERS.KIND]: rec.kind,
              },
            },
          };
          return { topic: `${c.topicRoot}/ceiling/${rec.stream_id}`, body: r.body, opts };
        }),
      );
      try {
        const t0 = now();
        await windowed(msgs, window, (m) => client.publishAsync(m.topic, m.body, m.opts));
        return { seconds: (now() - t0) / 1000, records: events.length, encodeSeconds };
      } finally {
        await client.endAsync(true);
      }
    }
    case 'amqp': {
      const conn = new AmqpConnection({ url: testUrls.amqp, connectionTimeout: 5_000 });
      conn.on('error', () => undefined);
      await conn.onConnect(10_000);
      const exchange = `${c.exchange}.ceiling`;
      const queue = `${c.queue}.ceiling`;
      await conn.exchangeDeclare({ exchange, type: 'topic', durable: true });
      await conn.queueDeclare({ queue, durable: true, arguments: { 'x-queue-type': 'classic' } });
      await conn.queueBind({ queue, exchange, routingKey: 'detection.#' });
      const pub = conn.createPublisher({ confirm: true, maxAttempts: 1 });
      const [msgs, encodeSeconds] = timed(() =>
        events.map((e) => {
          const r = renderRecord(e, 'json');
          const rec = r.record as DetectionExportRecord;
          const keys = [
            ...new Set(
              rec.detections.map((d) => `detection.${rec.region}.${rec.stream_id}.${d.label}`),
            ),
          ];
          const envelope: Envelope = {
            exchange,
            routingKey: keys[0]!,
            mandatory: true,
            durable: true,
            messageId: rec.event_id,
            contentType: r.contentType,
            appId: 'sluice',
            type: rec.kind,
            headers: {
              [EXPORT_HEADERS.SCHEMA_VERSION]: rec.export_schema_version,
              [EXPORT_HEADERS.EVENT_ID]: rec.event_id,
              [EXPORT_HEADERS.KIND]: rec.kind,
              ...(keys.length > 1 ? { CC: keys.slice(1) } : {}),
            },
          };
          return { envelope, body: r.body };
        }),
      );
      try {
        const t0 = now();
        await windowed(msgs, PUBLISH_WINDOW, (m) => pub.send(m.envelope, m.body));
        return { seconds: (now() - t0) / 1000, records: events.length, encodeSeconds };
      } finally {
        await pub.close();
        await conn.queueDelete({ queue }).catch(() => undefined);
        await conn.exchangeDelete({ exchange }).catch(() => undefined);
        await conn.close();
      }
    }
  }
}

async function throughputPhase(o: {
  backlog: number;
  batch: number;
  dests: readonly Dest[];
}): Promise<Record<string, unknown>> {
  const run = uniqueId('xt');
  const topo = topology(run);
  const schema = sqlName(run);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-export-'));
  const ctx: DestinationContext = {
    run,
    schema,
    database: schema,
    mongoUrl: testUrls.mongo,
    exchange: `sluice.bench.${run}`,
    queue: `sluice.bench.${run}.detections`,
    dir: join(dir, 'files'),
    topicRoot: `sluice-bench/${run}`,
  };
  const ceilingCtx: DestinationContext = {
    ...ctx,
    schema: `${schema}_c`,
    database: `${schema}_c`,
    dir,
  };
  const nc: NatsConnection = await connect({
    servers: testUrls.nats,
    name: 'bench-export-throughput',
  });
  const jsm: JetStreamManager = await jetstreamManager(nc);
  const js = jetstream(nc);
  let exporter: Child | undefined;
  try {
    await ensureStream(jsm, topo.streams.clean);
    const events: Event[] = [];
    const frameTime = new Date();
    const pending: Array<Promise<unknown>> = [];
    for (let b = 0; b * o.batch < o.backlog; b++) {
      const batch: Event[] = [];
      for (let n = b * o.batch; n < Math.min(o.backlog, (b + 1) * o.batch); n++)
        batch.push(detectionEvent(eventId(run, 1, n), n, 40, frameTime));
      events.push(...batch);
      const batchId = `${run}-c-${b}`;
      pending.push(
        publishDurable(js, topo.clean(REGION), encodeBatch({ batchId, events: batch }), {
          msgId: batchId,
          contentType: CONTENT_TYPES.EVENT_BATCH,
        }),
      );
      if (pending.length >= 256) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    const last = (await jsm.streams.info(topo.streams.clean.name)).state.last_seq;
    const config = join(dir, 'exporter.json');
    writeDestinations(config, { destinations: [] });
    // Destinations are switched by rewriting the file (the exporter's 100 ms poll reloads it), not by
    // SIGHUP: the exporter installs its SIGHUP handler only after it reports running, and a SIGHUP
    // before that ends the process.
    exporter = Child.start('exporter', exporterEnv(run, config, '100ms'));
    await exporter.waitFor('exporter running');
    say(
      `throughput: ${o.backlog} frames in ${last} clean messages; each destination drains them alone`,
    );
    const out: Record<string, unknown> = {};
    for (const d of o.dests) {
      const name = `t-${d}`;
      const durable = `exporter-${name}`;
      writeDestinations(config, { destinations: [destinationSpec(d, name, ctx)] });
      const info = () =>
        jsm.consumers.info(topo.streams.clean.name, durable).catch(() => undefined);
      const t0 = await waitFor(
        `${durable} delivering`,
        async () => ((await info())?.delivered.stream_seq ?? 0) > 0 && now(),
        {
          timeoutMs: 60_000,
          intervalMs: 5,
        },
      ).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; exporter log:\n${exporter!.tail(30)}`);
      });
      await waitFor(
        `${durable} to drain`,
        async () => ((await info())?.ack_floor.stream_seq ?? 0) >= last,
        {
          timeoutMs: 600_000,
          intervalMs: 20,
        },
      );
      const seconds = (now() - t0) / 1000;
      const ceil = await ceiling(d, events, ceilingCtx, EXPORTER_BATCH_MESSAGES * o.batch);
      const exporterRate = o.backlog / seconds;
      const ceilingRate = ceil.records / ceil.seconds;
      out[d] = {
        exporter_per_s: round(exporterRate, 0),
        ceiling_per_s: round(ceilingRate, 0),
        ceiling_with_encoding_per_s: round(ceil.records / (ceil.seconds + ceil.encodeSeconds), 0),
        pct_of_ceiling: round((100 * exporterRate) / ceilingRate, 0),
        exporter_seconds: round(seconds, 2),
        ceiling_seconds: round(ceil.seconds, 2),
      };
      say(
        `  ${d.padEnd(9)} exporter ${Math.round(exporterRate)}/s, ceiling ${Math.round(ceilingRate)}/s (${Math.round((100 * exporterRate) / ceilingRate)} %)`,
      );
    }
    const dlq = await jsm.streams.info(topo.streams.dlq.name).catch(() => undefined);
    return {
      backlog_frames: o.backlog,
      frames_per_message: o.batch,
      exporter_batch: 'production defaults (64 messages, 4 MiB, linger 20ms)',
      destinations: out,
      dead_letters: dlq?.state.messages ?? 0,
    };
  } finally {
    await exporter?.stop(15_000);
    for (const s of [topo.streams.clean, topo.streams.dlq, topo.streams.replay])
      await jsm.streams.delete(s.name).catch(() => undefined);
    await nc.drain().catch(() => undefined);
    await cleanStores({
      schemas: [schema, ceilingCtx.schema],
      databases: [ctx.database, ceilingCtx.database],
      amqp: [[ctx.exchange, ctx.queue]],
    });
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

function numberFlag(flags: Record<string, string>, name: string, fallback: number): number {
  const v = flags[name] === undefined ? fallback : Number(flags[name]);
  if (!(v > 0)) throw new Error(`--${name} must be a positive number, got "${flags[name]}"`);
  return v;
}

const bench: Bench = async ({ seconds, rate, flags }) => {
  const phases = new Set((flags['only'] ?? PHASES.join(',')).split(',').map((s) => s.trim()));
  for (const p of phases)
    if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--only: unknown phase "${p}"`);
  const dests = (flags['dests'] ?? DESTINATIONS.join(',')).split(',').map((s) => s.trim());
  for (const d of dests)
    if (!(DESTINATIONS as readonly string[]).includes(d))
      throw new Error(`--dests: unknown destination "${d}"`);
  const destinations = DESTINATIONS.filter((d) => dests.includes(d));
  const batch = Math.round(numberFlag(flags, 'batch', 100));
  const started = now();
  const result: BenchResult = {
    name: 'export',
    load_average_at_start: round(loadavg()[0]!, 2),
  };
  const pipeline: PipelineOptions = {
    rate: rate ?? 1_000,
    seconds,
    linger: flags['linger'] ?? '0ms',
    pollMs: numberFlag(flags, 'poll-ms', 5),
    streams: Math.round(numberFlag(flags, 'streams', 40)),
    batch,
    gwSeconds: numberFlag(flags, 'gw-seconds', 5),
    gwPairs: Math.min(2, Math.round(numberFlag(flags, 'gw-pairs', 2))),
    sdkFrames: Math.round(numberFlag(flags, 'sdk-frames', 300)),
    phases,
    dests: destinations,
  };
  if (phases.has('latency') || phases.has('sdk') || phases.has('gateway')) {
    const p = await pipelinePhases(pipeline);
    const latency = p['latency'] as
      | { achieved_per_s: number; destinations: Record<Dest, { p50_ms: number; p99_ms: number }> }
      | undefined;
    if (latency) {
      result.events_per_s = latency.achieved_per_s;
      // The slowest destination's percentiles; every destination's are in `latency`.
      result.p50_ms = Math.max(...destinations.map((d) => latency.destinations[d].p50_ms));
      result.p99_ms = Math.max(...destinations.map((d) => latency.destinations[d].p99_ms));
    }
    Object.assign(result, p);
  }
  if (phases.has('latency-each')) {
    // The same latency phase with one destination at a time, each in a pipeline of its own: what a
    // team that runs one exporter per destination sees, without the other four servers' CPU.
    const each: Record<string, unknown> = {};
    for (const d of destinations) {
      say(`latency of ${d} alone:`);
      const p = await pipelinePhases({ ...pipeline, phases: new Set(['latency']), dests: [d] });
      const l = p['latency'] as {
        destinations: Record<Dest, object>;
        gateway_ack_to_clean: object;
        cpu_pct: object;
      };
      each[d] = {
        ...l.destinations[d],
        gateway_ack_to_clean: l.gateway_ack_to_clean,
        cpu_pct: l.cpu_pct,
      };
    }
    result['latency_each'] = each;
  }
  if (phases.has('throughput'))
    result['throughput'] = await throughputPhase({
      backlog: Math.round(numberFlag(flags, 'backlog', 20_000)),
      batch,
      dests: destinations,
    });
  result['total_seconds'] = round((now() - started) / 1000, 1);
  return result;
};

export default bench;

// `npm run bench -- pipeline [--seconds 60] [--rate 50000] [--burst-rate 200000] [--burst-seconds 60]`
//
// The whole pipeline under load: gateway → dedupe → aggregator with mongo-capture, the archiver
// (filesystem), the exporter (a file destination) and the webhook dispatcher (one threshold
// subscription) consuming the same clean stream, every service as built for production, on the
// local servers, in a namespace of its own. Every event carries a fresh event id and a current event
// time (patched into pre-encoded batches), so dedupe and the aggregator do their real work.
//
// Phases:
//   1. baseline: the gateway alone (no consumer running), closed loop, 5 s: what the edge takes;
//   2. sustained: `--rate` events/s for `--seconds`; a probe device sends one reading every 200 ms
//      over HTTP and polls the query API's latest value: freshness = device send → visible;
//   3. catch-up: until every consumer has been delivered everything (num_pending 0), bounded;
//   4. burst: `--burst-rate` for `--burst-seconds` (JetStream buffers what the consumers cannot take),
//      then the catch-up time per consumer;
//   5. accounting: roll-up counts (finest resolution) against the telemetry events accepted, the
//      clean stream's events against the accepted ones, the DLQ.
// CPU (user + system) and peak RSS per service. MongoDB capture on the local MongoDB-wire server
// (FerretDB) is far slower than the rest: its lag and rate are reported, not waited for.
import { createHash, randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { topology, type Event } from '@sluice/contracts';
// eslint-disable-next-line @nx/enforce-module-boundaries -- the bench drives the fleet simulator's load core
import {
  Fleet,
  GrpcStreamSender,
  RunStats,
  encodeRequest,
  generateLoad,
  type OutBatch,
  type TemplatePool,
} from '../../../fleet-sim/src/index';
import { createTestDatabase, freePort, testUrls, uniqueId } from '@sluice/testing';
import { Client } from 'pg';
import { startBuiltApp } from '../built-app';
import { cpuSnapshot } from '../cpu';
import { dropRedisPrefix } from '../redis-keys';
import { percentile, round, type Bench, type BenchFlags } from '../result';

const DEVICE_TOKEN = 'bench-pipeline-token';
const QUERY_TOKEN = 'bench-pipeline-query';
const REGION = 'eu-west';
const ID_LENGTH = 24;
/** Event-time seconds written into the templates, replaced by the current second per send. */
const SENTINEL_SECONDS = 2 ** 34 + 0x2468ac;
const CONSUMERS = ['dedupe', 'aggregator', 'mongo-capture', 'archiver', 'exporter', 'webhook'];

/** The default run; `--seconds 600` is the 10-minute run of docs/BENCHMARKS.md. */
export const defaultSeconds = 60;

export const flags: BenchFlags = {
  'burst-rate': 'events/s of the burst phase (default 200000)',
  'burst-seconds': 'length of the burst phase, s (default 60; 0 skips it)',
  'catch-up-timeout': 'longest wait for the consumers to catch up after a phase, s (default 300)',
  devices: 'simulated devices (default 200)',
};

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Protobuf varint bytes of `n` (n < 2^35 here: 5 bytes). */
function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

interface Template {
  bytes: Buffer;
  batchIdAt: number;
  idAt: number[];
  timeAt: number[];
  events: number;
  telemetry: number;
}

/**
 * Encoded batches of a simulated fleet in which every event id and event-time second is patched per
 * send: each event gets a fresh id and the current second (its sub-second part kept).
 */
class FreshPool {
  private readonly templates: Template[] = [];
  private readonly prefix = `P${randomBytes(3).toString('hex')}`;
  private counter = 0;
  private next_ = 0;

  constructor(devices: number, batchSize: number, count: number) {
    const fleet = new Fleet({
      devices,
      sensorsPerDevice: 6,
      minHz: 1,
      maxHz: 100,
      // Telemetry only: every accepted event must show up in the roll-ups' counts.
      cameraFraction: 0,
      batchSize,
      regions: [REGION],
      flushMs: 1e12,
    });
    const sentinel = varint(SENTINEL_SECONDS);
    const placeholder = (i: number) => `Q${i.toString(36).padStart(ID_LENGTH - 1, '0')}`;
    const start = Date.now();
    for (let t = start, guard = 0; this.templates.length < count && guard < 100_000; guard++) {
      t += 50;
      for (const b of fleet.tick(t)) {
        if (this.templates.length >= count) break;
        let telemetry = 0;
        const events: Event[] = b.batch.events.map((e, i) => {
          const at = (x: Date | undefined) =>
            new Date(SENTINEL_SECONDS * 1000 + ((x?.getTime() ?? 0) % 1000));
          const k = e.kind!;
          if (k.$case === 'telemetry') {
            telemetry++;
            return {
              kind: {
                $case: 'telemetry',
                value: { ...k.value, eventId: placeholder(i), eventTime: at(k.value.eventTime) },
              },
            };
          }
          return {
            kind: {
              $case: 'detection',
              value: { ...k.value, eventId: placeholder(i), frameTime: at(k.value.frameTime) },
            },
          };
        });
        const bytes = encodeRequest({ batchId: 'B'.repeat(ID_LENGTH), events });
        const idAt = events.map((_, i) => bytes.indexOf(placeholder(i), 0, 'latin1'));
        const timeAt: number[] = [];
        for (let at = bytes.indexOf(sentinel); at >= 0; at = bytes.indexOf(sentinel, at + 1))
          if (bytes[at - 1] === 0x08) timeAt.push(at);
        if (idAt.some((x) => x < 0) || timeAt.length !== events.length)
          throw new Error('could not locate the event ids or times in an encoded batch');
        this.templates.push({
          bytes,
          batchIdAt: bytes.indexOf('B'.repeat(ID_LENGTH), 0, 'latin1'),
          idAt,
          timeAt,
          events: events.length,
          telemetry,
        });
      }
    }
    if (this.templates.length < count) throw new Error('the fleet produced too few batches');
  }

  /** Events per batch, averaged over the templates. */
  get batchEvents(): number {
    return this.templates.reduce((a, t) => a + t.events, 0) / this.templates.length;
  }

  /** What generateLoad reads of a pool: the events of a batch (for the offered rate). */
  get templateBatches(): ReadonlyArray<{ events: number }> {
    return [{ events: this.batchEvents }];
  }

  private id(): string {
    return `${this.prefix}${(this.counter++).toString(36).padStart(ID_LENGTH - this.prefix.length, '0')}`;
  }

  /** The next template with a fresh batch id, fresh event ids and the current second. */
  next(): OutBatch & { telemetry: number } {
    const t = this.templates[this.next_++ % this.templates.length]!;
    const bytes = Buffer.allocUnsafe(t.bytes.length);
    t.bytes.copy(bytes);
    const batchId = this.id();
    bytes.write(batchId, t.batchIdAt, 'latin1');
    for (const at of t.idAt) bytes.write(this.id(), at, 'latin1');
    const now = varint(Math.floor(Date.now() / 1000));
    for (const at of t.timeAt) now.copy(bytes, at);
    return { batchId, events: t.events, bytes, telemetry: t.telemetry };
  }
}

interface Proc {
  name: string;
  proc: ChildProcess;
  opsPort: number;
  lines: string[];
  peakRssMb: number;
  /** Set when the process exited while the bench ran: a result without it would hide a dead stage. */
  exited?: { code: number | null; signal: string | null; atS: number };
}

function startProc(app: string, name: string, env: Record<string, string>, opsPort: number): Proc {
  const proc = startBuiltApp(app, { ...env, OPS_PORT: String(opsPort) });
  const p: Proc = { name, proc, opsPort, lines: [], peakRssMb: 0 };
  const started = Date.now();
  proc.once('exit', (code, signal) => {
    p.exited = { code, signal, atS: Math.round((Date.now() - started) / 1000) };
  });
  const onData = (b: Buffer) => {
    for (const l of b.toString('utf8').split('\n'))
      if (l && /"level":(40|50|60)/.test(l) && p.lines.length < 200) p.lines.push(l.slice(0, 400));
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  return p;
}

async function waitReady(p: Proc, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (p.proc.exitCode !== null) throw new Error(`${p.name} exited: ${p.lines.join('\n')}`);
    const ok = await fetch(`http://127.0.0.1:${p.opsPort}/readyz`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${p.name} not ready within ${timeoutMs} ms: ${p.lines.join('\n')}`);
}

function procStat(pid: number | undefined): { cpuS: number; rssMb: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { cpuS: (Number(f[11]) + Number(f[12])) / 100, rssMb: Number(rss?.[1] ?? 0) / 1024 };
  } catch {
    return undefined;
  }
}

/**
 * Backlog of each consumer of the pipeline: messages not yet delivered to it (num_pending). Delivered
 * and unacked messages are not counted: the archiver acks only when its file is written.
 */
async function backlogs(
  jsm: JetStreamManager,
  t: ReturnType<typeof topology>,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const read = async (stream: string, durable: string) => {
    const i = await jsm.consumers.info(stream, durable).catch(() => undefined);
    return i ? i.num_pending : Number.NaN;
  };
  out['dedupe'] = await read(t.streams.raw.name, 'dedupe');
  for (const [name, durable] of [
    ['aggregator', 'aggregator'],
    ['mongo-capture', 'mongo-capture'],
    ['archiver', 'archiver'],
    ['exporter', 'exporter-bench-files'],
    ['webhook', 'webhook-dispatcher-clean'],
  ] as const)
    out[name] = await read(t.streams.clean.name, durable);
  return out;
}

/** A probe device: one reading every 200 ms over HTTP; the query API's latest value shows it. */
function startProbe(httpPort: number, apiPort: number, device: string) {
  const sent = new Map<number, number>();
  const freshness: number[] = [];
  let seq = 0;
  let seen = 0;
  let stopped = false;
  const send = async () => {
    const k = ++seq;
    const at = Date.now();
    sent.set(k, at);
    const event = {
      event_id: `${device}-${k}`,
      device_id: device,
      event_time: new Date(at).toISOString(),
      sensor_type: 'probe',
      value: k,
      unit: '1',
      firmware_version: '1.0.0',
      region: REGION,
    };
    await fetch(`http://127.0.0.1:${httpPort}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${DEVICE_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(event),
    }).catch(() => undefined);
  };
  const poll = async () => {
    const r = await fetch(`http://127.0.0.1:${apiPort}/v1/devices/${device}/latest`, {
      headers: { authorization: `Bearer ${QUERY_TOKEN}` },
    }).catch(() => undefined);
    if (!r?.ok) return;
    const body = (await r.json()) as { sensors: Array<{ sensor: string; value: number }> };
    const v = body.sensors.find((s) => s.sensor === 'probe')?.value ?? 0;
    const now = Date.now();
    for (let k = seen + 1; k <= v; k++) {
      const at = sent.get(k);
      if (at !== undefined) freshness.push(now - at);
      sent.delete(k);
    }
    seen = Math.max(seen, v);
  };
  const sender = setInterval(() => void send(), 200);
  const loop = (async () => {
    while (!stopped) {
      await poll();
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    /** Freshness samples (ms) so far, and clears them. */
    take(): number[] {
      return freshness.splice(0);
    },
    /** Readings sent and not seen yet. */
    get unseen(): number {
      return sent.size;
    },
    async stop() {
      clearInterval(sender);
      stopped = true;
      await loop;
    },
  };
}

const bench: Bench = async (opts) => {
  const rate = opts.rate ?? 50_000;
  const burstRate = Number(opts.flags['burst-rate'] ?? 200_000);
  const burstSeconds = Number(opts.flags['burst-seconds'] ?? 60);
  const catchUpTimeout = Number(opts.flags['catch-up-timeout'] ?? 300) * 1000;
  const devices = Number(opts.flags['devices'] ?? 200);
  const ns = uniqueId('pipe').replace(/-/g, '');
  const t = topology(ns);
  const db = await createTestDatabase('bench_pipeline');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-pipeline-'));
  const mongoDb = `bench_${ns}`;
  const probeDevice = `probe-${ns}`;
  const hookCount = { n: 0 };
  const { createServer } = await import('node:http');
  const receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hookCount.n++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const receiverPort = (receiver.address() as { port: number }).port;
  writeFileSync(
    join(dir, 'exporter.yaml'),
    `destinations:\n  - name: bench-files\n    type: file\n    options:\n      dir: ${join(dir, 'export')}\n`,
  );
  const [grpcPort, httpPort, apiPort, adminPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const common: Record<string, string> = {
    NATS_URL: testUrls.nats,
    REDIS_URL: testUrls.redis,
    PG_URL: db.url,
    MONGO_URL: testUrls.mongo,
    SLUICE_NAMESPACE: ns,
    // The claims of this run only, unlinked afterwards (36 M events' claims are gigabytes).
    DEDUPE_KEY_PREFIX: `${ns}:`,
    OPS_HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    OTEL_SDK_DISABLED: 'true',
  };
  const procs: Proc[] = [];
  const start = async (app: string, env: Record<string, string>, name = app) => {
    const p = startProc(app, name, { ...common, ...env }, await freePort());
    procs.push(p);
    return p;
  };
  const nc = await connect({ servers: testUrls.nats, name: 'bench-pipeline' });
  const jsm = await jetstreamManager(nc);
  const pool = new FreshPool(devices, 500, 64);
  const trackedPool = pool as unknown as TemplatePool;
  const stats = new RunStats();
  let sender: GrpcStreamSender | undefined;
  const sample = () =>
    Object.fromEntries(procs.map((p) => [p.name, procStat(p.proc.pid)] as const));
  const cpuBetween = (
    a: ReturnType<typeof sample>,
    b: ReturnType<typeof sample>,
    seconds: number,
  ): Record<string, number> =>
    Object.fromEntries(
      procs.map((p) => [
        p.name,
        round(((b[p.name]?.cpuS ?? 0) - (a[p.name]?.cpuS ?? 0)) / seconds, 2),
      ]),
    );
  const rssTimer = setInterval(() => {
    for (const p of procs) {
      const s = procStat(p.proc.pid);
      if (s) p.peakRssMb = Math.max(p.peakRssMb, s.rssMb);
    }
  }, 1000);
  const waitCaughtUp = async (label: string, exclude: string[] = ['mongo-capture']) => {
    const started = Date.now();
    const perConsumer: Record<string, number | null> = {};
    while (Date.now() - started < catchUpTimeout) {
      const b = await backlogs(jsm, t);
      for (const [k, v] of Object.entries(b))
        if (v === 0 && perConsumer[k] === undefined) perConsumer[k] = (Date.now() - started) / 1000;
      process.stderr.write(`[${label}] backlog ${JSON.stringify(b)}\n`);
      if (Object.entries(b).every(([k, v]) => exclude.includes(k) || v === 0)) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    for (const k of CONSUMERS) perConsumer[k] ??= null;
    return perConsumer;
  };
  try {
    // 1. The gateway alone.
    const gateway = await start('ingestion', {
      INGEST_GRPC_PORT: String(grpcPort),
      INGEST_HTTP_PORT: String(httpPort),
      INGEST_HOST: '127.0.0.1',
      INGEST_REGIONS: REGION,
      INGEST_AUTH_TOKENS: `${sha256(DEVICE_TOKEN)}=*`,
      INGEST_STREAM_MAX_AGE: '1h',
    });
    await waitReady(gateway, 90_000);
    sender = new GrpcStreamSender(`127.0.0.1:${grpcPort}`, 4, stats, {
      token: DEVICE_TOKEN,
      maxInFlight: 16,
    });
    const baseSeconds = Math.min(5, opts.seconds);
    const baseElapsed = await generateLoad({
      sender,
      pool: trackedPool,
      stats,
      seconds: baseSeconds,
    });
    const baselineRate = stats.eventsAccepted / baseElapsed;
    process.stderr.write(`[baseline] gateway alone: ${round(baselineRate, 0)} events/s\n`);
    await jsm.streams.purge(t.streams.raw.name);
    Object.assign(stats, new RunStats());

    // 2. Every consumer.
    await Promise.all([
      start('dedupe', {}),
      start('aggregator', {
        AGGREGATOR_API_HOST: '127.0.0.1',
        AGGREGATOR_API_PORT: String(apiPort),
        AGGREGATOR_API_TOKENS: `${sha256(QUERY_TOKEN)}=*`,
      }),
      start('mongo-capture', { MONGO_DATABASE: mongoDb }),
      start('archiver', { ARCHIVER_STORE: 'fs', ARCHIVER_DIR: join(dir, 'archive') }),
      start('exporter', { EXPORTER_CONFIG: join(dir, 'exporter.yaml') }),
      start('webhook-dispatcher', {
        WEBHOOK_ADMIN_HOST: '127.0.0.1',
        WEBHOOK_ADMIN_PORT: String(adminPort),
        WEBHOOK_ADMIN_TOKEN: QUERY_TOKEN,
        WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
      }),
    ]);
    for (const p of procs) await waitReady(p, 120_000);
    const sub = await fetch(`http://127.0.0.1:${adminPort}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${QUERY_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        url: `http://127.0.0.1:${receiverPort}/hook`,
        filter: { type: 'telemetry', sensorTypes: ['probe'], value: { gt: 1e12 } },
      }),
    });
    const subscription = sub.ok
      ? 'threshold on probe > 1e12 (never fires)'
      : `refused: ${sub.status} ${await sub.text()}`;
    const probe = startProbe(httpPort, apiPort, probeDevice);

    // Sustained.
    const cpu0 = sample();
    const servers0 = cpuSnapshot({
      service: process.pid,
      servers: ['nats-server', 'redis-server', 'postgres', 'ferretdb'],
    });
    let prev = 0;
    const perSecond: number[] = [];
    const sustained = await generateLoad({
      sender,
      pool: trackedPool,
      stats,
      seconds: opts.seconds,
      rate,
      onSecond: (s) => {
        perSecond.push(stats.eventsAccepted - prev);
        process.stderr.write(
          `[sustained] t=${s}s accepted/s=${stats.eventsAccepted - prev} retries=${stats.retries} skipped=${stats.skipped}\n`,
        );
        prev = stats.eventsAccepted;
      },
    });
    const cpu1 = sample();
    const servers1 = cpuSnapshot({
      service: process.pid,
      servers: ['nats-server', 'redis-server', 'postgres', 'ferretdb'],
    });
    const sustainedAccepted = stats.eventsAccepted;
    const sustainedBacklog = await backlogs(jsm, t);
    const catchUp = await waitCaughtUp('catch-up');
    await new Promise((r) => setTimeout(r, 1500));
    const fresh = probe.take().sort((a, b) => a - b);
    const mongoRate0 = await mongoCount(mongoDb);

    // 4. Burst.
    let burst: Record<string, unknown> | undefined;
    if (burstSeconds > 0) {
      const before = stats.eventsAccepted;
      const retries0 = stats.retries;
      const skipped0 = stats.skipped;
      const b0 = sample();
      const elapsed = await generateLoad({
        sender,
        pool: trackedPool,
        stats,
        seconds: burstSeconds,
        rate: burstRate,
        onSecond: (s) => {
          if (s % 5 === 0)
            process.stderr.write(`[burst] t=${s}s accepted=${stats.eventsAccepted - before}\n`);
        },
      });
      const b1 = sample();
      const peakBacklog = await backlogs(jsm, t);
      const burstCatchUp = await waitCaughtUp('burst catch-up');
      const burstFresh = probe.take().sort((a, b) => a - b);
      burst = {
        offered_events_per_s: burstRate,
        accepted_events_per_s: round((stats.eventsAccepted - before) / elapsed, 0),
        seconds: round(elapsed, 1),
        gateway_retries: stats.retries - retries0,
        generator_skipped_batches: stats.skipped - skipped0,
        backlog_at_end: peakBacklog,
        catch_up_s: burstCatchUp,
        freshness_p50_ms: percentile(burstFresh, 50),
        freshness_p99_ms: percentile(burstFresh, 99),
        freshness_max_ms: burstFresh.at(-1) ?? 0,
        cpu_cores: cpuBetween(b0, b1, elapsed),
      };
    }
    await probe.stop();
    sender.close();
    sender = undefined;

    // 5. Accounting.
    const pg = new Client({ connectionString: db.url });
    await pg.connect();
    const rows = await pg
      .query<{ resolution: string; n: string }>(
        `SELECT resolution, sum(count)::text AS n FROM rollups WHERE scope = 1 AND sensor <> 'probe' GROUP BY resolution`,
      )
      .finally(() => pg.end());
    const rollupCounts = Object.fromEntries(rows.rows.map((r) => [r.resolution, Number(r.n)]));
    const cleanInfo = await jsm.streams.info(t.streams.clean.name);
    const dlq = await jsm.streams.info(t.streams.dlq.name).catch(() => undefined);
    const mongoDocs = await mongoCount(mongoDb);
    const seconds = opts.seconds;
    return {
      name: 'pipeline',
      events_per_s: round(sustainedAccepted / sustained, 0),
      offered_events_per_s: rate,
      baseline_events_per_s: round(baselineRate, 0),
      baseline: 'the gateway alone (no consumer running), closed loop, same generator, 5 s',
      p50_ms: percentile(fresh, 50),
      p99_ms: percentile(fresh, 99),
      freshness: {
        what: 'probe device HTTP send → its value visible in the query API (/v1/devices/{id}/latest), 200 ms probes, 50 ms polls',
        samples: fresh.length,
        p50_ms: percentile(fresh, 50),
        p99_ms: percentile(fresh, 99),
        max_ms: fresh.at(-1) ?? 0,
      },
      sustained: {
        seconds: round(sustained, 1),
        accepted_events_per_s_min: Math.min(...perSecond),
        gateway_ack_p99_ms: round(stats.latency.percentile(99), 1),
        gateway_retries: stats.retries,
        generator_skipped_batches: stats.skipped,
        backlog_at_end: sustainedBacklog,
        catch_up_s: catchUp,
        cpu_cores: cpuBetween(cpu0, cpu1, sustained),
        server_cpu_cores: Object.fromEntries(
          Object.keys(servers1)
            .filter((k) => k !== 'service')
            .map((k) => [k, round((servers1[k]! - (servers0[k] ?? 0)) / sustained, 2)]),
        ),
      },
      burst,
      mongo_capture: {
        documents: mongoDocs,
        documents_after_sustained: mongoRate0,
        backlog: (await backlogs(jsm, t))['mongo-capture'],
        note: 'FerretDB (the local MongoDB-wire server) is the ceiling; not waited for',
      },
      accounting: {
        events_accepted: stats.eventsAccepted,
        batches_failed_after_retries: stats.failures,
        clean_stream_messages: cleanInfo.state.messages,
        rollup_event_counts_by_resolution: rollupCounts,
        dlq_messages: dlq?.state.messages ?? 0,
        webhook_deliveries: hookCount.n,
        webhook_subscription: subscription,
      },
      peak_rss_mb: Object.fromEntries(procs.map((p) => [p.name, round(p.peakRssMb, 0)])),
      warnings: Object.fromEntries(procs.map((p) => [p.name, p.lines.length])),
      // A service that died mid-run (its last warnings and errors with it): its stage stopped.
      service_exits: Object.fromEntries(
        procs
          .filter((p) => p.exited)
          .map((p) => [p.name, { ...p.exited, last_lines: p.lines.slice(-3) }]),
      ),
      devices,
      batch_events: round(pool.batchEvents, 0),
      seconds,
    };
  } finally {
    clearInterval(rssTimer);
    sender?.close();
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.proc.exitCode !== null) return resolve();
            const k = setTimeout(() => p.proc.kill('SIGKILL'), 15_000);
            p.proc.once('exit', () => {
              clearTimeout(k);
              resolve();
            });
            p.proc.kill('SIGTERM');
          }),
      ),
    );
    for (const p of procs)
      if (p.lines.length) process.stderr.write(`[${p.name}] ${p.lines.slice(0, 5).join('\n')}\n`);
    receiver.close();
    for (const s of Object.values(t.streams))
      await jsm.streams.delete(s.name).catch(() => undefined);
    for (const s of await jsm.streams
      .names()
      .next()
      .catch(() => [] as string[]))
      if (s.startsWith(`${ns.toUpperCase()}_`) || s.startsWith(`KV_${ns}_`))
        await jsm.streams.delete(s).catch(() => undefined);
    await nc.drain();
    await db.drop().catch(() => undefined);
    await dropMongo(mongoDb);
    await dropRedisPrefix(`${ns}:`);
    rmSync(dir, { recursive: true, force: true });
  }
};

async function mongoCount(dbName: string): Promise<number> {
  const { MongoClient } = await import('mongodb');
  const c = new MongoClient(testUrls.mongo, { serverSelectionTimeoutMS: 5_000 });
  try {
    await c.connect();
    const db = c.db(dbName);
    let n = 0;
    for (const coll of await db.listCollections().toArray())
      n += await db.collection(coll.name).estimatedDocumentCount();
    return n;
  } catch {
    return Number.NaN;
  } finally {
    await c.close();
  }
}

async function dropMongo(dbName: string): Promise<void> {
  const { MongoClient } = await import('mongodb');
  const c = new MongoClient(testUrls.mongo, { serverSelectionTimeoutMS: 5_000 });
  try {
    await c.connect();
    await c.db(dbName).dropDatabase();
  } catch {
    // best effort
  } finally {
    await c.close();
  }
}

export default bench;

// Adaptive sampling under overload (docs/DECISIONS.md #36): device-SDK clients (libs/device-sdk, the
// real client) offer more readings than the gateway and JetStream store, with a tier mix of a few %
// safety, some diagnostic and mostly bulk, against a gateway child process (built as for production)
// on the local NATS. Two phases in the same run, each a fresh gateway and fresh clients, the same
// offered load:
//   baseline   the gateway without INGEST_SENSOR_TIERS: no advice on its acks, nothing sampled or
//              shed (the feature's own off switch); the SDK's priority buffer is all that sheds load
//   sampling   the gateway with tiers: under sustained pressure its acks advise thinning bulk (then
//              diagnostic), the SDK honours the advice, the gateway sheds bulk of batches that find
//              its budget full; safety readings are never sampled or shed
// The offered rate is --rate, or --overload (default 2) × the rate a closed-loop calibration against
// the baseline gateway has stored (measured first, in the same run). Each phase warms up (--warmup
// seconds: the advice descends its ladder one step per INGEST_OVERLOAD_SUSTAIN), then measures for
// --seconds, then stops offering and flushes every client, so safety readings offered can be
// compared with those the gateway acknowledged as stored.
//   npm run bench -- sampling --seconds 10
//   npm run bench -- sampling --seconds 10 --rate 60000 --devices 16 --budget 1048576
// Readings go out at SDK priority safety / normal / bulk for the safety / diagnostic / bulk tier, so
// the SDK's per-priority counters are per tier.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { topology, type Event } from '@sluice/contracts';
import { DEVICE_SDK_METRICS, DeviceClient, type Priority } from '@sluice/device-sdk';
import { testUrls, uniqueId } from '@sluice/testing';
import { Registry, type Histogram } from 'prom-client';
import { startBuiltApp } from '../built-app';
import { cpuSnapshot, type CpuSnapshot } from '../cpu';
import { round, type Bench, type BenchFlags, type BenchResult } from '../result';

const TOKEN = 'bench-token';
const TIERS = ['safety', 'diagnostic', 'bulk'] as const;
type Tier = (typeof TIERS)[number];
const TIER_RULES = 'safety=engine_temp|bilge_level;diagnostic=engine_*;bulk=*';
const SENSORS: Readonly<Record<Tier, readonly string[]>> = {
  safety: ['engine_temp', 'bilge_level'],
  diagnostic: ['engine_rpm', 'engine_oil_pressure'],
  bulk: ['vibration_x', 'vibration_y', 'vibration_z', 'accel_x', 'accel_y', 'accel_z'],
};
/** The SDK priority each tier's readings are emitted at (its counters are per priority). */
const PRIORITY: Readonly<Record<Tier, Priority>> = {
  safety: 'safety',
  diagnostic: 'normal',
  bulk: 'bulk',
};
const TICK_MS = 5;

/** Extra flags of this bench (any other is refused). */
export const flags: BenchFlags = {
  devices: 'device-SDK clients, one gRPC stream each (default 8)',
  'safety-pct': 'share of readings in the safety tier, % (default 2)',
  'diagnostic-pct': 'share of readings in the diagnostic tier, % (default 10; the rest is bulk)',
  overload:
    'offered rate as a multiple of the calibrated sustainable rate, without --rate (default 2)',
  calibrate: 'seconds of the closed-loop calibration, without --rate (default 5)',
  warmup: 'seconds of load before each phase measures (default 6)',
  budget: 'the gateway INGEST_MAX_IN_FLIGHT_BYTES (default 262144; the gateway default is 64 MiB)',
  sustain: 'the gateway INGEST_OVERLOAD_SUSTAIN (default 1s; the gateway default is 2s)',
  'publish-latency': 'the gateway INGEST_OVERLOAD_PUBLISH_LATENCY (default 500ms)',
  'in-flight': 'SDK maxInFlightBatches per client (default 4)',
  batch: 'SDK maxBatchEvents (default 500)',
};

interface Options {
  devices: number;
  safetyPct: number;
  diagnosticPct: number;
  budget: number;
  sustain: string;
  publishLatency: string;
  inFlight: number;
  batch: number;
}

const roundOrUndefined = (n: number | undefined) => (n === undefined ? undefined : round(n, 2));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const perTier = <T>(f: (t: Tier) => T): Record<Tier, T> =>
  ({ safety: f('safety'), diagnostic: f('diagnostic'), bulk: f('bulk') }) as Record<Tier, T>;

/** The value of metric `name` on the line carrying `label` (e.g. `tier="bulk"`); 0 when absent. */
function metric(text: string, name: string, label = ''): number {
  let sum = 0;
  for (const l of text.split('\n'))
    if ((l.startsWith(`${name} `) || l.startsWith(`${name}{`)) && l.includes(label))
      sum += Number(l.slice(l.lastIndexOf(' ') + 1));
  return sum;
}

/** Percentile of a cumulative Prometheus histogram, interpolated inside its bucket (ms). */
function histogramPercentile(buckets: Array<[number, number]>, p: number): number | undefined {
  const total = buckets[buckets.length - 1]?.[1] ?? 0;
  if (total === 0) return undefined;
  const rank = (p / 100) * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return prevLe * 1000;
      const inBucket = count - prevCount;
      const f = inBucket > 0 ? (rank - prevCount) / inBucket : 1;
      return (prevLe + (le - prevLe) * f) * 1000;
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe * 1000;
}

/** The SDK's batch-ack histogram of all clients on `registry`, as cumulative [le, count] pairs. */
async function ackBuckets(registry: Registry): Promise<Array<[number, number]>> {
  const h = registry.getSingleMetric(DEVICE_SDK_METRICS.batchAckDuration) as Histogram | undefined;
  if (!h) return [];
  const byLe = new Map<number, number>();
  for (const v of (await h.get()).values)
    if (v.metricName?.endsWith('_bucket')) {
      const le = v.labels['le'] === '+Inf' ? Infinity : Number(v.labels['le']);
      byLe.set(le, (byLe.get(le) ?? 0) + v.value);
    }
  return [...byLe.entries()].sort((a, b) => a[0] - b[0]);
}

function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** A gateway child process: sampling on (tiers) or off (no INGEST_SENSOR_TIERS). */
async function startGateway(ns: string, sampling: boolean, o: Options) {
  const proc = startBuiltApp('ingestion', {
    NATS_URL: testUrls.nats,
    SLUICE_NAMESPACE: ns,
    INGEST_GRPC_PORT: '0',
    INGEST_HTTP_PORT: '0',
    OPS_PORT: '0',
    OPS_HOST: '127.0.0.1',
    INGEST_HOST: '127.0.0.1',
    INGEST_REGIONS: 'eu-west',
    INGEST_AUTH_TOKENS: `${createHash('sha256').update(TOKEN).digest('hex')}=*`,
    // Per-device limits are not what is measured: they never refuse here.
    INGEST_DEVICE_RATE: '1000000000',
    INGEST_DEVICE_BURST: '1000000000',
    INGEST_RATE_LIMIT_STORE: 'local',
    INGEST_STREAM_MAX_AGE: '10m',
    INGEST_MAX_IN_FLIGHT_BYTES: String(o.budget),
    INGEST_OVERLOAD_SUSTAIN: o.sustain,
    INGEST_OVERLOAD_PUBLISH_LATENCY: o.publishLatency,
    INGEST_SENSOR_TIERS: sampling ? TIER_RULES : '',
    OTEL_SDK_DISABLED: 'true',
    LOG_LEVEL: 'info',
  });
  const lines: string[] = [];
  let partial = '';
  const onData = (b: Buffer) => {
    const parts = (partial + b.toString('utf8')).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    if (lines.length > 2000) lines.splice(0, lines.length - 2000);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise((r) => proc.once('exit', r));
  const end = Date.now() + 90_000;
  let running: { opsPort: number; grpcPort: number } | undefined;
  while (!running) {
    const line = lines.find((l) => l.includes('ingestion running'));
    if (line) running = JSON.parse(line) as { opsPort: number; grpcPort: number };
    else if (Date.now() > end || proc.exitCode !== null)
      throw new Error(`gateway did not start: ${lines.slice(-20).join('\n')}`);
    else await sleep(50);
  }
  const ops = `http://127.0.0.1:${running.opsPort}`;
  return {
    pid: proc.pid!,
    grpc: `127.0.0.1:${running.grpcPort}`,
    lines,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    metrics: async () => (await fetch(`${ops}/metrics`)).text(),
    ready: async () => (await fetch(`${ops}/readyz`).catch(() => undefined))?.status ?? 0,
    async stop() {
      proc.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
      proc.kill('SIGKILL');
    },
  };
}

/** The device side: SDK clients and the reading generator with the tier mix. */
class Fleet {
  readonly registry = new Registry();
  readonly clients: DeviceClient[];
  /** Readings offered (emit() called), per tier. */
  readonly offered = perTier(() => 0);
  private readonly counters: number[];
  private next = 0;

  constructor(
    target: string,
    private readonly o: Options,
    tag: string,
  ) {
    this.clients = Array.from(
      { length: o.devices },
      (_, i) =>
        new DeviceClient({
          target,
          token: TOKEN,
          name: `${tag}-dev-${i}`,
          registry: this.registry,
          maxInFlightBatches: o.inFlight,
          maxBatchEvents: o.batch,
          maxBufferEvents: Math.max(10_000, 2 * o.inFlight * o.batch),
          maxBufferBytes: 64 * 1024 * 1024,
          ackTimeoutMs: 60_000,
        }),
    );
    this.counters = this.clients.map(() => 0);
  }

  /** Offers `n` readings, round robin over the devices, each device with the same tier mix. */
  emit(n: number, only?: number): void {
    for (let j = 0; j < n; j++) {
      const d = only ?? this.next++ % this.clients.length;
      const k = this.counters[d]!++;
      const slot = k % 100;
      const tier: Tier =
        slot < this.o.safetyPct
          ? 'safety'
          : slot < this.o.safetyPct + this.o.diagnosticPct
            ? 'diagnostic'
            : 'bulk';
      const sensors = SENSORS[tier];
      const event: Event = {
        kind: {
          $case: 'telemetry',
          value: {
            eventId: '',
            deviceId: `bench-dev-${d}`,
            eventTime: new Date(),
            sensorType: sensors[Math.floor(k / 100) % sensors.length]!,
            value: k,
            unit: '1',
            firmwareVersion: '',
            region: 'eu-west',
            schemaVersion: 0,
            attributes: {},
          },
        },
      };
      this.offered[tier]++;
      this.clients[d]!.emit(event, PRIORITY[tier]);
    }
  }

  /** Sums of the clients' counters, per tier. */
  totals() {
    const stats = this.clients.map((c) => c.stats());
    const byTier = (f: (s: ReturnType<DeviceClient['stats']>, p: Priority) => number) =>
      perTier((t) => stats.reduce((a, s) => a + f(s, PRIORITY[t]), 0));
    return {
      offered: { ...this.offered },
      acked: byTier((s, p) => s.acked[p]),
      sampled: byTier((s, p) => s.dropped[p].sampled),
      shed: byTier((s, p) => s.dropped[p].shed),
      evicted: byTier((s, p) => s.dropped[p].evicted + s.dropped[p].buffer_full),
      otherDrops: byTier(
        (s, p) =>
          s.dropped[p].rejected +
          s.dropped[p].too_large +
          s.dropped[p].invalid +
          s.dropped[p].closed,
      ),
      retryAcks: stats.reduce((a, s) => a + s.retries.retry_ack, 0),
      streamFailures: stats.reduce(
        (a, s) => a + s.retries.stream_failed + s.retries.ack_timeout,
        0,
      ),
      connects: this.clients.reduce((a, c) => a + c.connects, 0),
      buffered: stats.reduce((a, s) => a + s.buffered.events, 0),
      bulkEvery: Math.max(...stats.map((s) => s.sampling.bulk)),
      diagnosticEvery: Math.max(...stats.map((s) => s.sampling.diagnostic)),
    };
  }

  /** Open loop: offers `rate` readings/s for `seconds`; `onSecond` after each second. */
  async offer(rate: number, seconds: number, onSecond?: (s: number) => Promise<void>) {
    const start = performance.now();
    const end = start + seconds * 1000;
    let done = 0;
    let second = 1;
    while (performance.now() < end) {
      const due = Math.floor(((performance.now() - start) / 1000) * rate) - done;
      if (due > 0) this.emit(due);
      done += Math.max(0, due);
      if (onSecond && performance.now() - start >= second * 1000) await onSecond(second++);
      await sleep(TICK_MS);
    }
    return (performance.now() - start) / 1000;
  }

  /** Closed loop: keeps every client's buffer a few batches beyond what it has in flight. */
  async saturate(seconds: number) {
    const target = (this.o.inFlight + 2) * this.o.batch;
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
      this.clients.forEach((c, d) => {
        const held = c.stats().buffered.events;
        if (held < target) this.emit(target - held, d);
      });
      await sleep(TICK_MS);
    }
  }

  async close() {
    const flushed = await Promise.all(this.clients.map((c) => c.close(30_000)));
    return flushed.reduce((a, r) => a + r.abandoned, 0);
  }
}

/** Gateway counters read from its /metrics. */
function gatewayCounters(text: string) {
  return {
    published: metric(text, 'sluice_events_published_total'),
    rejected: metric(text, 'sluice_events_rejected_total'),
    backpressure: metric(text, 'sluice_ingest_publish_failures_total', 'cause="backpressure"'),
    publishFailures: metric(text, 'sluice_ingest_publish_failures_total'),
    shed: perTier((t) => metric(text, 'sluice_ingest_events_shed_total', `tier="${t}"`)),
    receivedWhileSampled: perTier((t) =>
      metric(text, 'sluice_ingest_sampled_tier_events_total', `tier="${t}"`),
    ),
    overloads: metric(text, 'sluice_ingest_overloads_total'),
    rateLimited: metric(text, 'sluice_ingest_rate_limited_total'),
  };
}

interface PhaseResult {
  phase: 'baseline' | 'sampling';
  seconds: number;
  offered_events_per_s: number;
  accepted_events_per_s: number;
  offered_per_s: Record<Tier, number>;
  accepted_per_s: Record<Tier, number>;
  /** Over the whole phase (warm-up + measurement), after every client flushed. */
  safety: { offered: number; acked: number; dropped: number; all_stored: boolean };
  device_drops: {
    sampled: Record<Tier, number>;
    shed: Record<Tier, number>;
    evicted_or_buffer_full: Record<Tier, number>;
    other: Record<Tier, number>;
  };
  /** Share of bulk readings offered that the SDK did not send because of the advice. */
  bulk_sampled_fraction_device: number;
  gateway: {
    events_published_per_s: number;
    /** Mean and last of the advised bulk fraction (its keep-ratio gauge, read every second). */
    bulk_keep_ratio_mean: number | undefined;
    /** 1 − the mean advised bulk fraction: the share of bulk the gateway asked devices to drop. */
    bulk_sampled_fraction_advised: number | undefined;
    bulk_keep_ratio_last: number | undefined;
    diagnostic_keep_ratio_last: number | undefined;
    pressure_max: number | undefined;
    overloads_total: number;
    received_while_sampled: Record<Tier, number>;
    shed: Record<Tier, number>;
    rejected_events: number;
    retry_backpressure: number;
    publish_failures: number;
    rate_limited: number;
    cpu_cores: number;
    cpu_ms_per_1k_accepted: number | undefined;
    nats_cpu_cores: number;
    /** Highest resident memory seen (every second while measuring, and after the flush). */
    rss_mb_peak: number | undefined;
    /** Resident memory after the clients flushed. */
    rss_mb_end: number | undefined;
    alive: boolean;
    ready_status: number;
    overload_log_lines: number;
  };
  sdk: {
    retry_acks: number;
    stream_failures: number;
    connects: number;
    abandoned_at_close: number;
    ack_p50_ms: number | undefined;
    ack_p99_ms: number | undefined;
  };
  bench_process_cpu_cores: number;
}

async function runPhase(
  phase: 'baseline' | 'sampling',
  o: Options,
  rate: number | undefined,
  seconds: number,
  warmup: number,
  calibrate: number,
): Promise<{ result?: PhaseResult; calibrated?: number }> {
  const ns = uniqueId('bsamp');
  const gw = await startGateway(ns, phase === 'sampling', o);
  const fleet = new Fleet(gw.grpc, o, `${phase}-${ns}`);
  const nc = await connect({ servers: testUrls.nats, name: 'bench-sampling' });
  const jsm = await jetstreamManager(nc);
  let closed = false;
  try {
    let calibrated: number | undefined;
    if (rate === undefined) {
      // Closed loop against this (baseline) gateway: what it stores when devices never wait.
      await fleet.saturate(Math.min(2, calibrate));
      const a0 = fleet.totals().acked;
      const t0 = performance.now();
      await fleet.saturate(calibrate);
      const a1 = fleet.totals().acked;
      const acked = TIERS.reduce((s, t) => s + a1[t] - a0[t], 0);
      calibrated = acked / ((performance.now() - t0) / 1000);
      process.stderr.write(`[calibrate] sustained ${Math.round(calibrated)} events/s\n`);
      return { calibrated };
    }
    await fleet.offer(rate, warmup);
    const m0 = gatewayCounters(await gw.metrics());
    const f0 = fleet.totals();
    const c0: CpuSnapshot = cpuSnapshot({ service: gw.pid, servers: ['nats-server'] });
    const self0 = process.cpuUsage();
    (fleet.registry.getSingleMetric(DEVICE_SDK_METRICS.batchAckDuration) as Histogram).reset();
    const keeps: number[] = [];
    let pressureMax: number | undefined;
    let rssPeak: number | undefined;
    let prevAcked = TIERS.reduce((s, t) => s + f0.acked[t], 0);
    let lastText = '';
    const elapsed = await fleet.offer(rate, seconds, async (s) => {
      const text = await gw.metrics().catch(() => '');
      lastText = text;
      const keep = text.includes('sluice_ingest_sampling_keep_ratio')
        ? metric(text, 'sluice_ingest_sampling_keep_ratio', 'tier="bulk"')
        : undefined;
      const pressure = text.includes('sluice_ingest_overload_pressure')
        ? metric(text, 'sluice_ingest_overload_pressure')
        : undefined;
      if (keep !== undefined) keeps.push(keep);
      if (pressure !== undefined) pressureMax = Math.max(pressureMax ?? 0, pressure);
      const rss = rssMb(gw.pid);
      if (rss !== undefined) rssPeak = Math.max(rssPeak ?? 0, rss);
      const t = fleet.totals();
      const acked = TIERS.reduce((a, x) => a + t.acked[x], 0);
      process.stderr.write(
        `[${phase}] t=${s}s accepted/s=${acked - prevAcked} bulk keep=${keep ?? '-'} pressure=${pressure?.toFixed(2) ?? '-'} sdk bulk 1/${t.bulkEvery} buffered=${t.buffered} rss=${rss?.toFixed(0)}MB\n`,
      );
      prevAcked = acked;
    });
    const c1 = cpuSnapshot({ service: gw.pid, servers: ['nats-server'] });
    const self1 = process.cpuUsage(self0);
    const f1 = fleet.totals();
    const m1 = gatewayCounters(await gw.metrics());
    const buckets = await ackBuckets(fleet.registry);
    const ready = await gw.ready();
    const d = (a: Record<Tier, number>, b: Record<Tier, number>) => perTier((t) => b[t] - a[t]);
    const perS = (x: Record<Tier, number>) => perTier((t) => round(x[t] / elapsed, 0));
    const offered = d(f0.offered, f1.offered);
    const acked = d(f0.acked, f1.acked);
    const ackedTotal = TIERS.reduce((s, t) => s + acked[t], 0);
    const offeredTotal = TIERS.reduce((s, t) => s + offered[t], 0);
    const gwCpu = (c1['service']! - c0['service']!) / elapsed;
    // Stop offering; everything held is sent (or dropped for a reason of its own) before counting.
    closed = true;
    const abandoned = await fleet.close();
    const end = fleet.totals();
    const safetyDropped =
      end.sampled.safety + end.shed.safety + end.evicted.safety + end.otherDrops.safety;
    const rssEnd = rssMb(gw.pid);
    if (rssEnd !== undefined) rssPeak = Math.max(rssPeak ?? 0, rssEnd);
    const keepMean = keeps.length > 0 ? keeps.reduce((a, b) => a + b, 0) / keeps.length : undefined;
    return {
      result: {
        phase,
        seconds: round(elapsed, 1),
        offered_events_per_s: round(offeredTotal / elapsed, 0),
        accepted_events_per_s: round(ackedTotal / elapsed, 0),
        offered_per_s: perS(offered),
        accepted_per_s: perS(acked),
        safety: {
          offered: end.offered.safety,
          acked: end.acked.safety,
          dropped: safetyDropped,
          all_stored: end.acked.safety === end.offered.safety && safetyDropped === 0,
        },
        device_drops: {
          sampled: d(f0.sampled, f1.sampled),
          shed: d(f0.shed, f1.shed),
          evicted_or_buffer_full: d(f0.evicted, f1.evicted),
          other: d(f0.otherDrops, f1.otherDrops),
        },
        bulk_sampled_fraction_device:
          offered.bulk > 0 ? round((f1.sampled.bulk - f0.sampled.bulk) / offered.bulk, 3) : 0,
        gateway: {
          events_published_per_s: round((m1.published - m0.published) / elapsed, 0),
          bulk_keep_ratio_mean: keepMean === undefined ? undefined : round(keepMean, 3),
          bulk_sampled_fraction_advised:
            keepMean === undefined ? undefined : round(1 - keepMean, 3),
          bulk_keep_ratio_last: keeps[keeps.length - 1],
          diagnostic_keep_ratio_last: lastText.includes('sluice_ingest_sampling_keep_ratio')
            ? metric(lastText, 'sluice_ingest_sampling_keep_ratio', 'tier="diagnostic"')
            : undefined,
          pressure_max: pressureMax === undefined ? undefined : round(pressureMax, 2),
          overloads_total: m1.overloads,
          received_while_sampled: d(m0.receivedWhileSampled, m1.receivedWhileSampled),
          shed: d(m0.shed, m1.shed),
          rejected_events: m1.rejected - m0.rejected,
          retry_backpressure: m1.backpressure - m0.backpressure,
          publish_failures: m1.publishFailures - m0.publishFailures,
          rate_limited: m1.rateLimited - m0.rateLimited,
          cpu_cores: round(gwCpu, 2),
          cpu_ms_per_1k_accepted:
            ackedTotal > 0
              ? round(((c1['service']! - c0['service']!) * 1e6) / ackedTotal, 3)
              : undefined,
          nats_cpu_cores: round((c1['nats-server']! - c0['nats-server']!) / elapsed, 2),
          rss_mb_peak: rssPeak === undefined ? undefined : round(rssPeak, 0),
          rss_mb_end: rssEnd === undefined ? undefined : round(rssEnd, 0),
          alive: gw.alive(),
          ready_status: ready,
          overload_log_lines: gw.lines.filter((l) => l.includes('gateway overloaded')).length,
        },
        sdk: {
          retry_acks: f1.retryAcks - f0.retryAcks,
          stream_failures: f1.streamFailures - f0.streamFailures,
          connects: end.connects,
          abandoned_at_close: abandoned,
          ack_p50_ms: roundOrUndefined(histogramPercentile(buckets, 50)),
          ack_p99_ms: roundOrUndefined(histogramPercentile(buckets, 99)),
        },
        bench_process_cpu_cores: round((self1.user + self1.system) / 1e6 / elapsed, 2),
      },
    };
  } finally {
    if (!closed) await fleet.close();
    await gw.stop();
    await jsm.streams.delete(topology(ns).streams.raw.name).catch(() => undefined);
    await nc.drain().catch(() => undefined);
  }
}

const num = (flags: Record<string, string>, name: string, fallback: number) => {
  const v = flags[name] === undefined ? fallback : Number(flags[name]);
  if (!(v >= 0) || !Number.isFinite(v))
    throw new Error(`--${name} must be a number ≥ 0, got "${flags[name]}"`);
  return v;
};

const bench: Bench = async (opts) => {
  const f = opts.flags;
  const o: Options = {
    devices: Math.max(1, Math.floor(num(f, 'devices', 8))),
    safetyPct: num(f, 'safety-pct', 2),
    diagnosticPct: num(f, 'diagnostic-pct', 10),
    budget: Math.max(1, Math.floor(num(f, 'budget', 262_144))),
    sustain: f['sustain'] ?? '1s',
    publishLatency: f['publish-latency'] ?? '500ms',
    inFlight: Math.max(1, Math.floor(num(f, 'in-flight', 4))),
    batch: Math.max(1, Math.floor(num(f, 'batch', 500))),
  };
  if (o.safetyPct + o.diagnosticPct > 100)
    throw new Error('--safety-pct + --diagnostic-pct must be at most 100');
  const overload = num(f, 'overload', 2);
  const calibrate = Math.max(1, num(f, 'calibrate', 5));
  const warmup = num(f, 'warmup', 6);
  let sustainable: number | undefined;
  let rate = opts.rate;
  if (rate === undefined) {
    sustainable = (await runPhase('baseline', o, undefined, 0, 0, calibrate)).calibrated!;
    rate = Math.max(1, Math.round(sustainable * overload));
  }
  const baseline = (await runPhase('baseline', o, rate, opts.seconds, warmup, 0)).result!;
  const sampling = (await runPhase('sampling', o, rate, opts.seconds, warmup, 0)).result!;
  const ratio = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && b > 0 ? round(a / b, 3) : undefined;
  const result: BenchResult = {
    name: 'sampling',
    events_per_s: sampling.accepted_events_per_s,
    p50_ms: sampling.sdk.ack_p50_ms,
    p99_ms: sampling.sdk.ack_p99_ms,
    baseline_events_per_s: baseline.accepted_events_per_s,
    offered_target_events_per_s: rate,
    calibrated_sustainable_events_per_s: sustainable === undefined ? null : round(sustainable, 0),
    overload_factor: opts.rate === undefined ? overload : null,
    safety_all_stored: baseline.safety.all_stored && sampling.safety.all_stored,
    accepted_sampling_vs_baseline: ratio(
      sampling.accepted_events_per_s,
      baseline.accepted_events_per_s,
    ),
    gateway_cpu_per_1k_sampling_vs_baseline: ratio(
      sampling.gateway.cpu_ms_per_1k_accepted,
      baseline.gateway.cpu_ms_per_1k_accepted,
    ),
    ack_p99_sampling_vs_baseline: ratio(sampling.sdk.ack_p99_ms, baseline.sdk.ack_p99_ms),
    phases: { baseline, sampling },
    config: {
      devices: o.devices,
      tier_mix_pct: {
        safety: o.safetyPct,
        diagnostic: o.diagnosticPct,
        bulk: 100 - o.safetyPct - o.diagnosticPct,
      },
      tiers: TIER_RULES,
      sdk_in_flight_batches: o.inFlight,
      sdk_batch_events: o.batch,
      gateway_max_in_flight_bytes: o.budget,
      gateway_overload_sustain: o.sustain,
      gateway_overload_publish_latency: o.publishLatency,
      warmup_s: warmup,
      ack_latency: 'SDK batch write→ack histogram, interpolated inside its buckets',
    },
  };
  return result;
};

export default bench;

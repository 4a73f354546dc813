// `npm run bench -- console [--seconds N] [--rate N] [--phases off,on,off,on] [--clients 5] [--browser on]`
//
// Does the web console load the pipeline? The gateway, dedupe and the aggregator run as built for
// production (esbuild bundles on plain node) on the local NATS, Redis and a fresh PostgreSQL
// database, fed at --rate events/s (default 6,000) by a fleet of the fleet simulator (tools/fleet-sim,
// telemetry at 10 Hz per sensor, event times = now) over gRPC, without pause for the whole run. The
// run is cut into alternating phases of --seconds each (default off,on,off,on):
// - off: no console process at all;
// - on: the console (apps/console, built the same way, its pages built by Vite) watching the three
//   services, with --clients open SSE clients on /api/stream (default 5) and, with --browser on
//   (default), a headless Chromium page signed in on the Pipeline page (Debian's chromium,
//   playwright-core), all opened before the phase's measurement starts.
// Per phase: events/s accepted by the gateway and aggregated by the aggregator, gateway ack p50/p99,
// roll-up freshness p50/p99 (the aggregator's sluice_aggregator_visible_seconds buckets between the
// phase's start and end), consumer lag at its end, and CPU per process (cores, and ms per 1,000
// events): each service, the console, Chromium, nats-server, postgres, redis-server. Then the medians
// per mode and their on/off ratios: alternating phases and medians keep a busy machine's swings from
// deciding the comparison. The browser's own CPU is reported but not counted as pipeline load (an
// operator's browser runs on their laptop); CPU by server name counts every process of that name on
// the machine (another Chromium or nats-server included): run it on a quiet machine.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { topology } from '@sluice/contracts';
import { createTestDatabase, freePort, testUrls, uniqueId } from '@sluice/testing';
import { chromium, type Browser } from 'playwright-core';
// eslint-disable-next-line @nx/enforce-module-boundaries -- the console's own page builder
import { ensureConsolePages } from '../../../../apps/console/src/dev';
// eslint-disable-next-line @nx/enforce-module-boundaries -- the fleet simulator drives the load
import { Fleet, GrpcStreamSender, RunStats } from '../../../fleet-sim/src/index';
// eslint-disable-next-line @nx/enforce-module-boundaries -- the live view's Prometheus helpers
import { histogramQuantile, parsePrometheus, total, type Scrape } from '../../../dev/dashboard';
import { ROOT, startBuiltApp } from '../built-app';
import { cpuSnapshot, type CpuSnapshot } from '../cpu';
import { round, type Bench, type BenchFlags } from '../result';

/** Extra flags of this bench (any other is refused). */
export const flags: BenchFlags = {
  phases: 'console off/on, one phase each in this order (default off,on,off,on)',
  clients: 'open SSE clients on the console /api/stream during an "on" phase (default 5)',
  browser: 'a headless Chromium page on the console during an "on" phase: on or off (default on)',
};

/** Seconds per phase when --seconds is not given. */
export const defaultSeconds = 20;

const REGION = 'eu-west';
const SENSOR_HZ = 10;
const SENSORS = 6;
/** Between a phase's console opening (or the previous phase) and its measurement. */
const SETTLE_MS = 3_000;
const SERVERS = ['nats-server', 'postgres', 'redis-server', 'chromium', 'chrome'];

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface Proc {
  name: string;
  proc: ChildProcess;
  opsPort: number;
  lines: string[];
}

function start(app: string, env: Record<string, string>, opsPort: number): Proc {
  const proc = startBuiltApp(app, { ...env, OPS_PORT: String(opsPort) });
  const p: Proc = { name: app, proc, opsPort, lines: [] };
  const onData = (b: Buffer) => {
    for (const l of b.toString('utf8').split('\n'))
      if (l && /"level":(40|50|60)/.test(l) && p.lines.length < 100) p.lines.push(l.slice(0, 400));
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  return p;
}

async function waitReady(p: Proc, path: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (p.proc.exitCode !== null) throw new Error(`${p.name} exited: ${p.lines.join('\n')}`);
    const ok = await fetch(`http://127.0.0.1:${p.opsPort}${path}`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${p.name} not ready within ${timeoutMs} ms: ${p.lines.join('\n')}`);
}

async function stop(p: Proc | undefined): Promise<void> {
  if (!p || p.proc.exitCode !== null) return;
  const exited = new Promise((r) => p.proc.once('exit', r));
  p.proc.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
  if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
}

/** CPU seconds of one process so far (utime + stime), 0 when it is gone. */
function pidCpu(pid: number | undefined): number {
  return pid === undefined ? 0 : cpuSnapshot({ service: pid, servers: [] })['service']!;
}

async function scrape(p: Proc): Promise<Scrape> {
  const text = await fetch(`http://127.0.0.1:${p.opsPort}/metrics`).then((r) => r.text());
  return { at: Date.now(), samples: parsePrometheus(text) };
}

/** SSE clients on the console's /api/stream: events and bytes received, until closed. */
function openStreams(url: string, token: string, n: number) {
  const counts = { events: 0, bytes: 0, connected: 0, failed: 0 };
  const reqs: http.ClientRequest[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${counts.connected}/${n} SSE clients connected`)),
      30_000,
    );
    for (let i = 0; i < n; i++) {
      const req = http.request(
        `${url}/api/stream`,
        {
          agent: false,
          headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
        },
        (res) => {
          if (res.statusCode !== 200) {
            counts.failed++;
            res.resume();
            return;
          }
          res.setEncoding('utf8');
          let first = true;
          let buf = '';
          res.on('data', (chunk: string) => {
            if (first) {
              first = false;
              if (++counts.connected === n) {
                clearTimeout(timer);
                resolve();
              }
            }
            counts.bytes += Buffer.byteLength(chunk);
            buf += chunk;
            for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
              if (buf.slice(0, end).includes('data:')) counts.events++;
              buf = buf.slice(end + 2);
            }
          });
          res.on('error', () => undefined);
        },
      );
      req.on('error', () => counts.failed++);
      req.end();
      reqs.push(req);
    }
    if (n === 0) {
      clearTimeout(timer);
      resolve();
    }
  });
  return { counts, ready, close: () => reqs.forEach((r) => r.destroy()) };
}

/** What one phase measured. */
interface Phase {
  console: 'off' | 'on';
  seconds: number;
  events_per_s: number;
  aggregated_events_per_s: number | null;
  ack_p50_ms: number;
  ack_p99_ms: number;
  freshness_p50_ms: number | null;
  freshness_p99_ms: number | null;
  lag_at_end: Record<string, number>;
  /** CPU per process, cores (CPU seconds per second). */
  cpu_cores: Record<string, number>;
  /** CPU per process, ms per 1,000 events accepted. */
  cpu_ms_per_1k_events: Record<string, number>;
  /** Pipeline CPU: the three services and their servers (not the console, not Chromium). */
  pipeline_cpu_ms_per_1k_events: number;
  sse_clients?: number;
  sse_events_received?: number;
  sse_bytes_received?: number;
  browser?: boolean;
}

async function lag(jsm: JetStreamManager, t: ReturnType<typeof topology>) {
  const read = async (stream: string, durable: string) =>
    (await jsm.consumers.info(stream, durable).catch(() => undefined))?.num_pending ?? -1;
  return {
    dedupe: await read(t.streams.raw.name, 'dedupe'),
    aggregator: await read(t.streams.clean.name, 'aggregator'),
  };
}

const median = (xs: number[]): number | undefined => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const bench: Bench = async (opts) => {
  const rate = opts.rate ?? 6_000;
  const clients = Number(opts.flags['clients'] ?? 5);
  if (!Number.isInteger(clients) || clients < 0)
    throw new Error(`--clients takes a whole number, got "${opts.flags['clients']}"`);
  const browserMode = opts.flags['browser'] ?? 'on';
  if (browserMode !== 'on' && browserMode !== 'off')
    throw new Error(`--browser takes on or off, got "${browserMode}"`);
  const modes = (opts.flags['phases'] ?? 'off,on,off,on').split(',').map((x) => x.trim());
  for (const m of modes)
    if (m !== 'on' && m !== 'off')
      throw new Error(`--phases takes on, off or a comma list of them, got "${m}"`);

  const ns = uniqueId('bcon').replace(/-/g, '');
  const t = topology(ns);
  const db = await createTestDatabase('bench_console');
  const deviceToken = randomBytes(24).toString('hex');
  const queryToken = randomBytes(24).toString('hex');
  const [grpcPort, apiPort, consolePort] = await Promise.all([freePort(), freePort(), freePort()]);
  const common: Record<string, string> = {
    NATS_URL: testUrls.nats,
    REDIS_URL: testUrls.redis,
    PG_URL: db.url,
    SLUICE_NAMESPACE: ns,
    OPS_HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    OTEL_SDK_DISABLED: 'true',
  };
  const nc = await connect({ servers: testUrls.nats, name: 'bench-console' });
  const jsm = await jetstreamManager(nc);
  const procs: Proc[] = [];
  let consoleProc: Proc | undefined;
  let browser: Browser | undefined;
  let streams: ReturnType<typeof openStreams> | undefined;
  let sender: GrpcStreamSender | undefined;
  let driver: NodeJS.Timeout | undefined;
  try {
    // Pages and Chromium first: neither is part of any phase.
    const executablePath =
      browserMode === 'on'
        ? execFileSync('bash', ['-c', 'source scripts/lib.sh >/dev/null; ensure_chromium'], {
            cwd: ROOT,
            encoding: 'utf8',
          }).trim()
        : undefined;
    await ensureConsolePages(ROOT);

    const gateway = start(
      'ingestion',
      {
        ...common,
        INGEST_GRPC_PORT: String(grpcPort),
        INGEST_HTTP_PORT: '0',
        INGEST_HOST: '127.0.0.1',
        INGEST_REGIONS: REGION,
        INGEST_AUTH_TOKENS: `${sha256(deviceToken)}=*`,
        INGEST_STREAM_MAX_AGE: '1h',
      },
      await freePort(),
    );
    procs.push(gateway);
    await waitReady(gateway, '/readyz', 120_000);
    const dedupe = start('dedupe', common, await freePort());
    const aggregator = start(
      'aggregator',
      {
        ...common,
        AGGREGATOR_API_HOST: '127.0.0.1',
        AGGREGATOR_API_PORT: String(apiPort),
        AGGREGATOR_API_TOKENS: `${sha256(queryToken)}=*`,
      },
      await freePort(),
    );
    procs.push(dedupe, aggregator);
    for (const p of procs) await waitReady(p, '/readyz', 120_000);

    // The fleet, in real time for the whole run: SENSORS × SENSOR_HZ events/s per device.
    const fleet = new Fleet({
      devices: Math.max(1, Math.round(rate / (SENSORS * SENSOR_HZ))),
      sensorsPerDevice: SENSORS,
      minHz: SENSOR_HZ,
      maxHz: SENSOR_HZ,
      cameraFraction: 0,
      regions: [REGION],
      batchSize: 500,
      flushMs: 200,
      devicePrefix: `bc${ns.slice(-6)}`,
    });
    const stats = new RunStats();
    sender = new GrpcStreamSender(`127.0.0.1:${grpcPort}`, 4, stats, {
      token: deviceToken,
      maxInFlight: 16,
    });
    const s = sender;
    driver = setInterval(() => {
      for (const b of fleet.tick(Date.now())) {
        const sent = s.trySend({
          batchId: b.batch.batchId,
          events: b.batch.events.length,
          batch: b.batch,
          schemaVersion: b.schemaVersion,
        });
        if (!sent) stats.skipped++;
      }
    }, 50);
    process.stderr.write(
      `[console bench] ${fleet.deviceIds.length} devices, ${fleet.eventsPerSecond} events/s offered; phases ${modes.join(',')} of ${opts.seconds}s\n`,
    );
    // Warm-up: JIT, connections, the first roll-up windows.
    await new Promise((r) => setTimeout(r, Math.min(10_000, opts.seconds * 1000)));

    const consoleUrl = `http://127.0.0.1:${consolePort}`;
    const phases: Phase[] = [];
    for (const [i, mode] of modes.entries()) {
      let withBrowser = false;
      if (mode === 'on') {
        consoleProc = start(
          'console',
          {
            ...common,
            CONSOLE_HOST: '127.0.0.1',
            CONSOLE_PORT: String(consolePort),
            AGGREGATOR_API_TOKENS: `${sha256(queryToken)}=*`,
            CONSOLE_QUERY_URL: `http://127.0.0.1:${apiPort}`,
            // No webhook dispatcher in this run: its admin API is nowhere (the Alerts page is empty).
            CONSOLE_ADMIN_URL: 'http://127.0.0.1:9',
            CONSOLE_TARGETS: procs.map((p) => `${p.name}=http://127.0.0.1:${p.opsPort}`).join(','),
          },
          await freePort(),
        );
        await waitReady(consoleProc, '/healthz', 120_000);
        streams = openStreams(consoleUrl, queryToken, clients);
        await streams.ready;
        if (executablePath) {
          browser = await chromium.launch({
            executablePath,
            headless: true,
            args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
          });
          const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
          await page.goto(`${consoleUrl}#/pipeline`);
          await page.fill('#token', queryToken);
          await page.press('#token', 'Enter');
          await page.waitForSelector('[data-stage="aggregator"]', { timeout: 60_000 });
          withBrowser = true;
        }
      }
      await new Promise((r) => setTimeout(r, SETTLE_MS));

      // Measure.
      const cpuOf = (): CpuSnapshot => {
        const snap = cpuSnapshot({ service: process.pid, servers: SERVERS });
        delete snap['service'];
        for (const p of [...procs, ...(consoleProc ? [consoleProc] : [])])
          snap[p.name] = pidCpu(p.proc.pid);
        return snap;
      };
      const acceptedBefore = stats.eventsAccepted;
      stats.latency.reset();
      const sseBefore = streams ? { ...streams.counts } : undefined;
      const aggBefore = await scrape(aggregator);
      const cpuBefore = cpuOf();
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, opts.seconds * 1000));
      const elapsed = (performance.now() - t0) / 1000;
      const cpuAfter = cpuOf();
      const aggAfter = await scrape(aggregator);
      const accepted = stats.eventsAccepted - acceptedBefore;
      const aggregated =
        (total(aggAfter.samples, 'sluice_aggregator_events_total', { kind: 'aggregated' }) ?? NaN) -
        (total(aggBefore.samples, 'sluice_aggregator_events_total', { kind: 'aggregated' }) ?? NaN);
      const cores: Record<string, number> = {};
      const per1k: Record<string, number> = {};
      for (const [k, v] of Object.entries(cpuAfter)) {
        const used = v - (cpuBefore[k] ?? 0);
        if (k === 'chrome' && used === 0) continue;
        cores[k] = round(used / elapsed, 3);
        per1k[k] = round((used * 1000 * 1000) / Math.max(1, accepted), 3);
      }
      const pipelineKeys = [
        'ingestion',
        'dedupe',
        'aggregator',
        'nats-server',
        'postgres',
        'redis-server',
      ];
      const fresh = (q: number) => {
        const v = histogramQuantile(aggBefore, aggAfter, 'sluice_aggregator_visible_seconds', q);
        return v === undefined ? null : round(v * 1000, 1);
      };
      const phase: Phase = {
        console: mode as 'on' | 'off',
        seconds: round(elapsed, 1),
        events_per_s: round(accepted / elapsed, 0),
        aggregated_events_per_s: Number.isFinite(aggregated)
          ? round(aggregated / elapsed, 0)
          : null,
        ack_p50_ms: round(stats.latency.percentile(50), 2),
        ack_p99_ms: round(stats.latency.percentile(99), 2),
        freshness_p50_ms: fresh(0.5),
        freshness_p99_ms: fresh(0.99),
        lag_at_end: await lag(jsm, t),
        cpu_cores: cores,
        cpu_ms_per_1k_events: per1k,
        pipeline_cpu_ms_per_1k_events: round(
          pipelineKeys.reduce((sum, k) => sum + (per1k[k] ?? 0), 0),
          3,
        ),
        ...(mode === 'on' && streams && sseBefore
          ? {
              sse_clients: streams.counts.connected,
              sse_events_received: streams.counts.events - sseBefore.events,
              sse_bytes_received: streams.counts.bytes - sseBefore.bytes,
              browser: withBrowser,
            }
          : {}),
      };
      phases.push(phase);
      process.stderr.write(
        `[phase ${i + 1}/${modes.length} console=${mode}] ${phase.events_per_s} events/s accepted, ${phase.aggregated_events_per_s ?? '-'} aggregated, ack p99 ${phase.ack_p99_ms} ms, freshness p99 ${phase.freshness_p99_ms ?? '-'} ms, pipeline CPU ${phase.pipeline_cpu_ms_per_1k_events} ms/1k, cores ${JSON.stringify(cores)}\n`,
      );

      // Close the console side before the next phase.
      streams?.close();
      streams = undefined;
      await browser?.close().catch(() => undefined);
      browser = undefined;
      await stop(consoleProc);
      consoleProc = undefined;
    }

    const pick = (mode: 'on' | 'off', of: (p: Phase) => number | null | undefined) =>
      median(
        phases
          .filter((p) => p.console === mode)
          .map(of)
          .filter((x): x is number => typeof x === 'number'),
      );
    const compare = (label: string, of: (p: Phase) => number | null | undefined, digits = 2) => {
      const off = pick('off', of);
      const on = pick('on', of);
      if (off === undefined || on === undefined) return {};
      return {
        [`${label}_off`]: round(off, digits),
        [`${label}_on`]: round(on, digits),
        [`${label}_on_vs_off`]: off === 0 ? null : round(on / off, 3),
      };
    };
    const cpuKeys = [...new Set(phases.flatMap((p) => Object.keys(p.cpu_ms_per_1k_events)))];
    const offEvents = pick('off', (p) => p.events_per_s);
    return {
      name: 'console',
      events_per_s: offEvents !== undefined ? round(offEvents, 0) : undefined,
      p50_ms: pick('off', (p) => p.ack_p50_ms),
      p99_ms: pick('off', (p) => p.ack_p99_ms),
      offered_events_per_s: fleet.eventsPerSecond,
      devices: fleet.deviceIds.length,
      phase_seconds: opts.seconds,
      sse_clients: clients,
      browser: browserMode === 'on',
      ...compare('events_per_s', (p) => p.events_per_s, 0),
      ...compare('aggregated_events_per_s', (p) => p.aggregated_events_per_s, 0),
      ...compare('ack_p99_ms', (p) => p.ack_p99_ms),
      ...compare('freshness_p50_ms', (p) => p.freshness_p50_ms, 1),
      ...compare('freshness_p99_ms', (p) => p.freshness_p99_ms, 1),
      ...compare('pipeline_cpu_ms_per_1k_events', (p) => p.pipeline_cpu_ms_per_1k_events, 3),
      cpu_ms_per_1k_events_median: Object.fromEntries(
        cpuKeys.map((k) => [
          k,
          {
            off: round(pick('off', (p) => p.cpu_ms_per_1k_events[k]) ?? NaN, 3),
            on: round(pick('on', (p) => p.cpu_ms_per_1k_events[k]) ?? NaN, 3),
          },
        ]),
      ),
      retries: stats.retries,
      failures: stats.failures,
      skipped: stats.skipped,
      phases,
    };
  } finally {
    if (driver) clearInterval(driver);
    streams?.close();
    await browser?.close().catch(() => undefined);
    await stop(consoleProc);
    await sender?.drain(5_000).catch(() => undefined);
    sender?.close();
    for (const p of procs.reverse()) await stop(p);
    for (const s of Object.values(t.streams))
      await jsm.streams.delete(s.name).catch(() => undefined);
    await nc.drain().catch(() => undefined);
    await db.drop().catch(() => undefined);
  }
};

export default bench;

// `npm run bench -- webhook [--seconds N] [--rate 20000] [--bulk-rate 3000] [--concurrency 32]`
//
// Runs the real webhook dispatcher process (built bundle on plain node, see ../built-app) against the
// local NATS and PostgreSQL, with receivers on 127.0.0.1, in two phases of seconds/2 each:
//   1. latency: background load of non-matching clean events at --rate events/s (batches of 100)
//      plus one threshold-crossing reading every 20 ms; p50/p99 from publish of that reading to
//      the receiver getting its alert;
//   2. throughput: matching events offered at --bulk-rate/s to one subscription whose receiver
//      answers at once; sustained deliveries/s measured at the receiver.
// Baseline: a bare keep-alive HTTP POST loop (same concurrency, same body size) to the same receiver.
// Each run uses its own namespace, streams and database, removed afterwards.
// `--shared-state local,redis` runs the whole of it once per value, in that order, in one run:
// endpoint limits and consecutive runs per process, then shared by the replicas in Redis.
// `events_per_s` and the latencies are the last phase's; `phases` lists each; `shared_vs_local` and
// `shared_vs_local_cpu` compare the medians (deliveries/s, service CPU per delivery) per setting.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { encodeBatch, TelemetryEvent, topology, type Event } from '@sluice/contracts';
import { createTestDatabase, testUrls, uniqueId } from '@sluice/testing';
import { startBuiltApp } from '../built-app';
import {
  percentile,
  round,
  type Bench,
  type BenchFlags,
  type BenchOptions,
  type BenchResult,
} from '../result';
import { numberOf, type UnitCostUpdate } from '../unit-costs';

const TOKEN = 'bench-admin-token-0123456789';

/**
 * The dispatcher as built for production (esbuild bundle on plain node): under tsx, source-map hooks
 * make every Error nats.js creates per request several times dearer. `WEBHOOK_BENCH_NODE_OPTIONS`
 * (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) is passed to the service process only.
 */
function startDispatcher(env: Record<string, string>) {
  const nodeOptions = process.env['WEBHOOK_BENCH_NODE_OPTIONS'];
  const proc = startBuiltApp(
    'webhook-dispatcher',
    nodeOptions ? { ...env, NODE_OPTIONS: nodeOptions } : env,
  );
  const lines: string[] = [];
  const exited = new Promise((r) => proc.once('exit', r));
  let partial = '';
  const onData = (b: Buffer) => {
    const parts = (partial + b.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) if (l && lines.length < 50_000) lines.push(l);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  return {
    lines,
    exited,
    /** CPU time (user + system, ms) the service process used so far; undefined off Linux. */
    cpuMs(): number | undefined {
      try {
        const f = readFileSync(`/proc/${proc.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime in USER_HZ (100)
      } catch {
        return undefined;
      }
    },
    /** SIGTERM, SIGKILL after `graceMs`; resolves once the process has exited. */
    async stop(graceMs: number): Promise<void> {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      if ((await Promise.race([exited, timer])) === 'timeout') {
        proc.kill('SIGKILL');
        await exited;
      }
    },
    async waitForLine(re: RegExp, timeoutMs: number): Promise<string> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const seen = lines.find((l) => re.test(l));
        if (seen) return seen;
        if (Date.now() > end || proc.exitCode !== null)
          throw new Error(`webhook-dispatcher did not start: ${lines.slice(-20).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

interface Receiver {
  server: Server;
  url: string;
  arrivals: Array<{ at: number; body: string }>;
  count: number;
  ids: Set<string>;
}

async function receiver(keepBodies: boolean): Promise<Receiver> {
  const r: Receiver = {
    server: undefined as unknown as Server,
    url: '',
    arrivals: [],
    count: 0,
    ids: new Set(),
  };
  r.server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      r.count++;
      r.ids.add(String(req.headers['webhook-id']));
      if (keepBodies)
        r.arrivals.push({ at: Date.now(), body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  r.server.keepAliveTimeout = 30_000;
  r.server.listen(0, '127.0.0.1');
  await once(r.server, 'listening');
  r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}/hook`;
  return r;
}

function reading(id: string, sensorType: string, value: number): Event {
  return {
    kind: {
      $case: 'telemetry',
      value: TelemetryEvent.fromPartial({
        eventId: id,
        deviceId: `dev-${id.length % 7}`,
        sensorType,
        value,
        unit: 'c',
        region: 'eu',
        eventTime: new Date(),
      }),
    },
  };
}

/** Bare HTTP POST loop: requests/s with `concurrency` keep-alive connections for `ms`. */
async function postLoop(
  url: string,
  body: string,
  concurrency: number,
  ms: number,
): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const end = Date.now() + ms;
  let done = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve());
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        await one();
        done++;
      }
    }),
  );
  agent.destroy();
  return done / (ms / 1000);
}

async function closeReceiver(r: Receiver): Promise<void> {
  r.server.closeAllConnections();
  await new Promise<void>((resolve) => r.server.close(() => resolve()));
}

/** Deletes every stream whose name starts with `prefix` (and so their consumers); bounded by the listing. */
async function deleteStreams(jsm: JetStreamManager, prefix: string): Promise<void> {
  const names: string[] = [];
  for await (const name of jsm.streams.names()) if (name.startsWith(prefix)) names.push(name);
  for (const name of names) await jsm.streams.delete(name);
  if (names.length === 0) return;
  const left: string[] = [];
  for await (const name of jsm.streams.names()) if (name.startsWith(prefix)) left.push(name);
  if (left.length > 0) throw new Error(`streams still present after deletion: ${left.join(', ')}`);
}

/** Extra flags of this bench (any other is refused). */
export const flags: BenchFlags = {
  'bulk-rate': 'matching events/s offered in the throughput phase (default 3000)',
  concurrency: 'receiver/baseline concurrency (default 32)',
  'shared-state':
    'where endpoint limits and runs live, one phase each in this order: local, redis or e.g. local,redis (default redis)',
};

type SharedState = 'local' | 'redis';

async function runPhase(opts: BenchOptions, sharedState: SharedState): Promise<BenchResult> {
  const rate = opts.rate ?? 20_000;
  const bulkRate = Number(opts.flags['bulk-rate'] ?? 3_000);
  const concurrency = Number(opts.flags['concurrency'] ?? 32);
  const phaseMs = (opts.seconds * 1000) / 2;
  const ns = uniqueId('benchwh');
  const topo = topology(ns);
  // Every stream of the run (the dispatcher's own included) carries the namespace's prefix; deleting
  // those streams deletes their consumers too.
  const streamPrefix = topo.streams.clean.name.slice(0, -topology().streams.clean.name.length);
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    const db = await createTestDatabase('bench_webhook');
    cleanup.unshift(() => db.drop());
    const nc = await connect({ servers: testUrls.nats, name: 'bench-webhook' });
    cleanup.unshift(() => nc.drain());
    const jsm = await jetstreamManager(nc);
    cleanup.unshift(() => deleteStreams(jsm, streamPrefix));
    const js = jsm.jetstream();
    const alerts = await receiver(true);
    cleanup.unshift(() => closeReceiver(alerts));
    const bulk = await receiver(false);
    cleanup.unshift(() => closeReceiver(bulk));
    const proc = startDispatcher({
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: ns,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OTEL_SDK_DISABLED: 'true',
      PG_URL: db.url,
      WEBHOOK_ADMIN_PORT: '0',
      WEBHOOK_ADMIN_HOST: '127.0.0.1',
      WEBHOOK_ADMIN_TOKEN: TOKEN,
      WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
      WEBHOOK_MAX_IN_FLIGHT: '2048',
      WEBHOOK_ENDPOINT_QUEUE: '2048',
      WEBHOOK_SHARED_STATE: sharedState,
      REDIS_URL: testUrls.redis,
    });
    // Stopped before its streams are deleted, so it cannot recreate them.
    cleanup.unshift(() => proc.stop(20_000));
    const line = await proc.waitForLine(/admin API listening/, 60_000);
    await proc.waitForLine(/webhook-dispatcher running/, 60_000);
    const admin = `http://127.0.0.1:${JSON.parse(line).port as number}`;
    const subscribe = async (url: string, filter: unknown, extra: Record<string, unknown> = {}) => {
      const res = await fetch(`${admin}/v1/subscriptions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url, filter, ...extra }),
      });
      if (res.status !== 201)
        throw new Error(`subscription refused: ${res.status} ${await res.text()}`);
    };
    await subscribe(alerts.url, { type: 'telemetry', sensorTypes: ['alarm'], value: { gt: 100 } });
    await subscribe(
      bulk.url,
      { type: 'telemetry', sensorTypes: ['bulk'] },
      { rateLimitPerS: 100_000, maxConcurrency: concurrency },
    );

    // Phase 1: latency under background load. CPU of the service (and of this process, the load
    // generator and receivers) is recorded per phase: on a shared machine it is steadier than wall time.
    const cpu0 = proc.cpuMs();
    const own0 = process.cpuUsage();
    const noise = encodeBatch({
      batchId: 'noise',
      events: Array.from({ length: 100 }, (_, i) => reading(`n${i}`, 'noise', 1_000)),
    });
    const sent = new Map<string, number>();
    let background = 0;
    let inflight: Array<Promise<unknown>> = [];
    const start1 = Date.now();
    let tick = 0;
    while (Date.now() - start1 < phaseMs) {
      const due = Math.floor(((Date.now() - start1) / 1000) * (rate / 100));
      while (background / 100 < due && inflight.length < 256) {
        inflight.push(js.publish(topo.clean('eu'), noise, { msgID: uniqueId('n') }));
        background += 100;
      }
      if (Date.now() - start1 >= tick * 20) {
        tick++;
        const id = uniqueId('alarm');
        sent.set(id, Date.now());
        inflight.push(
          js.publish(
            topo.clean('eu'),
            encodeBatch({ batchId: id, events: [reading(id, 'alarm', 150)] }),
            { msgID: id },
          ),
        );
      }
      if (inflight.length >= 256) {
        await Promise.all(inflight);
        inflight = [];
        // A 1 ms sleep, not a setImmediate spin: spinning kept a whole core of this 2-core machine busy
        // in the load generator, which the service, NATS and the receivers then lacked.
      } else await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(inflight);
    const backgroundRate = background / ((Date.now() - start1) / 1000);
    const cpu1 = proc.cpuMs();
    const own1 = process.cpuUsage(own0);
    const deadline = Date.now() + 15_000;
    while (alerts.arrivals.length < sent.size && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    const latencies = alerts.arrivals
      .map((a) => {
        const id = (JSON.parse(a.body) as { data: { event: { event_id: string } } }).data.event
          .event_id;
        return a.at - (sent.get(id) ?? a.at);
      })
      .sort((a, b) => a - b);

    // Phase 2: sustained deliveries/s to a fast receiver.
    const total = Math.round((bulkRate * phaseMs) / 1000);
    const t0 = Date.now();
    inflight = [];
    for (let i = 0; i < total; i += 100) {
      const events = Array.from({ length: Math.min(100, total - i) }, (_, k) =>
        reading(uniqueId(`b${i + k}`), 'bulk', i + k),
      );
      inflight.push(
        js.publish(topo.clean('eu'), encodeBatch({ batchId: `bulk-${i}`, events }), {
          msgID: uniqueId('bulk'),
        }),
      );
      const due = t0 + ((i + 100) / bulkRate) * 1000;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      if (inflight.length >= 64) inflight = [Promise.all(inflight)];
    }
    await Promise.all(inflight);
    const deadline2 = Date.now() + 60_000;
    while (bulk.ids.size < total && Date.now() < deadline2)
      await new Promise((r) => setTimeout(r, 50));
    const deliveredPerS = bulk.ids.size / ((Date.now() - t0) / 1000);
    const cpu2 = proc.cpuMs();
    const bulkDelivered = bulk.ids.size;
    const bulkRequests = bulk.count;

    const body = JSON.stringify({
      type: 'telemetry.threshold.v1',
      timestamp: new Date().toISOString(),
      data: { event: { event_id: 'x'.repeat(40), value: 1 } },
    });
    const baseline = await postLoop(bulk.url, body, concurrency, Math.min(5_000, phaseMs));

    const result: BenchResult = {
      name: 'webhook',
      shared_state: sharedState,
      events_per_s: round(deliveredPerS),
      p50_ms: round(percentile(latencies, 50)),
      p99_ms: round(percentile(latencies, 99)),
      baseline_events_per_s: round(baseline),
      background_events_per_s: round(backgroundRate),
      alerts_sent: sent.size,
      alerts_received: alerts.arrivals.length,
      bulk_offered: total,
      bulk_delivered: bulkDelivered,
      bulk_requests: bulkRequests,
      bulk_offered_rate: bulkRate,
      endpoint_concurrency: concurrency,
      service_cpu_ms_latency_phase:
        cpu0 === undefined || cpu1 === undefined ? undefined : round(cpu1 - cpu0),
      loadgen_cpu_ms_latency_phase: round((own1.user + own1.system) / 1000),
      service_cpu_us_per_delivery:
        cpu1 === undefined || cpu2 === undefined || bulkDelivered === 0
          ? undefined
          : round(((cpu2 - cpu1) * 1000) / bulkDelivered),
    };
    for (const l of proc.lines.filter((x) => /"level":"(warn|error)"/.test(x)).slice(0, 5))
      console.error(l.slice(0, 400));
    console.error(
      `webhook [shared-state=${sharedState}]: p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms at ${result.background_events_per_s} ev/s background; ${result.events_per_s} deliveries/s (baseline POST loop ${result.baseline_events_per_s}/s); service CPU ${result.service_cpu_ms_latency_phase} ms in the latency phase, ${result.service_cpu_us_per_delivery} µs per bulk delivery`,
    );
    return result;
  } finally {
    // Everything the run created goes, also when it failed half-way; one failed step does not stop the rest.
    for (const step of cleanup) {
      await step().catch((err: unknown) =>
        console.error(`webhook bench cleanup: ${(err as Error).message}`),
      );
    }
  }
}

const bench: Bench = async (opts) => {
  const phases = (opts.flags['shared-state'] ?? 'redis').split(',').map((x) => x.trim());
  for (const p of phases)
    if (p !== 'local' && p !== 'redis')
      throw new Error(`--shared-state takes local, redis or a comma list of them, got "${p}"`);
  const results: BenchResult[] = [];
  for (const p of phases as SharedState[]) results.push(await runPhase(opts, p));
  // Medians over the phases of each setting (alternate them: local,redis,local,redis).
  const median = (state: SharedState, of: (r: BenchResult) => unknown) => {
    const xs = results
      .filter((r) => r['shared_state'] === state)
      .map(of)
      .filter((x): x is number => typeof x === 'number')
      .sort((a, b) => a - b);
    if (xs.length === 0) return undefined;
    const m = Math.floor(xs.length / 2);
    return xs.length % 2 ? xs[m]! : (xs[m - 1]! + xs[m]!) / 2;
  };
  const shared = median('redis', (r) => r.events_per_s);
  const local = median('local', (r) => r.events_per_s);
  const sharedCpu = median('redis', (r) => r['service_cpu_us_per_delivery']);
  const localCpu = median('local', (r) => r['service_cpu_us_per_delivery']);
  return {
    ...results[results.length - 1]!,
    ...(shared !== undefined && local !== undefined
      ? {
          shared_state_events_per_s: round(shared),
          local_state_events_per_s: round(local),
          shared_vs_local: round(shared / local, 3),
        }
      : {}),
    ...(sharedCpu !== undefined && localCpu !== undefined
      ? {
          shared_state_cpu_us_per_delivery: round(sharedCpu),
          local_state_cpu_us_per_delivery: round(localCpu),
          shared_vs_local_cpu: round(sharedCpu / localCpu, 3),
        }
      : {}),
    ...(results.length > 1 ? { phases: results } : {}),
  };
};

/** The unit costs this bench measures (`--record` writes them to tools/bench/data/unit-costs.json). */
export const unitCosts = (r: BenchResult): UnitCostUpdate => ({
  // With --shared-state, the median of the Redis phases (the production setting with replicas).
  webhook_cpu_us_per_delivery: {
    value:
      numberOf(r, 'shared_state_cpu_us_per_delivery') ??
      numberOf(r, 'service_cpu_us_per_delivery') ??
      NaN,
  },
});

export default bench;

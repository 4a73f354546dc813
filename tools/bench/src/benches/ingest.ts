// Ingestion gateway throughput: fleet-sim's pre-encoded 500-event batches over several gRPC streams
// into a gateway child process, which publishes them to JetStream; baseline = nats.js publishing the
// same EventBatch bytes straight to JetStream (pipelined), measured in the same run.
//   npm run bench -- ingest --seconds 60            closed loop: sustained events/s
//   npm run bench -- ingest --seconds 60 --rate 50000   open loop: ack latency at that offered load
//   npm run bench -- ingest --seconds 10 --limits local,redis,local,redis   the same load against a
//       gateway with per-process device buckets, then one with the buckets shared in Redis, alternating,
//       in one run: the medians per store (events/s, gateway CPU per 1,000 events) and their ratios
//   npm run bench -- ingest --seconds 10 --tls off,on,off,on   the same load against a gateway and a
//       private nats-server in plaintext, then with TLS on both hops (devices → gateway gRPC, gateway →
//       NATS, certificates of a CA made for the run), alternating: medians per mode and their ratios
// Extra flags: --streams 4 --in-flight 16 --batch 500 --limits redis
import { startBuiltApp } from '../built-app';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { encodeBatch, topology } from '@sluice/contracts';
import {
  createTestCa,
  freePort,
  privateNats,
  testUrls,
  uniqueId,
  type PrivateServer,
  type TestCa,
  type TestCertificate,
} from '@sluice/testing';
// eslint-disable-next-line @nx/enforce-module-boundaries -- the bench drives the fleet simulator's load core
import {
  GrpcStreamSender,
  RunStats,
  TemplatePool,
  generateLoad,
} from '../../../fleet-sim/src/index';
import { round, type Bench, type BenchFlags, type BenchResult } from '../result';
import { numberOf, type UnitCostUpdate } from '../unit-costs';

const TOKEN = 'bench-token';

async function baseline(
  payloads: Uint8Array[],
  events: number,
  seconds: number,
  window: number,
): Promise<number> {
  const nc = await connect({ servers: testUrls.nats, name: 'bench-ingest-baseline' });
  const jsm = await jetstreamManager(nc);
  const name = `BENCH_BASE_${uniqueId('b').toUpperCase().replace(/-/g, '_')}`;
  const subject = `${name.toLowerCase()}.raw`;
  await jsm.streams.add({ name, subjects: [subject], duplicate_window: 120_000_000_000 });
  const js = jetstream(nc);
  let sent = 0;
  let acked = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const inflight = new Set<Promise<unknown>>();
  try {
    while (performance.now() < end) {
      while (inflight.size < window) {
        const p = js
          .publish(subject, payloads[sent % payloads.length]!, { msgID: `${name}-${sent++}` })
          .then(() => {
            acked++;
            inflight.delete(p);
          });
        inflight.add(p);
      }
      await Promise.race(inflight);
    }
    await Promise.all(inflight);
    return (acked * events) / ((performance.now() - start) / 1000);
  } finally {
    await jsm.streams.delete(name).catch(() => undefined);
    await nc.drain();
  }
}

function startGateway(env: Record<string, string>) {
  const proc = startBuiltApp('ingestion', env);
  const lines: string[] = [];
  const exited = new Promise((r) => proc.once('exit', r));
  const onData = (b: Buffer) => lines.push(...b.toString('utf8').split('\n').slice(0, 100));
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  return {
    exited,
    kill: (sig: NodeJS.Signals) => void proc.kill(sig),
    /** CPU time (user + system, ms) the gateway process used so far; undefined off Linux. */
    cpuMs(): number | undefined {
      try {
        const f = readFileSync(`/proc/${proc.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime in USER_HZ (100)
      } catch {
        return undefined;
      }
    },
    async waitForLine(re: RegExp, timeoutMs: number) {
      const end = Date.now() + timeoutMs;
      while (!lines.some((l) => re.test(l))) {
        if (Date.now() > end || proc.exitCode !== null)
          throw new Error(`gateway did not start: ${lines.slice(-20).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      lines.length = 0;
    },
  };
}

/** Extra flags of this bench (any other is refused). */
export const flags: BenchFlags = {
  streams: 'gRPC streams (default 4)',
  'in-flight': 'batches in flight per stream (default 16)',
  batch: 'events per batch (default 500)',
  limits:
    'where the device rate limits live, one phase each in this order: local, redis or e.g. local,redis (default redis)',
  tls: 'plaintext or TLS on the gateway and NATS hops, one phase each in this order: e.g. off,on,off,on (default: neither, the shared local NATS)',
};

/** A phase's NATS and gateway transport: the local NATS, or a private server in plaintext or TLS. */
interface Transport {
  tls: 'off' | 'on' | undefined;
  natsUrl: string;
  natsCa?: string;
  server?: TestCertificate;
  ca?: TestCa;
}

type LimitStore = 'local' | 'redis';

/** What one phase (one gateway process, one rate-limit store) measured. */
interface Phase {
  limits: LimitStore;
  tls: 'off' | 'on' | undefined;
  events_per_s: number;
  p50_ms: number;
  p99_ms: number;
  batches_acked: number;
  batches_stored_incl_warmup: number;
  retries: number;
  failures: number;
  skipped: number;
  seconds: number;
  /**
   * Gateway CPU (user + system) per 1,000 events accepted while measuring: steadier than events/s on
   * a shared machine, and what a Redis round trip per batch costs the gateway.
   */
  gateway_cpu_ms_per_1k_events: number | undefined;
}

async function runPhase(
  opts: Parameters<Bench>[0],
  limits: LimitStore,
  pool: TemplatePool,
  streams: number,
  inFlight: number,
  transport: Transport,
): Promise<Phase> {
  const tls = transport.tls === 'on';
  const ns = uniqueId('bench');
  const t = topology(ns);
  const grpcPort = await freePort();
  // The gateway runs as built for production (esbuild bundle on plain node): under tsx, the
  // source-map hooks make every Error nats.js creates per request expensive.
  const gateway = startGateway({
    NATS_URL: transport.natsUrl,
    ...(transport.natsCa ? { NATS_TLS_CA: transport.natsCa } : {}),
    ...(tls && transport.server
      ? { INGEST_TLS_CERT: transport.server.certFile, INGEST_TLS_KEY: transport.server.keyFile }
      : {}),
    SLUICE_NAMESPACE: ns,
    INGEST_GRPC_PORT: String(grpcPort),
    INGEST_HTTP_PORT: '0',
    OPS_PORT: '0',
    INGEST_HOST: '127.0.0.1',
    INGEST_REGIONS: 'eu-west',
    INGEST_AUTH_TOKENS: `${createHash('sha256').update(TOKEN).digest('hex')}=*`,
    // The bench re-sends a few devices' batches far faster than real devices: the limit never
    // refuses, but every batch is still checked against it (a Redis round trip with `redis`).
    INGEST_DEVICE_RATE: '1000000000',
    INGEST_DEVICE_BURST: '1000000000',
    INGEST_RATE_LIMIT_STORE: limits,
    REDIS_URL: testUrls.redis,
    INGEST_STREAM_MAX_AGE: '10m',
    OTEL_SDK_DISABLED: 'true',
    LOG_LEVEL: 'info',
  });
  const nc = await connect({
    servers: transport.natsUrl,
    name: 'bench-ingest',
    ...(transport.ca && tls ? { tls: { ca: transport.ca.cert } } : {}),
  });
  const jsm = await jetstreamManager(nc);
  try {
    await gateway.waitForLine(/ingestion running/, 60_000);
    const stats = new RunStats();
    const sender = new GrpcStreamSender(`127.0.0.1:${grpcPort}`, streams, stats, {
      token: TOKEN,
      maxInFlight: inFlight,
      ...(tls && transport.ca ? { tls: { ca: transport.ca.cert } } : {}),
    });
    // Warm-up (JIT, connections, stream files), then measure from zero.
    await generateLoad({
      sender,
      pool,
      stats,
      seconds: Math.min(2, opts.seconds),
      rate: opts.rate,
    });
    const warm = new RunStats();
    Object.assign(stats, warm);
    stats.latency.reset();
    stats.window.reset();
    let prev = 0;
    const cpu0 = gateway.cpuMs();
    const elapsed = await generateLoad({
      sender,
      pool,
      stats,
      seconds: opts.seconds,
      rate: opts.rate,
      onSecond: (s) => {
        process.stderr.write(
          `[limits=${limits}${transport.tls ? ` tls=${transport.tls}` : ''}] t=${s}s events/s=${stats.eventsAccepted - prev} acks=${stats.batchesAcked} retries=${stats.retries} p99=${stats.window.percentile(99).toFixed(1)}ms\n`,
        );
        prev = stats.eventsAccepted;
        stats.window.reset();
      },
    });
    const cpu1 = gateway.cpuMs();
    sender.close();
    const stored = (await jsm.streams.info(t.streams.raw.name)).state.messages;
    return {
      limits,
      tls: transport.tls,
      events_per_s: round(stats.eventsAccepted / elapsed, 0),
      p50_ms: round(stats.latency.percentile(50), 2),
      p99_ms: round(stats.latency.percentile(99), 2),
      batches_acked: stats.batchesAcked,
      batches_stored_incl_warmup: stored,
      retries: stats.retries,
      failures: stats.failures,
      skipped: stats.skipped,
      seconds: round(elapsed, 1),
      gateway_cpu_ms_per_1k_events:
        cpu0 === undefined || cpu1 === undefined || stats.eventsAccepted === 0
          ? undefined
          : round(((cpu1 - cpu0) * 1000) / stats.eventsAccepted, 3),
    };
  } finally {
    gateway.kill('SIGTERM');
    await Promise.race([gateway.exited, new Promise((r) => setTimeout(r, 15_000))]);
    gateway.kill('SIGKILL');
    await jsm.streams.delete(t.streams.raw.name).catch(() => undefined);
    await nc.drain();
  }
}

const bench: Bench = async (opts) => {
  const streams = Number(opts.flags['streams'] ?? 4);
  const inFlight = Number(opts.flags['in-flight'] ?? 16);
  const batchSize = Number(opts.flags['batch'] ?? 500);
  const phases = (opts.flags['limits'] ?? 'redis').split(',').map((x) => x.trim());
  for (const p of phases)
    if (p !== 'local' && p !== 'redis')
      throw new Error(`--limits takes local, redis or a comma list of them, got "${p}"`);
  const tlsPhases = opts.flags['tls']?.split(',').map((x) => x.trim());
  for (const t of tlsPhases ?? [])
    if (t !== 'on' && t !== 'off')
      throw new Error(`--tls takes on, off or a comma list of them, got "${t}"`);
  if (tlsPhases && phases.length > 1)
    throw new Error('--tls and several --limits phases: give one or the other');
  const pool = new TemplatePool(
    {
      devices: 50,
      sensorsPerDevice: 6,
      minHz: 50,
      maxHz: 1000,
      cameraFraction: 0.2,
      batchSize,
      regions: ['eu-west'],
    },
    32,
  );
  const events = pool.templateBatches[0]!.events;
  const bytesPerBatch = pool.templateBatches[0]!.bytes.length;
  const results: Phase[] = [];
  if (tlsPhases) {
    // Both modes on private nats-servers of the same binary, each started fresh for its phase.
    const ca = await createTestCa('bench-ingest-ca');
    try {
      const server = await ca.server();
      for (const mode of tlsPhases as Array<'on' | 'off'>) {
        const nats: PrivateServer = await privateNats(
          mode === 'on' ? ['--tls', '--tlscert', server.certFile, '--tlskey', server.keyFile] : [],
        );
        try {
          results.push(
            await runPhase(opts, phases[0] as LimitStore, pool, streams, inFlight, {
              tls: mode,
              natsUrl: mode === 'on' ? `tls://127.0.0.1:${nats.port}` : nats.url,
              ...(mode === 'on' ? { natsCa: ca.certFile } : {}),
              server,
              ca,
            }),
          );
        } finally {
          await nats.destroy();
        }
      }
    } finally {
      ca.remove();
    }
  } else {
    for (const p of phases as LimitStore[])
      results.push(
        await runPhase(opts, p, pool, streams, inFlight, {
          tls: undefined,
          natsUrl: testUrls.nats,
        }),
      );
  }
  const payloads = pool.templateBatches.map((b) =>
    encodeBatch({ batchId: 'x', events: b.batch.events }),
  );
  const ceiling = await baseline(payloads, events, Math.min(opts.seconds, 10), streams * inFlight);
  const main = results[results.length - 1]!;
  // Medians over the phases of each store: alternating phases and the median keep a busy machine's
  // swings (other processes) from deciding the comparison.
  const median = (
    store: LimitStore | 'tls-on' | 'tls-off',
    of: (p: Phase) => number | undefined,
  ) => {
    const xs = results
      .filter((r) =>
        store === 'tls-on'
          ? r.tls === 'on'
          : store === 'tls-off'
            ? r.tls === 'off'
            : r.limits === store,
      )
      .map(of)
      .filter((x): x is number => x !== undefined)
      .sort((a, b) => a - b);
    if (xs.length === 0) return undefined;
    const m = Math.floor(xs.length / 2);
    return xs.length % 2 ? xs[m]! : (xs[m - 1]! + xs[m]!) / 2;
  };
  const shared = median('redis', (p) => p.events_per_s);
  const local = median('local', (p) => p.events_per_s);
  const sharedCpu = median('redis', (p) => p.gateway_cpu_ms_per_1k_events);
  const localCpu = median('local', (p) => p.gateway_cpu_ms_per_1k_events);
  const tlsOn = median('tls-on', (p) => p.events_per_s);
  const tlsOff = median('tls-off', (p) => p.events_per_s);
  const tlsOnCpu = median('tls-on', (p) => p.gateway_cpu_ms_per_1k_events);
  const tlsOffCpu = median('tls-off', (p) => p.gateway_cpu_ms_per_1k_events);
  return {
    name: 'ingest',
    mode: opts.rate ? `open loop at ${opts.rate} events/s` : 'closed loop (max throughput)',
    events_per_s: main.events_per_s,
    p50_ms: main.p50_ms,
    p99_ms: main.p99_ms,
    gateway_cpu_ms_per_1k_events: main.gateway_cpu_ms_per_1k_events,
    baseline_events_per_s: round(ceiling, 0),
    limits: main.limits,
    ...(shared !== undefined && local !== undefined
      ? {
          shared_limits_events_per_s: round(shared, 0),
          local_limits_events_per_s: round(local, 0),
          shared_vs_local: round(shared / local, 3),
        }
      : {}),
    ...(sharedCpu !== undefined && localCpu !== undefined
      ? {
          shared_limits_gateway_cpu_ms_per_1k_events: round(sharedCpu, 3),
          local_limits_gateway_cpu_ms_per_1k_events: round(localCpu, 3),
          shared_vs_local_cpu: round(sharedCpu / localCpu, 3),
        }
      : {}),
    ...(tlsOn !== undefined && tlsOff !== undefined
      ? {
          tls_events_per_s: round(tlsOn, 0),
          plaintext_events_per_s: round(tlsOff, 0),
          tls_vs_plaintext: round(tlsOn / tlsOff, 3),
        }
      : {}),
    ...(tlsOnCpu !== undefined && tlsOffCpu !== undefined
      ? {
          tls_gateway_cpu_ms_per_1k_events: round(tlsOnCpu, 3),
          plaintext_gateway_cpu_ms_per_1k_events: round(tlsOffCpu, 3),
          tls_vs_plaintext_cpu: round(tlsOnCpu / tlsOffCpu, 3),
        }
      : {}),
    phases: results,
    offered_events_per_s: opts.rate ?? null,
    batch_events: events,
    batch_bytes: bytesPerBatch,
    streams,
    in_flight_per_stream: inFlight,
    batches_acked: main.batches_acked,
    batches_stored_incl_warmup: main.batches_stored_incl_warmup,
    retries: main.retries,
    failures: main.failures,
    skipped: main.skipped,
    seconds: main.seconds,
  };
};

/** The unit costs this bench measures (`--record` writes them to tools/bench/data/unit-costs.json). */
export const unitCosts = (r: BenchResult): UnitCostUpdate => ({
  // The plaintext phases' median when the run compared TLS, else the main phase's.
  gateway_cpu_ms_per_1k_events: {
    value:
      numberOf(r, 'plaintext_gateway_cpu_ms_per_1k_events') ??
      numberOf(r, 'gateway_cpu_ms_per_1k_events') ??
      NaN,
  },
});

export default bench;

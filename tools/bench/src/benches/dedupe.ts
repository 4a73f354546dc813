// `npm run bench -- dedupe [--seconds N] [--events-per-message 500] [--messages N] [--batch 64] [--dup-ratio 0] [--redis single,cluster] [--cluster-replicas 0]`
//
// Events/s through dedupe: pre-fills a raw stream with N EventBatch messages, runs the dedupe
// pipeline in this process (buildDedupe: the same code main.ts runs, against the local NATS and
// Redis) and measures the time until every clean message is in the clean stream. The baseline is the
// same pipeline with a claim store that answers "new" without any I/O: decode, build the clean
// payload (raw bytes with a new batch_id when all events are kept), publish and ack, i.e. the
// ceiling set by everything except Redis. `unguarded_events_per_s` is the same Redis claims without
// the re-seed guard (DEDUPE_RESEED=false). After the guarded run its claims are deleted and re-seeded
// from the clean stream it wrote: `reseed_claims_per_s`. Each run uses its own namespace (streams)
// and key prefix, deleted afterwards.
//
// `--redis single,cluster` runs the guarded dedupe run on each claim store in turn, in the same run:
// `single` is REDIS_URL (one Redis, as always), `cluster` a private Redis Cluster of 3 masters on
// loopback (redis-server processes started for the run and removed after; `--cluster-replicas` per
// master, default 0, so the comparison is 1 vs 3 masters doing the same claims). The cluster's results
// are the `cluster_*` fields; `cluster_vs_single` is the ratio of events/s. On the cluster,
// `cluster_redis_round_trips` counts pipelines (one per master per batch, sent in parallel) and the
// Redis CPU is summed over the masters.
import { join } from 'node:path';
import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ensureStream, publishDurable } from '@sluice/jetstream';
import {
  CONTENT_TYPES,
  encodeBatch,
  TelemetryEvent,
  topology,
  type Event,
  type Topology,
} from '@sluice/contracts';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { Registry } from 'prom-client';
import { percentile, round, type Bench, type BenchResult, type BenchFlags } from '../result';
import { numberOf, type UnitCostUpdate } from '../unit-costs';
import { redisCluster } from '@sluice/testing';

// tools may not depend on apps (module boundaries), yet the benchmark must run the service's own
// pipeline: the module is loaded by path at run time and typed by this minimal local view.
type ClaimResult = 'new' | 'ours' | 'theirs';
/** The claims of one handler batch (`ClaimBatch` in apps/dedupe). */
type ClaimRequests = { readonly length: number };
interface ClaimStore {
  claim(
    batch: ClaimRequests,
    opts?: { seedToken?: string; claimedAtMs?: number },
  ): Promise<ClaimResult[]>;
  isReady(): boolean;
  readonly guarded: boolean;
  probe(prefix: string): Promise<void>;
  beginSeed(prefix: string, token: string, ttlMs: number): Promise<string>;
  refreshSeed(prefix: string, token: string, ttlMs: number): Promise<boolean>;
  commitSeed(prefix: string, token: string): Promise<string>;
  releaseSeed(prefix: string, token: string): Promise<void>;
}
interface ReseedResult {
  outcome: string;
  messages: number;
  claims: number;
  seedMs: number;
}
interface StartableActor {
  start(): Promise<void>;
  stop(deadlineMs?: number): Promise<void>;
}
interface DedupeModule {
  buildDedupe(
    deps: {
      nc: NatsConnection;
      topology: Topology;
      claims: ClaimStore;
      log: ReturnType<typeof createLogger>;
      registry: Registry;
    },
    opts: {
      keyPrefix?: string;
      redisCluster?: boolean;
      batchMessages?: number;
      ackWaitMs?: number;
      concurrency?: number;
      reseedFenceMs?: number;
    },
  ): Promise<{
    actors: StartableActor[];
    publisher: { stop(): Promise<void> };
    recovery: { stop(): Promise<void> };
    reseed(reason?: string): Promise<ReseedResult | undefined>;
  }>;
  RedisClaimStore: new (opts: {
    redis: RedisLike;
    ttlMs: number;
    timeoutMs: number;
    guard?: boolean;
  }) => ClaimStore;
  connectRedis(opts: {
    url: string;
    commandTimeoutMs: number;
    log: ReturnType<typeof createLogger>;
  }): { redis: RedisLike; stoppable: { stop(): Promise<void> } };
  RedisClusterClaimStore: new (opts: {
    cluster: RedisLike;
    shards: number;
    ttlMs: number;
    timeoutMs: number;
  }) => ClaimStore;
  connectRedisCluster(opts: {
    urls: readonly string[];
    commandTimeoutMs: number;
    log: ReturnType<typeof createLogger>;
  }): {
    redis: RedisLike & { nodes(role: 'master'): RedisLike[] };
    stoppable: { stop(): Promise<void> };
  };
}
interface RedisLike {
  status: string;
  pipeline(): { exec(...args: unknown[]): Promise<unknown> };
  scan(cursor: string, ...args: Array<string | number>): Promise<[string, string[]]>;
  info(section: string): Promise<string>;
  unlink(...keys: string[]): Promise<number>;
}

const DEDUPE_MODULE = join(__dirname, '..', '..', '..', '..', 'apps', 'dedupe', 'src', 'index.ts');

const log = createLogger({
  service: 'bench-dedupe',
  level: 'warn',
  hashDeviceId: createDeviceHasher('bench-key-0123456789'),
});

/** Counts `pipeline().exec()` calls on the connection: each is one Redis round trip. */
function countRoundTrips(redis: RedisLike): { count: number } {
  const counter = { count: 0 };
  const pipeline = redis.pipeline.bind(redis);
  redis.pipeline = () => {
    const p = pipeline();
    const exec = p.exec.bind(p);
    p.exec = (...args: unknown[]) => {
      counter.count++;
      return exec(...args);
    };
    return p;
  };
  return counter;
}

/** Counts handler batches (each claims once) and times every claim call. */
class MeasuredClaims implements ClaimStore {
  calls = 0;
  requests = 0;
  readonly latencies: number[] = [];
  readonly guarded: boolean;
  constructor(private readonly inner: ClaimStore | undefined) {
    this.guarded = inner?.guarded ?? false;
  }
  isReady() {
    return this.inner?.isReady() ?? true;
  }
  async probe(prefix: string) {
    await this.inner?.probe(prefix);
  }
  beginSeed(prefix: string, token: string, ttlMs: number) {
    return this.inner ? this.inner.beginSeed(prefix, token, ttlMs) : Promise.resolve('valid');
  }
  refreshSeed(prefix: string, token: string, ttlMs: number) {
    return this.inner ? this.inner.refreshSeed(prefix, token, ttlMs) : Promise.resolve(true);
  }
  commitSeed(prefix: string, token: string) {
    return this.inner ? this.inner.commitSeed(prefix, token) : Promise.resolve('committed');
  }
  async releaseSeed(prefix: string, token: string) {
    await this.inner?.releaseSeed(prefix, token);
  }
  async claim(
    batch: ClaimRequests,
    opts?: { seedToken?: string; claimedAtMs?: number },
  ): Promise<ClaimResult[]> {
    // A re-seed's claims are not the pipeline's: not counted as batches.
    if (opts?.seedToken !== undefined) return this.inner!.claim(batch, opts);
    this.calls++;
    this.requests += batch.length;
    if (!this.inner) return new Array<ClaimResult>(batch.length).fill('new');
    const t = performance.now();
    const r = await this.inner.claim(batch);
    this.latencies.push(performance.now() - t);
    return r;
  }
}

/** Repeated events per message: the first `repeats` events of message m resend the last ones of m − 1. */
function repeatsPerMessage(perMessage: number, dupRatio: number): number {
  return Math.floor(perMessage * dupRatio);
}

function makeEvents(message: number, perMessage: number, dupRatio: number, runId: string): Event[] {
  const repeats = repeatsPerMessage(perMessage, dupRatio);
  return Array.from({ length: perMessage }, (_, j) => {
    // A resend repeats the whole reading (id, time, value) of an event the previous message carried
    // as its own: positions past `repeats` are always original, as dup-ratio is at most 0.5.
    const resend = message > 0 && j < repeats;
    const m = resend ? message - 1 : message;
    const i = resend ? perMessage - repeats + j : j;
    return {
      kind: {
        $case: 'telemetry' as const,
        value: TelemetryEvent.fromPartial({
          eventId: `${runId}-${m}-${i}`,
          deviceId: `dev-${i % 50}`,
          region: 'eu',
          sensorType: 'engine_temp',
          value: 20 + (i % 30),
          unit: 'C',
          eventTime: new Date(1_700_000_000_000 + m * 1000 + i),
          schemaVersion: 1,
        }),
      },
    };
  });
}

async function prefill(
  js: JetStreamClient,
  t: Topology,
  messages: number,
  perMessage: number,
  dupRatio: number,
  runId: string,
) {
  let next = 0;
  const worker = async () => {
    while (next < messages) {
      const m = next++;
      const batchId = `${runId}-b${m}`;
      await publishDurable(
        js,
        t.raw('eu'),
        encodeBatch({ batchId, events: makeEvents(m, perMessage, dupRatio, runId) }),
        {
          msgId: batchId,
          contentType: CONTENT_TYPES.EVENT_BATCH,
          timeoutMs: 30_000,
        },
      );
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

interface RunResult {
  seconds: number;
  cleanMessages: number;
  cleanEvents: number;
  /** A re-seed of this run's clean stream after its claims were deleted (guarded store only). */
  reseed?: ReseedResult | undefined;
  /** Redis server CPU seconds over the run, without the re-seed (when Redis is given). */
  redisCpu?: number;
  /** Redis round trips of the pipeline, without the re-seed's. */
  roundTrips?: number;
  /** CPU seconds of this process (where the dedupe actors run) over the run. */
  processCpu: number;
}

async function run(
  mod: DedupeModule,
  nc: NatsConnection,
  jsm: JetStreamManager,
  claims: MeasuredClaims,
  opts: {
    messages: number;
    perMessage: number;
    dupRatio: number;
    batch: number;
    concurrency: number;
    prefix: string;
    label: string;
    cluster?: boolean;
  },
  redis?: RedisLike,
  roundTrips?: { count: number },
): Promise<RunResult> {
  const ns = `bench-${opts.label}-${Date.now().toString(36)}`;
  const t = topology(ns);
  const js = jetstream(nc);
  try {
    await ensureStream(jsm, t.streams.raw);
    await prefill(js, t, opts.messages, opts.perMessage, opts.dupRatio, ns);
    const registry = new Registry();
    const keyPrefix = `${opts.prefix}${ns}:`;
    const dedupe = await mod.buildDedupe(
      { nc, topology: t, claims, log, registry },
      {
        keyPrefix,
        batchMessages: opts.batch,
        concurrency: opts.concurrency,
        reseedFenceMs: 3_000,
        ...(opts.cluster ? { redisCluster: true } : {}),
      },
    );
    const { actors, publisher } = dedupe;
    // A guarded store starts with no guard: seed the (empty) clean stream before the clock starts.
    if (claims.guarded) await dedupe.reseed('bench start');
    // dup-ratio ≤ 0.5: every message keeps some new events, so each yields one clean message.
    const expected = opts.messages;
    const cpu0 = redis ? await redisCpuSeconds(redis) : 0;
    const proc0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(actors.map((a) => a.start()));
    const deadline = Date.now() + 15 * 60_000;
    let info = await jsm.streams.info(t.streams.clean.name);
    while (info.state.messages < expected && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      info = await jsm.streams.info(t.streams.clean.name);
    }
    const seconds = (performance.now() - t0) / 1000;
    if (info.state.messages < expected)
      throw new Error(
        `${opts.label}: only ${info.state.messages} of ${expected} clean messages after 15 min`,
      );
    await Promise.all(actors.map((a) => a.stop(10_000)));
    await publisher.stop();
    const proc1 = process.cpuUsage(proc0);
    const published = await registry.getSingleMetric('sluice_events_published_total')?.get();
    const redisCpu = redis ? (await redisCpuSeconds(redis)) - cpu0 : undefined;
    const pipelineRoundTrips = roundTrips?.count;
    let reseed: ReseedResult | undefined;
    if (claims.guarded && redis) {
      // Redis "lost" this run's claims and guard: rebuild them from the clean stream just written.
      await deleteKeys(redis, keyPrefix);
      reseed = await dedupe.reseed('bench');
    }
    await dedupe.recovery.stop();
    return {
      seconds,
      cleanMessages: info.state.messages,
      cleanEvents: published?.values[0]?.value ?? 0,
      processCpu: (proc1.user + proc1.system) / 1e6,
      reseed,
      ...(redisCpu !== undefined ? { redisCpu } : {}),
      ...(pipelineRoundTrips !== undefined ? { roundTrips: pipelineRoundTrips } : {}),
    };
  } finally {
    for (const s of Object.values(t.streams))
      await jsm.streams.delete(s.name).catch(() => undefined);
  }
}

/** The servers behind a connection: every master of a cluster client, else the one Redis. */
function serversOf(redis: RedisLike): RedisLike[] {
  const nodes = (redis as RedisLike & { nodes?: (role: 'master') => RedisLike[] }).nodes;
  return nodes ? nodes.call(redis, 'master') : [redis];
}

/** Redis server CPU seconds (user + system, all threads; summed over a cluster's masters) so far. */
async function redisCpuSeconds(redis: RedisLike): Promise<number> {
  let sum = 0;
  for (const server of serversOf(redis)) {
    const info = await server.info('cpu');
    const field = (name: string) =>
      Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
    sum += field('used_cpu_sys') + field('used_cpu_user');
  }
  return sum;
}

async function deleteKeys(redis: RedisLike, prefix: string) {
  for (const server of serversOf(redis)) {
    let cursor = '0';
    let rounds = 0;
    do {
      const [next, keys] = await server.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 10_000);
      // One UNLINK per key: a cluster refuses a multi-key command across slots.
      await Promise.all(keys.map((k) => server.unlink(k)));
      cursor = next;
    } while (cursor !== '0' && ++rounds < 100_000);
  }
}

/** Extra flags of this bench (any other is refused). */
export const flags: BenchFlags = {
  'events-per-message': 'events per raw message (default 500)',
  messages: 'raw messages to pre-fill (default from --seconds)',
  batch: 'messages per pull (default 64)',
  concurrency: 'batches in flight (default 3, DEDUPE_CONCURRENCY)',
  'dup-ratio': 'fraction of duplicate events, 0..1 (default 0)',
  redis:
    'claim stores to run, comma-separated: single (REDIS_URL), cluster (a private 3-master Redis Cluster) (default single)',
  'cluster-replicas': 'replicas per master of the --redis cluster (default 0)',
};

const bench: Bench = async (opts) => {
  const perMessage = Number(opts.flags['events-per-message'] ?? 500);
  // Sized so the dedupe run lasts about --seconds at the 200k events/s target.
  const messages = Number(
    opts.flags['messages'] ?? Math.max(20, Math.round((opts.seconds * 200_000) / perMessage)),
  );
  const batch = Number(opts.flags['batch'] ?? 64);
  const concurrency = Number(opts.flags['concurrency'] ?? 3); // DEDUPE_CONCURRENCY's default
  const dupRatio = Number(opts.flags['dup-ratio'] ?? 0);
  if (!(
    perMessage > 0 &&
    messages > 0 &&
    batch > 0 &&
    concurrency > 0 &&
    dupRatio >= 0 &&
    dupRatio <= 0.5
  ))
    throw new Error('bad --events-per-message/--messages/--batch/--dup-ratio (0 to 0.5)');

  const mod = (await import(DEDUPE_MODULE)) as DedupeModule;
  const nc = await connect({
    servers: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222',
    name: 'bench-dedupe',
  });
  const jsm = await jetstreamManager(nc);
  const modes = (opts.flags['redis'] ?? 'single').split(',').map((m) => m.trim());
  if (!modes.length || modes.some((m) => m !== 'single' && m !== 'cluster'))
    throw new Error('bad --redis: single, cluster, or single,cluster');
  const clusterReplicas = Number(opts.flags['cluster-replicas'] ?? 0);
  if (!(Number.isInteger(clusterReplicas) && clusterReplicas >= 0))
    throw new Error('bad --cluster-replicas: a whole number ≥ 0');
  const prefix = `bench-dedupe-${Date.now().toString(36)}:`;
  const closers: Array<() => Promise<unknown>> = [];
  const common = { messages, perMessage, dupRatio, batch, concurrency, prefix };
  const total = messages * perMessage;

  /** The guarded dedupe run on one claim store, with what it cost Redis. */
  const measure = async (label: string, redis: RedisLike, store: ClaimStore, cluster: boolean) => {
    const roundTrips = countRoundTrips(redis);
    const claims = new MeasuredClaims(store);
    const dd = await run(mod, nc, jsm, claims, { ...common, label, cluster }, redis, roundTrips);
    const redisCpu = dd.redisCpu ?? Number.NaN;
    const lat = [...claims.latencies].sort((a, b) => a - b);
    return {
      dd,
      claims,
      fields: {
        events_per_s: Math.round(total / dd.seconds),
        p50_ms: round(percentile(lat, 50)),
        p99_ms: round(percentile(lat, 99)),
        reseed_claims: dd.reseed?.claims ?? 0,
        reseed_outcome: dd.reseed?.outcome ?? 'none',
        reseed_claims_per_s: dd.reseed
          ? Math.round(dd.reseed.claims / Math.max(0.001, dd.reseed.seedMs / 1000))
          : 0,
        clean_events: dd.cleanEvents,
        seconds: round(dd.seconds),
        batches: claims.calls,
        redis_round_trips: dd.roundTrips ?? 0,
        redis_round_trips_per_batch: round((dd.roundTrips ?? 0) / Math.max(1, claims.calls), 3),
        claims_per_round_trip: Math.round(claims.requests / Math.max(1, claims.calls)),
        // The Redis servers' CPU over the dedupe run (pre-fill included: it touches no Redis key).
        redis_cpu_us_per_claim: round((redisCpu * 1e6) / Math.max(1, claims.requests), 3),
        redis_busy_share: round(redisCpu / dd.seconds, 3),
        // This process's CPU over the guarded run: the dedupe actors, their NATS client and the
        // bench's progress polls (one stream info every 20 ms).
        dedupe_cpu_ms_per_1k_events: round((dd.processCpu * 1e6) / Math.max(1, total), 3),
      },
    };
  };

  try {
    const base = await run(mod, nc, jsm, new MeasuredClaims(undefined), {
      ...common,
      label: 'baseline',
    });
    let single: Awaited<ReturnType<typeof measure>> | undefined;
    let unguardedSeconds: number | undefined;
    if (modes.includes('single')) {
      const { redis, stoppable } = mod.connectRedis({
        url: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
        commandTimeoutMs: 10_000,
        log,
      });
      closers.push(async () => {
        await deleteKeys(redis, prefix).catch(() => undefined);
        await stoppable.stop();
      });
      const deadline = Date.now() + 10_000;
      while (redis.status !== 'ready' && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      // Without the guard: Redis trusted to keep its claims (DEDUPE_RESEED=false, the design before).
      const unguarded = await run(
        mod,
        nc,
        jsm,
        new MeasuredClaims(
          new mod.RedisClaimStore({ redis, ttlMs: 600_000, timeoutMs: 10_000, guard: false }),
        ),
        { ...common, label: 'unguarded' },
      );
      unguardedSeconds = unguarded.seconds;
      single = await measure(
        'dedupe',
        redis,
        new mod.RedisClaimStore({ redis, ttlMs: 600_000, timeoutMs: 10_000 }),
        false,
      );
    }
    let cluster: (Awaited<ReturnType<typeof measure>> & { masters: number }) | undefined;
    if (modes.includes('cluster')) {
      const servers = await redisCluster({ masters: 3, replicas: clusterReplicas });
      closers.push(() => servers.destroy());
      const { redis, stoppable } = mod.connectRedisCluster({
        urls: servers.url.split(','),
        commandTimeoutMs: 10_000,
        log,
      });
      closers.push(() => stoppable.stop());
      const deadline = Date.now() + 20_000;
      while (redis.status !== 'ready' && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const store = new mod.RedisClusterClaimStore({
        cluster: redis,
        shards: 64,
        ttlMs: 600_000,
        timeoutMs: 10_000,
      });
      cluster = {
        ...(await measure('cluster', redis, store, true)),
        masters: redis.nodes('master').length,
      };
    }
    const main = (single ?? cluster)!;
    const result: BenchResult = {
      name: 'dedupe',
      redis: single ? 'single' : 'cluster',
      ...main.fields,
      baseline_events_per_s: Math.round(total / base.seconds),
      ...(unguardedSeconds !== undefined
        ? {
            // The same Redis claims without the guard (DEDUPE_RESEED=false), measured in this run.
            unguarded_events_per_s: Math.round(total / unguardedSeconds),
          }
        : {}),
      latency_of: 'one Redis claim round trip (a whole batch)',
      messages,
      events_per_message: perMessage,
      events: total,
      dup_ratio: dupRatio,
      // Distinct events: the first message whole, then the originals of every later one.
      expected_clean_events:
        perMessage + (messages - 1) * (perMessage - repeatsPerMessage(perMessage, dupRatio)),
      baseline_seconds: round(base.seconds),
      concurrency,
      avg_messages_per_batch: round(messages / Math.max(1, main.claims.calls)),
      ...(cluster
        ? {
            cluster_masters: cluster.masters,
            cluster_replicas_per_master: clusterReplicas,
            ...Object.fromEntries(
              Object.entries(cluster.fields).map(([k, v]) => [`cluster_${k}`, v]),
            ),
            ...(single
              ? {
                  cluster_vs_single: round(
                    cluster.fields.events_per_s / Math.max(1, single.fields.events_per_s),
                    3,
                  ),
                }
              : {}),
          }
        : {}),
    };
    return result;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await nc.drain().catch(() => undefined);
  }
};

/** The unit costs this bench measures (`--record` writes them to tools/bench/data/unit-costs.json). */
export const unitCosts = (r: BenchResult): UnitCostUpdate => ({
  dedupe_cpu_ms_per_1k_events: { value: numberOf(r, 'dedupe_cpu_ms_per_1k_events') ?? NaN },
  // One claim per event: µs per claim = ms per 1,000 events.
  redis_cpu_ms_per_1k_events: { value: numberOf(r, 'redis_cpu_us_per_claim') ?? NaN },
});

export default bench;

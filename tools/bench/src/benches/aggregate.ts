// `npm run bench -- aggregate [--seconds N] [--rate N] [--events N] [--per-message N] [--devices N]`
//
// 1. Baseline: a backlog of clean EventBatch messages consumed by a bare actor that decodes and acks
//    (no aggregation): the ceiling of the consume path on this machine.
// 2. Throughput: the real aggregator process (apps/aggregator/src/main.ts) drains the same backlog
//    through its own durable consumer into a fresh PostgreSQL database: sustained events/s.
// 3. Freshness: events published at --rate for --seconds; probe readings are timed from publish until
//    the query API (/v1/devices/<probe>/latest) returns them: p50/p99.
import { createHash, randomBytes } from 'node:crypto';
import type { spawn } from 'node:child_process';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Actor, Outcomes } from '@sluice/actor';
import { publishDurable } from '@sluice/jetstream';
import { CONTENT_TYPES, decodeBatch, encodeBatch, topology, type Event } from '@sluice/contracts';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { createTestDatabase, freePort, testUrls, uniqueId, waitFor } from '@sluice/testing';
import { Client } from 'pg';
import { Registry } from 'prom-client';
import { startBuiltApp } from '../built-app';
import { cpuPerThousand, cpuSnapshot } from '../cpu';
import { percentile, round, type Bench, type BenchFlags, type BenchResult } from '../result';
import { numberOf, rollupRowBytes, type UnitCostUpdate } from '../unit-costs';

const SENSORS = ['temp', 'voltage', 'current'];

/** Extra flags of this bench (any other is refused). */
export const flags: BenchFlags = {
  events: 'backlog size in events (default min(2e6, seconds * 40000))',
  'per-message': 'events per message (default 100)',
  devices: 'distinct devices (default 500)',
  'publish-resolutions': 'AGGREGATOR_PUBLISH_RESOLUTIONS for the service under test',
};

const bench: Bench = async ({ seconds, rate, flags }) => {
  const perMessage = Number(flags['per-message'] ?? 100);
  const devices = Number(flags['devices'] ?? 500);
  const backlogEvents = Number(flags['events'] ?? Math.min(2_000_000, seconds * 40_000));
  const offered = rate ?? 50_000;
  const namespace = uniqueId('bagg');
  const topo = topology(namespace);
  const nc = await connect({ servers: testUrls.nats, name: 'bench-aggregate' });
  const js = jetstream(nc);
  const jsm = await js.jetstreamManager();
  const db = await createTestDatabase('bagg');
  const logger = createLogger({
    service: 'bench',
    level: 'warn',
    hashDeviceId: createDeviceHasher('bench-key-0123456789'),
  });
  let child: ReturnType<typeof spawn> | undefined;
  try {
    await jsm.streams.add({
      name: topo.streams.clean.name,
      subjects: [...topo.streams.clean.subjects],
    });

    let seq = 0;
    const batch = (n: number, at: () => number, extra: Event[] = []): Uint8Array => {
      const events: Event[] = extra.slice();
      for (let i = 0; i < n; i++) {
        const d = (seq * 7 + i) % devices;
        events.push({
          kind: {
            $case: 'telemetry',
            value: {
              eventId: `e${seq}-${i}`,
              deviceId: `dev-${d}`,
              eventTime: new Date(at()),
              sensorType: SENSORS[i % SENSORS.length]!,
              value: ((i * 37) % 1000) / 10,
              unit: '1',
              firmwareVersion: '',
              region: 'eu',
              schemaVersion: 0,
              attributes: {},
            },
          },
        });
      }
      seq++;
      return encodeBatch({ batchId: `b${seq}`, events });
    };
    const publish = (data: Uint8Array) =>
      publishDurable(js, topo.clean('eu'), data, {
        msgId: `raw:BENCH:${seq}`,
        contentType: CONTENT_TYPES.EVENT_BATCH,
      });

    // Backlog: event times spread over the last minutes, in order.
    const messages = Math.ceil(backlogEvents / perMessage);
    const base = Date.now() - 10 * 60_000;
    const t0Pub = Date.now();
    for (let i = 0; i < messages; i += 500) {
      const acks = [];
      for (let j = i; j < Math.min(messages, i + 500); j++)
        acks.push(publish(batch(perMessage, () => base + j * 10)));
      await Promise.all(acks);
    }
    const publishS = (Date.now() - t0Pub) / 1000;
    const total = messages * perMessage;

    // 1. Baseline: decode + ack only.
    let seen = 0;
    const baselineStart = Date.now();
    const actor = new Actor<number>({
      service: 'bench-baseline',
      nc,
      stream: topo.streams.clean,
      consumer: { durable: 'baseline' },
      dlq: { stream: topo.streams.dlq, subject: topo.dlq('bench-baseline') },
      decode: (m) => decodeBatch(m.data).events.length,
      handle: async (b) => {
        for (const d of b) seen += d.value;
        return b.map(() => Outcomes.ack());
      },
      batch: { maxMessages: 2000, lingerMs: 100 },
      prefetch: { maxBytes: 16 * 1024 * 1024 },
      logger,
      registry: new Registry(),
    });
    await actor.start();
    await waitFor('baseline drained', () => seen >= total, { timeoutMs: 600_000, intervalMs: 20 });
    const baselineS = (Date.now() - baselineStart) / 1000;
    await actor.stop();

    // 2. Throughput of the real service over the same backlog.
    const apiPort = await freePort();
    const opsPort = await freePort();
    // The query API needs a bearer token; this one may read every region.
    const apiToken = randomBytes(24).toString('hex');
    const env = {
      ...process.env,
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: namespace,
      PG_URL: db.url,
      AGGREGATOR_API_PORT: String(apiPort),
      AGGREGATOR_API_TOKENS: `${createHash('sha256').update(apiToken).digest('hex')}=*`,
      OPS_PORT: String(opsPort),
      LOG_LEVEL: 'warn',
      OTEL_SDK_DISABLED: 'true',
      // e.g. BENCH_CHILD_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles only the service.
      ...(process.env.BENCH_CHILD_NODE_OPTIONS
        ? { NODE_OPTIONS: process.env.BENCH_CHILD_NODE_OPTIONS }
        : {}),
      ...(flags['publish-resolutions']
        ? { AGGREGATOR_PUBLISH_RESOLUTIONS: flags['publish-resolutions'] }
        : {}),
    };
    child = startBuiltApp('aggregator', env as Record<string, string>, 'inherit-stderr');
    // Timed from the first delivery: process start-up (build, migrations) is not throughput.
    await waitFor(
      'aggregator consuming',
      async () =>
        ((await jsm.consumers.info(topo.streams.clean.name, 'aggregator').catch(() => undefined))
          ?.delivered.stream_seq ?? 0) > 0,
      { timeoutMs: 120_000, intervalMs: 20 },
    );
    const cpuGroups = { service: child.pid ?? 0, servers: ['postgres', 'nats-server'] };
    const cpuStart = cpuSnapshot(cpuGroups);
    const aggStart = Date.now();
    await waitFor(
      'aggregator drained the backlog',
      async () => {
        const info = await jsm.consumers
          .info(topo.streams.clean.name, 'aggregator')
          .catch(() => undefined);
        return (
          info !== undefined &&
          info.num_pending === 0 &&
          info.num_ack_pending === 0 &&
          info.delivered.stream_seq >= messages
        );
      },
      { timeoutMs: 900_000, intervalMs: 50 },
    );
    const aggS = (Date.now() - aggStart) / 1000;
    const cpu = cpuPerThousand(cpuStart, cpuSnapshot(cpuGroups), total);

    // 3. Freshness at the offered rate.
    const latencies: number[] = [];
    const pending = new Map<string, number>();
    const perTick = Math.max(1, Math.round((offered * 0.05) / perMessage)); // messages every 50 ms
    const end = Date.now() + seconds * 1000;
    let probes = 0;
    let published = 0;
    const poller = (async () => {
      while (Date.now() < end + 10_000 && (Date.now() < end || pending.size > 0)) {
        await Promise.all(
          [...pending].map(async ([id, at]) => {
            const res = await fetch(`http://127.0.0.1:${apiPort}/v1/devices/${id}/latest`, {
              headers: { authorization: `Bearer ${apiToken}` },
            }).catch(() => undefined);
            if (res?.status === 200) {
              latencies.push(Date.now() - at);
              pending.delete(id);
            } else {
              await res?.arrayBuffer();
            }
          }),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    let tick = Date.now();
    while (Date.now() < end) {
      const acks = [];
      for (let k = 0; k < perTick; k++) {
        let extra: Event[] = [];
        if (k === 0 && pending.size < 50) {
          const id = `probe-${probes++}`;
          extra = [
            {
              kind: {
                $case: 'telemetry',
                value: {
                  eventId: id,
                  deviceId: id,
                  eventTime: new Date(),
                  sensorType: 'probe',
                  value: 1,
                  unit: '1',
                  firmwareVersion: '',
                  region: 'eu',
                  schemaVersion: 0,
                  attributes: {},
                },
              },
            },
          ];
          pending.set(id, Date.now());
        }
        acks.push(publish(batch(perMessage, () => Date.now(), extra)));
        published += perMessage;
      }
      await Promise.all(acks);
      tick += 50;
      const wait = tick - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const achieved = published / seconds;
    await poller;
    const sorted = latencies.sort((a, b) => a - b);
    const metrics = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
    const metric = (re: RegExp) => Number(re.exec(metrics)?.[1] ?? NaN);
    const flushSum = metric(/^sluice_aggregator_flush_duration_seconds_sum\{[^}]*\} ([\d.e+-]+)/m);
    const flushCount = metric(
      /^sluice_aggregator_flush_duration_seconds_count\{[^}]*\} ([\d.e+-]+)/m,
    );
    const rollups = [
      ...metrics.matchAll(/^sluice_aggregator_rollups_published_total\{[^}]*\} ([\d.e+-]+)/gm),
    ].reduce((n, m) => n + Number(m[1]), 0);
    // Bytes per roll-up row as the service stored them (every partition, indexes included).
    const pg = new Client({ connectionString: db.url });
    await pg.connect();
    const rowBytes = await rollupRowBytes(pg).finally(() => pg.end());
    return {
      name: 'aggregate',
      events_per_s: round(total / aggS, 0),
      p50_ms: round(percentile(sorted, 50), 1),
      p99_ms: round(percentile(sorted, 99), 1),
      baseline_events_per_s: round(total / baselineS, 0),
      backlog_events: total,
      events_per_message: perMessage,
      devices,
      backlog_publish_events_per_s: round(total / publishS, 0),
      freshness_offered_events_per_s: offered,
      freshness_achieved_events_per_s: round(achieved, 0),
      freshness_probes: sorted.length,
      freshness_probes_unseen: pending.size,
      flushes: flushCount,
      mean_flush_ms: round((flushSum / flushCount) * 1000, 1),
      rollups_published: rollups,
      // CPU ms per 1,000 backlog events while the service drained it (the closer included): a
      // measure of work that machine load moves less than wall-clock events/s.
      drain_cpu_ms_per_1k_events: cpu,
      rollup_row_bytes: rowBytes !== undefined ? round(rowBytes, 1) : null,
    };
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 60_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    for (const s of Object.values(topo.streams))
      await jsm.streams.delete(s.name).catch(() => undefined);
    await nc.drain().catch(() => undefined);
    await db.drop().catch(() => undefined);
  }
};

/** The unit costs this bench measures (`--record` writes them to tools/bench/data/unit-costs.json). */
export const unitCosts = (r: BenchResult): UnitCostUpdate => ({
  aggregator_cpu_ms_per_1k_events: {
    value: numberOf(r, 'drain_cpu_ms_per_1k_events', 'service') ?? NaN,
  },
  aggregator_postgres_cpu_ms_per_1k_events: {
    value: numberOf(r, 'drain_cpu_ms_per_1k_events', 'postgres') ?? NaN,
  },
  rollup_row_bytes: { value: numberOf(r, 'rollup_row_bytes') ?? NaN },
});

export default bench;

// `npm run bench -- archive [--seconds N] [--events N] [--batch N] [--max-age D] [--encode-thread B]`:
// a backlog of clean batches (N = seconds × 100,000 events by default: a 10 s drain at the 100,000
// events/s target) is published into a private namespace first, then the archiver runs as production runs it
// (the esbuild bundle on plain node, filesystem store in a temporary folder) and drains it. events/s
// is the backlog over the time from the archiver's first delivery to the consumer's ack floor
// reaching the last message (every event durable in a committed file, journal and manifests written).
//
// Baseline in the same run: the archiver's own encode pipeline on the same clean batch payloads in
// this process, without NATS, actor, store or journal: wire scan and partitioning on this thread,
// sort, columns and Parquet (ZSTD) of each partition on the archiver's encoder thread, overlapped as
// the archiver overlaps them, timed after a warm-up (the archiver's thread lives as long as the
// service), the faster of two passes. It is the ceiling of the archiver's CPU path.
//
// Bytes per event on disk: the Parquet files the archiver wrote, the same events as JSONL.gz (the
// archive's other format, cut into the baseline's segments), and the raw protobuf of the batches.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, jetstreamManager, jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { CONTENT_TYPES, encodeBatch, replayConsumerDescription, topology } from '@sluice/contracts';
import { ensureStream, publishDurable } from '@sluice/jetstream';
import { telemetryEvent } from '@sluice/sinks-core/testing';
import { testUrls, uniqueId, waitFor } from '@sluice/testing';
// The encode path under test, by path: the bench measures the archiver's own code (no app barrel).
// eslint-disable-next-line @nx/enforce-module-boundaries
import { SegmentEvents } from '../../../../apps/archiver/src/columns';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { SegmentEncoder } from '../../../../apps/archiver/src/encoder';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { scanBatch } from '../../../../apps/archiver/src/wire';
import { ROOT, startBuiltApp } from '../built-app';
import { cpuPerThousand, cpuSnapshot } from '../cpu';
import { round, type Bench, type BenchFlags, type BenchResult } from '../result';
import { numberOf, type UnitCostUpdate } from '../unit-costs';

export const flags: BenchFlags = {
  events: 'events in the backlog (default seconds * 100000)',
  batch: 'events per clean batch (default 100)',
  'max-age': 'ARCHIVER_FILE_MAX_AGE of the archiver under test (default 1s)',
  'encode-thread':
    'ARCHIVER_ENCODE_THREAD of the archiver under test and the baseline (default true)',
};

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** Messages per segment in the baseline: about what the archiver cuts per second at 100,000 events/s. */
const BASELINE_SEGMENT_MESSAGES = 1_000;

/**
 * The archiver's encode pipeline over the payloads: segments of {@link BASELINE_SEGMENT_MESSAGES}
 * scanned and partitioned on this thread, each handed to the archiver's encoder thread while the
 * next is scanned (as the archiver overlaps them), one file per partition and format. Returns the
 * files' total bytes.
 */
async function encodeAll(
  payloads: readonly Uint8Array[],
  format: 'parquet' | 'jsonl.gz',
  stream: string,
  encoder: SegmentEncoder | undefined,
): Promise<number> {
  const none = new Set<number>();
  const pending: Array<Promise<Uint8Array[]>> = [];
  for (let from = 0; from < payloads.length; from += BASELINE_SEGMENT_MESSAGES) {
    const seg = new SegmentEvents();
    payloads.slice(from, from + BASELINE_SEGMENT_MESSAGES).forEach((p, i) =>
      seg.add(
        scanBatch(p),
        {
          stream,
          seq: from + i + 1,
          storedAt: Date.UTC(2026, 10, 1),
          subjectRegion: () => 'eu-west',
        },
        none,
      ),
    );
    const jobs = seg.sorted().map((partition) => ({ partition, format, opts: {} }));
    if (encoder) pending.push(encoder.encode(seg, jobs));
    else {
      pending.push(Promise.resolve(jobs.map((j) => seg.encode(j.partition, j.format))));
      seg.release();
    }
  }
  let bytes = 0;
  for (const files of await Promise.all(pending)) for (const f of files) bytes += f.length;
  return bytes;
}

const bench: Bench = async ({ seconds, flags }) => {
  const total = Number(flags['events'] ?? Math.round(seconds * 100_000));
  const batchSize = Number(flags['batch'] ?? 100);
  const maxAge = flags['max-age'] ?? '1s';
  const encodeThread = (flags['encode-thread'] ?? 'true') !== 'false';
  const run = uniqueId('ab');
  const topo = topology(run);
  const nc = await connect({ servers: testUrls.nats, name: 'bench-archive' });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-archive-'));
  const base = Date.UTC(2026, 10, 1);
  let child: ReturnType<typeof startBuiltApp> | undefined;
  try {
    await ensureStream(jsm, topo.streams.clean);
    const payloads: Uint8Array[] = [];
    let protoBytes = 0;
    const pending: Array<Promise<unknown>> = [];
    const publishStarted = performance.now();
    for (let b = 0; b * batchSize < total; b++) {
      const events = Array.from({ length: Math.min(batchSize, total - b * batchSize) }, (_, i) => {
        const n = b * batchSize + i;
        return telemetryEvent(`${run}-${n}`, {
          deviceId: `dev-${n % 1000}`,
          region: 'eu-west',
          value: (n % 997) / 10,
          time: new Date(base + n * 50),
          attributes: { site: `plant-${n % 7}` },
        });
      });
      const payload = encodeBatch({ batchId: `${run}-${b}`, events });
      payloads.push(payload);
      protoBytes += payload.length;
      pending.push(
        publishDurable(js, topo.clean('eu-west'), payload, {
          msgId: `${run}-${b}`,
          contentType: CONTENT_TYPES.EVENT_BATCH,
        }),
      );
      if (pending.length >= 256) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    const publishSeconds = (performance.now() - publishStarted) / 1000;
    const stream = topo.streams.clean.name;
    const last = (await jsm.streams.info(stream)).state.last_seq;

    // Ceiling: the same payloads through the archiver's encode path, in this process, timed once its
    // encoder thread is warm (the archiver's thread starts with the service and stays).
    const encoder = encodeThread ? new SegmentEncoder() : undefined;
    let baselineSeconds: number;
    let jsonlBytes: number;
    try {
      await encodeAll(payloads.slice(0, 3 * BASELINE_SEGMENT_MESSAGES), 'parquet', stream, encoder);
      // A ceiling: the faster of two passes (other processes on the machine only ever slow one).
      baselineSeconds = Number.POSITIVE_INFINITY;
      for (let pass = 0; pass < 2; pass++) {
        const t0 = performance.now();
        await encodeAll(payloads, 'parquet', stream, encoder);
        baselineSeconds = Math.min(baselineSeconds, (performance.now() - t0) / 1000);
      }
      jsonlBytes = await encodeAll(payloads, 'jsonl.gz', stream, encoder);
    } finally {
      await encoder?.close();
    }

    child = startBuiltApp(
      'archiver',
      {
        NATS_URL: testUrls.nats,
        SLUICE_NAMESPACE: run,
        ARCHIVER_DIR: dir,
        ARCHIVER_FILE_MAX_AGE: maxAge,
        ARCHIVER_ENCODE_THREAD: String(encodeThread),
        ARCHIVER_RETENTION_INTERVAL: '0',
        ARCHIVER_COMPACTION_INTERVAL: '0',
        OTEL_SDK_DISABLED: 'true',
        OPS_PORT: '0',
        OPS_HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        // e.g. BENCH_CHILD_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles only the service.
        ...(process.env.BENCH_CHILD_NODE_OPTIONS
          ? { NODE_OPTIONS: process.env.BENCH_CHILD_NODE_OPTIONS }
          : {}),
      },
      'inherit-stderr',
    );
    const exited = new Promise((r) => child!.once('exit', r));
    // Timed from the first delivery: process start-up is not throughput.
    await waitFor(
      'archiver consuming',
      async () =>
        ((await jsm.consumers.info(stream, 'archiver').catch(() => undefined))?.delivered
          .stream_seq ?? 0) > 0,
      { timeoutMs: 120_000, intervalMs: 10 },
    );
    const cpuGroups = { service: child.pid ?? 0, servers: ['nats-server'] };
    const cpuStart = cpuSnapshot(cpuGroups);
    const started = performance.now();
    await waitFor(
      'archiver drained the backlog',
      async () =>
        ((await jsm.consumers.info(stream, 'archiver').catch(() => undefined))?.ack_floor
          .stream_seq ?? 0) >= last,
      { timeoutMs: 900_000, intervalMs: 20 },
    );
    const archiveSeconds = (performance.now() - started) / 1000;
    const cpu = cpuPerThousand(cpuStart, cpuSnapshot(cpuGroups), total);
    const files = walk(dir).filter((p) => p.endsWith('.parquet'));
    const parquetBytes = files.reduce((n, p) => n + statSync(p).size, 0);
    child.kill('SIGTERM');
    await exited;
    child = undefined;

    // Replay: the built `sluice replay` reads the whole archive back and re-publishes every batch to a
    // replay subject (a declared target nobody drains), against the same batches published straight
    // to JetStream above (256 in flight, as the replay's default) as its ceiling.
    await ensureStream(jsm, topo.streams.replay);
    await jsm.consumers.add(topo.streams.replay.name, {
      durable_name: 'bench-replay',
      ack_policy: AckPolicy.Explicit,
      filter_subject: topo.replayFilter('bench'),
      description: replayConsumerDescription('store'),
    });
    execFileSync(process.execPath, [join(ROOT, 'tools/build/build.mjs'), 'apps/cli'], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    const replayStarted = performance.now();
    const out = execFileSync(
      process.execPath,
      [
        join(ROOT, 'dist', 'apps', 'cli', 'main.js'),
        'replay',
        '--target',
        'bench',
        '--from',
        new Date(base).toISOString(),
        '--to',
        new Date(base + total * 50 + 1).toISOString(),
        '--archive',
        dir,
        '--checkpoint',
        join(dir, 'replay-checkpoint.json'),
        '--json',
      ],
      {
        cwd: ROOT,
        env: { ...process.env, NATS_URL: testUrls.nats, SLUICE_NAMESPACE: run },
        stdio: ['ignore', 'pipe', 'ignore'],
        maxBuffer: 1 << 20,
      },
    );
    const replaySeconds = (performance.now() - replayStarted) / 1000;
    const replayed = (
      JSON.parse(out.toString('utf8').trim().split('\n').pop()!) as { events: number }
    ).events;
    if (replayed !== total) throw new Error(`replay published ${replayed} of ${total} events`);
    return {
      name: 'archive',
      events: total,
      events_per_s: round(total / archiveSeconds, 0),
      baseline_events_per_s: round(total / baselineSeconds, 0),
      seconds: round(archiveSeconds, 2),
      parquet_files: files.length,
      file_max_age: maxAge,
      encode_thread: encodeThread,
      cpu_ms_per_1k_events: cpu,
      bytes_per_event_parquet: round(parquetBytes / total, 2),
      bytes_per_event_jsonl_gz: round(jsonlBytes / total, 2),
      bytes_per_event_protobuf: round(protoBytes / total, 2),
      replay_events_per_s: round(total / replaySeconds, 0),
      replay_baseline_events_per_s: round(total / publishSeconds, 0),
    };
  } finally {
    child?.kill('SIGKILL');
    await jsm.streams.delete(topo.streams.clean.name).catch(() => undefined);
    await jsm.streams.delete(topo.streams.dlq.name).catch(() => undefined);
    await jsm.streams.delete(topo.streams.replay.name).catch(() => undefined);
    // The archiver's leader lease bucket (apps/archiver/src/lease.ts `leaseBucket`).
    await jsm.streams.delete(`KV_${run}_archiver-lease_archiver`).catch(() => undefined);
    await nc.drain();
    rmSync(dir, { recursive: true, force: true });
  }
};

/** The unit costs this bench measures (`--record` writes them to tools/bench/data/unit-costs.json). */
export const unitCosts = (r: BenchResult): UnitCostUpdate => ({
  protobuf_bytes_per_event: { value: numberOf(r, 'bytes_per_event_protobuf') ?? NaN },
  parquet_bytes_per_event: { value: numberOf(r, 'bytes_per_event_parquet') ?? NaN },
  jsonl_gz_bytes_per_event: { value: numberOf(r, 'bytes_per_event_jsonl_gz') ?? NaN },
  archiver_cpu_ms_per_1k_events: { value: numberOf(r, 'cpu_ms_per_1k_events', 'total') ?? NaN },
});

export default bench;

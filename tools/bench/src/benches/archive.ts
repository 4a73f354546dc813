// `npm run bench -- archive [--events N] [--batch N]`: N events published as clean batches into a
// private namespace first, then the archiver started as a real process (filesystem store, a temporary
// folder) drains them; events/s is N over the time from its start-up line to the consumer's ack floor
// reaching the last message. Baseline in the same run: a bare Parquet encode (rows, sort, ZSTD write)
// of the same events in this process, the ceiling of the archiver's CPU path. Bytes per event on disk:
// the archived Parquet files, the same rows as JSONL.gz, and the raw protobuf of the clean batches.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { CONTENT_TYPES, encodeBatch, topology, type Event } from '@sluice/contracts';
import { ensureStream, publishDurable } from '@sluice/jetstream';
import { telemetryEvent } from '@sluice/sinks-core/testing';
import { spawnService, testUrls, uniqueId } from '@sluice/testing';
// The encoder under test, by path: the bench measures the archiver's own code (no app barrel exists).
// eslint-disable-next-line @nx/enforce-module-boundaries
import {
  compareRows,
  encodeJsonlGz,
  encodeParquet,
  toRow,
  type Row,
  type Rows,
} from '../../../../apps/archiver/src/schema';
import { round, type Bench, type BenchFlags } from '../result';

export const flags: BenchFlags = {
  events: 'events to archive (default 200000)',
  batch: 'events per clean batch (default 100)',
};

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

const bench: Bench = async ({ flags }) => {
  const total = Number(flags['events'] ?? 200_000);
  const batchSize = Number(flags['batch'] ?? 100);
  const run = uniqueId('ab');
  const topo = topology(run);
  const nc = await connect({ servers: testUrls.nats, name: 'bench-archive' });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-archive-'));
  const base = Date.UTC(2026, 10, 1);
  try {
    await ensureStream(jsm, topo.streams.clean);
    const batches: Event[][] = [];
    for (let b = 0; b * batchSize < total; b++) {
      batches.push(
        Array.from({ length: Math.min(batchSize, total - b * batchSize) }, (_, i) => {
          const n = b * batchSize + i;
          return telemetryEvent(`${run}-${n}`, {
            deviceId: `dev-${n % 1000}`,
            region: 'eu-west',
            value: (n % 997) / 10,
            time: new Date(base + n * 50),
            attributes: { site: `plant-${n % 7}` },
          });
        }),
      );
    }
    let protoBytes = 0;
    const pending: Array<Promise<unknown>> = [];
    for (let b = 0; b < batches.length; b++) {
      const payload = encodeBatch({ batchId: `${run}-${b}`, events: batches[b]! });
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

    // Ceiling: the same events through the archiver's encode path, in this process.
    const t0 = performance.now();
    const rows = batches.flatMap((events, b) =>
      events.map((e) => toRow(e, { stream_seq: b + 1, batch_id: `${run}-${b}`, stored_at: base })),
    ) as Row[];
    const byDate = new Map<string, Row[]>();
    for (const r of rows) {
      const d = new Date((r as { event_time: number }).event_time).toISOString().slice(0, 10);
      (byDate.get(d) ?? byDate.set(d, []).get(d)!).push(r);
    }
    for (const part of byDate.values())
      encodeParquet({ dataset: 'telemetry', rows: part.sort(compareRows) } as Rows);
    const baselineSeconds = (performance.now() - t0) / 1000;
    let jsonlBytes = 0;
    for (const part of byDate.values())
      jsonlBytes += encodeJsonlGz({ dataset: 'telemetry', rows: part } as Rows).length;

    const svc = spawnService('apps/archiver/src/main.ts', {
      NATS_URL: testUrls.nats,
      SLUICE_NAMESPACE: run,
      ARCHIVER_DIR: dir,
      ARCHIVER_FILE_MAX_AGE: '2s',
      ARCHIVER_RETENTION_INTERVAL: '0',
      ARCHIVER_COMPACTION_INTERVAL: '0',
      OTEL_SDK_DISABLED: 'true',
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
    });
    try {
      await svc.waitForLine(/archiver running/, 60_000);
      const started = performance.now();
      const last = (await jsm.streams.info(topo.streams.clean.name)).state.last_seq;
      for (let i = 0; i < 6_000; i++) {
        const info = await jsm.consumers
          .info(topo.streams.clean.name, 'archiver')
          .catch(() => undefined);
        if (info && info.ack_floor.stream_seq >= last) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const seconds = (performance.now() - started) / 1000;
      const parquetBytes = walk(dir)
        .filter((p) => p.endsWith('.parquet'))
        .reduce((n, p) => n + statSync(p).size, 0);
      return {
        name: 'archive',
        events: total,
        events_per_s: round(total / seconds, 0),
        baseline_events_per_s: round(total / baselineSeconds, 0),
        parquet_bytes_per_event: round(parquetBytes / total, 2),
        jsonl_gz_bytes_per_event: round(jsonlBytes / total, 2),
        protobuf_bytes_per_event: round(protoBytes / total, 2),
      };
    } finally {
      svc.kill('SIGTERM');
      await svc.exited;
    }
  } finally {
    await jsm.streams.delete(topo.streams.clean.name).catch(() => undefined);
    await jsm.streams.delete(topo.streams.dlq.name).catch(() => undefined);
    await nc.drain();
    rmSync(dir, { recursive: true, force: true });
  }
};

export default bench;

import { createHash } from 'node:crypto';
import { SpanKind } from '@opentelemetry/api';
import { tracer, type Logger } from '@sluice/observability';
import {
  ArchiveStateError,
  compactedFileName,
  manifestKey,
  partitionKey,
  type PartitionRef,
  readManifest,
  updateManifest,
  type ManifestFile,
  compareRows,
  decodeParquet,
  encodeParquet,
  rowTime,
  type Row,
  type Rows,
  type ObjectStore,
  bounds,
  listPartitions,
} from '@sluice/archive';
import type { ArchiverMetrics } from './metrics';

export interface CompactionOptions {
  /** Files smaller than this are merged. Default 32 MiB. */
  smallFileBytes?: number;
  /** Largest output (sum of the inputs' sizes). Default 128 MiB. */
  targetBytes?: number;
  /** Objects in a partition folder that its manifest does not list, older than this, are removed. Default 1 h. */
  orphanAgeMs?: number;
  rowGroupRows?: number;
  now?: number;
  log: Logger;
  metrics?: ArchiverMetrics;
}

export interface CompactionResult {
  partition: string;
  /** Names merged away. */
  merged: string[];
  /** New files. */
  outputs: string[];
  /** Unlisted leftovers removed. */
  orphansRemoved: string[];
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Groups of at least two small Parquet files, in name order, each up to `targetBytes`. */
function plan(files: ManifestFile[], small: number, target: number): ManifestFile[][] {
  const candidates = files.filter((f) => f.format === 'parquet' && f.bytes < small);
  const groups: ManifestFile[][] = [];
  let cur: ManifestFile[] = [];
  let bytes = 0;
  for (const f of candidates) {
    if (cur.length > 0 && bytes + f.bytes > target) {
      groups.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(f);
    bytes += f.bytes;
  }
  groups.push(cur);
  return groups.filter((g) => g.length >= 2);
}

/**
 * Merges a partition's small Parquet files into larger ones. For each group: read the inputs (their
 * checksums verified against the manifest), write the merged rows (sorted) under a name derived from
 * the inputs, swap the manifest by compare-and-swap only if every input is still listed, then delete
 * the inputs. Idempotent (a rerun after a crash rewrites the same output name), safe with the archiver
 * writing into the same partition (its files are added by the same compare-and-swap), and the row set
 * is unchanged.
 */
export async function compactPartition(
  store: ObjectStore,
  ref: PartitionRef,
  opts: CompactionOptions,
): Promise<CompactionResult> {
  const result: CompactionResult = {
    partition: partitionKey(ref),
    merged: [],
    outputs: [],
    orphansRemoved: [],
  };
  const span = tracer('@sluice/archiver').startSpan('archive compaction', {
    kind: SpanKind.INTERNAL,
    attributes: { 'sluice.archive.partition': result.partition },
  });
  try {
    const { manifest } = await readManifest(store, ref);
    for (const group of plan(
      manifest.files,
      opts.smallFileBytes ?? 32 * 1024 * 1024,
      opts.targetBytes ?? 128 * 1024 * 1024,
    )) {
      const rows: Row[] = [];
      let dataset = ref.dataset;
      for (const f of group) {
        const body = await store.get(`${result.partition}/${f.name}`);
        if (!body)
          throw new ArchiveStateError(
            `${result.partition}/${f.name} is listed in the manifest but missing`,
          );
        if (sha256(body) !== f.sha256)
          throw new ArchiveStateError(
            `${result.partition}/${f.name} does not match its manifest checksum`,
          );
        const decoded = decodeParquet(body);
        dataset = decoded.dataset;
        for (const r of decoded.rows as Row[]) rows.push(r);
      }
      rows.sort(compareRows);
      const first = Math.min(...group.map((f) => f.firstSeq));
      const last = Math.max(...group.map((f) => f.lastSeq));
      const inputs = group.map((f) => f.name);
      const name = compactedFileName(first, last, inputs);
      const body = encodeParquet({ dataset, rows } as Rows, {
        rowGroupRows: opts.rowGroupRows,
        metadata: {
          'sluice.first_seq': String(first),
          'sluice.last_seq': String(last),
          'sluice.compacted_from': inputs.join(','),
        },
      });
      const span = bounds(rows.map(rowTime));
      const entry: ManifestFile = {
        name,
        format: 'parquet',
        rows: rows.length,
        bytes: body.length,
        sha256: sha256(body),
        minEventTime: new Date(span.min).toISOString(),
        maxEventTime: new Date(span.max).toISOString(),
        firstSeq: first,
        lastSeq: last,
        writtenAt: new Date().toISOString(),
        origin: 'compaction',
      };
      await store.put(`${result.partition}/${name}`, body);
      let swapped = false;
      const after = await updateManifest(store, ref, (m) => {
        const listed = new Set(m.files.map((f) => f.name));
        if (!inputs.every((n) => listed.has(n))) return undefined;
        swapped = true;
        return [...m.files.filter((f) => !inputs.includes(f.name)), entry];
      });
      if (!swapped) {
        // Another pass merged (or retention removed) some input first: leave its result alone.
        if (!after.files.some((f) => f.name === name))
          await store.delete(`${result.partition}/${name}`);
        continue;
      }
      for (const n of inputs) await store.delete(`${result.partition}/${n}`);
      result.merged.push(...inputs);
      result.outputs.push(name);
      opts.metrics?.filesCompacted.inc({ dataset: ref.dataset }, inputs.length);
      opts.metrics?.filesWritten.inc({ dataset: ref.dataset, format: 'parquet' });
      opts.metrics?.bytesWritten.inc({ dataset: ref.dataset, format: 'parquet' }, body.length);
      opts.log.info(
        { partition: result.partition, inputs: inputs.length, output: name, rows: rows.length },
        'archive files compacted',
      );
    }
    // Leftovers of crashed passes (an output never swapped in, inputs never deleted), old enough that
    // no running commit can still be about to list them.
    const { manifest: now } = await readManifest(store, ref);
    const listed = new Set(now.files.map((f) => f.name));
    const cutoff = (opts.now ?? Date.now()) - (opts.orphanAgeMs ?? 3_600_000);
    for (const o of await store.list(`${result.partition}/`)) {
      const name = o.key.slice(result.partition.length + 1);
      if (
        o.key === manifestKey(ref) ||
        name.includes('/') ||
        listed.has(name) ||
        o.modifiedMs > cutoff
      )
        continue;
      await store.delete(o.key);
      result.orphansRemoved.push(name);
    }
    span.setAttribute('sluice.archive.files_merged', result.merged.length);
    return result;
  } finally {
    span.end();
  }
}

/** Compacts every partition (bounded by the listing); errors of one partition are logged, not fatal. */
export async function compactAll(
  store: ObjectStore,
  opts: CompactionOptions,
): Promise<CompactionResult[]> {
  const out: CompactionResult[] = [];
  for (const ref of await listPartitions(store)) {
    try {
      out.push(await compactPartition(store, ref, opts));
    } catch (err) {
      opts.log.error(
        { err, partition: partitionKey(ref) },
        'compaction of a partition failed; next pass retries',
      );
    }
  }
  return out;
}

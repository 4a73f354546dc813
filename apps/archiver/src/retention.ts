import { SpanKind } from '@opentelemetry/api';
import { tracer, type Logger } from '@sluice/observability';
import {
  DATASETS,
  listPartitions,
  manifestKey,
  partitionKey,
  type ObjectStore,
  type PartitionRef,
} from '@sluice/archive';
import type { ArchiverMetrics } from './metrics';

const DAY_MS = 86_400_000;

/** Whether every event of the partition is older than `retentionMs` at `now`. */
export function isExpired(ref: PartitionRef, retentionMs: number, now: number): boolean {
  return Date.parse(`${ref.eventDate}T00:00:00Z`) + DAY_MS <= now - retentionMs;
}

/**
 * Removes the partitions whose whole event day is older than `retentionMs`: data files first, the
 * manifest last (a pass interrupted half-way is finished by the next one). Never touches a partition
 * still in the window, nor anything outside the dataset folders (the journal).
 */
export async function expirePartitions(
  store: ObjectStore,
  opts: { retentionMs: number; now?: number; log: Logger; metrics?: ArchiverMetrics },
): Promise<PartitionRef[]> {
  const now = opts.now ?? Date.now();
  const span = tracer('@sluice/archiver').startSpan('archive retention', {
    kind: SpanKind.INTERNAL,
  });
  const removed: PartitionRef[] = [];
  try {
    for (const ref of await listPartitions(store)) {
      if (!isExpired(ref, opts.retentionMs, now)) continue;
      const prefix = `${partitionKey(ref)}/`;
      const manifest = manifestKey(ref);
      const objects = await store.list(prefix);
      for (const o of objects) if (o.key !== manifest) await store.delete(o.key);
      await store.delete(manifest);
      if ('removeEmptyDirs' in store)
        await (store as unknown as { removeEmptyDirs(p: string): Promise<void> }).removeEmptyDirs(
          `${ref.dataset}/region=${ref.region}`,
        );
      removed.push(ref);
      opts.metrics?.partitionsExpired.inc({ dataset: ref.dataset });
      opts.log.info(
        { partition: partitionKey(ref), objects: objects.length },
        'expired archive partition removed',
      );
    }
    span.setAttribute('sluice.archive.partitions_removed', removed.length);
    return removed;
  } finally {
    span.end();
  }
}

/**
 * The S3 bucket lifecycle configuration equivalent to the retention (for `PutBucketLifecycleConfiguration`
 * or `aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration file://…`). S3 expires
 * by object age, not by event date, so an object is kept one day past the retention; incomplete
 * multipart uploads are aborted after a day. Only the dataset folders are covered: the journal under
 * `_sluice/` must never expire.
 */
export function lifecycleConfiguration(
  prefix: string,
  retentionMs: number,
): {
  Rules: Array<{
    ID: string;
    Status: 'Enabled';
    Filter: { Prefix: string };
    Expiration: { Days: number };
    AbortIncompleteMultipartUpload: { DaysAfterInitiation: number };
  }>;
} {
  const base = prefix.replace(/^\/+|\/+$/g, '');
  const days = Math.max(1, Math.ceil(retentionMs / DAY_MS)) + 1;
  return {
    Rules: DATASETS.map((dataset) => ({
      ID: `sluice-archive-${dataset}-retention`,
      Status: 'Enabled' as const,
      Filter: { Prefix: `${base ? `${base}/` : ''}${dataset}/` },
      Expiration: { Days: days },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
    })),
  };
}

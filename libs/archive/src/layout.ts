// Object names of the archive. Everything a reader needs is in the path:
//   <dataset>/region=<region>/event_date=<YYYY-MM-DD>/part-<tag>-<first>-<last>.parquet
//   <dataset>/region=<region>/event_date=<YYYY-MM-DD>/_manifest.json
//   _sluice/archiver/<durable>/journal.json
import { createHash } from 'node:crypto';
import type { Dataset } from './schema';

/** One Hive partition of one dataset. */
export interface PartitionRef {
  dataset: Dataset;
  region: string;
  /** `YYYY-MM-DD` (UTC) of the event time. */
  eventDate: string;
}

export type FileFormat = 'parquet' | 'jsonl.gz';

const SEQ_WIDTH = 12;

/** A region as a safe path segment: letters, digits, `_`, `-`, `.`; anything else becomes `_`; empty is `unknown`. */
export function regionSegment(region: string): string {
  const r = region
    .trim()
    .replace(/[^A-Za-z0-9_.-]/g, '_')
    .slice(0, 64);
  return r === '' || r === '.' || r === '..' ? 'unknown' : r;
}

/** UTC date of epoch ms as `YYYY-MM-DD`. */
export function eventDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function partitionKey(p: PartitionRef): string {
  return `${p.dataset}/region=${p.region}/event_date=${p.eventDate}`;
}

export function manifestKey(p: PartitionRef): string {
  return `${partitionKey(p)}/_manifest.json`;
}

/** Parses `<dataset>/region=<r>/event_date=<d>[/...]`; undefined for anything else. */
export function parsePartition(key: string): PartitionRef | undefined {
  const m = /^(telemetry|detections)\/region=([^/]+)\/event_date=(\d{4}-\d{2}-\d{2})(\/|$)/.exec(
    key,
  );
  return m ? { dataset: m[1] as Dataset, region: m[2]!, eventDate: m[3]! } : undefined;
}

/**
 * A short tag of the stream incarnation (name + creation time): a stream deleted and created again
 * restarts its sequences at 1, and its files must not overwrite the old ones.
 */
export function streamTag(stream: string, created: string): string {
  return createHash('sha256').update(`${stream}\n${created}`).digest('hex').slice(0, 8);
}

function pad(n: number): string {
  return String(n).padStart(SEQ_WIDTH, '0');
}

/**
 * The deterministic name of a segment's file in one partition: the stream tag and the first and last
 * stream sequence of the messages whose events it holds. The same messages always give the same name.
 */
export function segmentFileName(
  tag: string,
  firstSeq: number,
  lastSeq: number,
  format: FileFormat,
): string {
  return `part-${tag}-${pad(firstSeq)}-${pad(lastSeq)}.${format}`;
}

/** The name of a compaction's output: its inputs' sequence span plus a hash of their names. */
export function compactedFileName(
  firstSeq: number,
  lastSeq: number,
  inputs: readonly string[],
): string {
  const h = createHash('sha256')
    .update([...inputs].sort().join('\n'))
    .digest('hex')
    .slice(0, 10);
  return `compact-${pad(firstSeq)}-${pad(lastSeq)}-${h}.parquet`;
}

export function journalKey(durable: string): string {
  return `_sluice/archiver/${durable}/journal.json`;
}

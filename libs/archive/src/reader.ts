// Reading the archive back for replay: which files a selection touches (from the manifests, the
// partitions' source of truth), and each file's rows regrouped into the clean batches that carried
// them, in their original order, as events of the proto contract.
import { createHash } from 'node:crypto';
import type { Event } from '@sluice/contracts';
import { listPartitions } from './catalog';
import { ArchiveStateError } from './errors';
import { partitionKey, type PartitionRef } from './layout';
import { readManifest, type ManifestFile } from './manifest';
import { decodeParquet, rowTime, type Dataset, type Row, type TelemetryRow } from './schema';
import type { ObjectStore } from './store/types';

/** What to read back. Times are event times (device clock), epoch ms, `[from, to)`. */
export interface ArchiveSelection {
  from: number;
  to: number;
  /** Only these regions (path segments). Default all. */
  regions?: readonly string[];
  /** Only these device ids. Default all. */
  devices?: readonly string[];
  /** Only telemetry of these sensor types (detections have none and are then left out). Default all. */
  sensors?: readonly string[];
  /** Only these datasets. Default both. */
  datasets?: readonly Dataset[];
}

/** One Parquet file the selection reads, with what its manifest says about it. */
export interface SelectedFile {
  partition: PartitionRef;
  file: ManifestFile;
  /** Object key. */
  key: string;
}

/**
 * The events of one original clean batch that fall in one file and pass the selection: a replay
 * re-publishes each as one message.
 */
export interface ArchivedBatch {
  /**
   * Identity of the batch's slice in this partition: original stream, sequence and storage time (a
   * recreated stream restarts its sequences), and the partition. Stable across runs and compactions.
   */
  key: string;
  stream: string;
  seq: number;
  /** When JetStream stored the original batch, epoch ms. */
  storedAt: number;
  batchId: string;
  region: string;
  dataset: Dataset;
  /** Position in the original batch of each event, ascending; same order as `events`. */
  indexes: number[];
  events: Event[];
}

const DAY_MS = 86_400_000;

/** Rejects a selection that cannot be read (bad range); the CLI turns these into usage errors. */
export function checkSelection(s: ArchiveSelection): void {
  if (!Number.isFinite(s.from) || !Number.isFinite(s.to))
    throw new ArchiveStateError('the time range must have a finite start and end');
  if (s.from >= s.to)
    throw new ArchiveStateError(
      `the time range is empty: ${new Date(s.from).toISOString()} is not before ${new Date(s.to).toISOString()}`,
    );
}

function partitionOverlaps(p: PartitionRef, s: ArchiveSelection): boolean {
  if (s.datasets && !s.datasets.includes(p.dataset)) return false;
  if (s.regions && !s.regions.includes(p.region)) return false;
  if (s.sensors && p.dataset !== 'telemetry') return false;
  const start = Date.parse(`${p.eventDate}T00:00:00Z`);
  return start < s.to && start + DAY_MS > s.from;
}

/**
 * The Parquet files of every partition the selection overlaps whose event-time span overlaps the
 * range, in a stable order (partition key, then file name): the order a replay and its checkpoint
 * follow. Partitions without Parquet (JSONL-only archives) are refused: replay reads Parquet.
 */
export async function selectFiles(
  store: ObjectStore,
  s: ArchiveSelection,
): Promise<SelectedFile[]> {
  checkSelection(s);
  const partitions = (await listPartitions(store))
    .filter((p) => partitionOverlaps(p, s))
    .sort((a, b) => (partitionKey(a) < partitionKey(b) ? -1 : 1));
  const out: SelectedFile[] = [];
  for (const p of partitions) {
    const { manifest: m } = await readManifest(store, p);
    const parquet = m.files.filter((f) => f.format === 'parquet');
    if (parquet.length === 0 && m.files.length > 0)
      throw new ArchiveStateError(
        `partition ${partitionKey(p)} has no Parquet files (only ${m.files[0]!.format}); replay reads Parquet`,
      );
    for (const f of [...parquet].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (Date.parse(f.minEventTime) >= s.to || Date.parse(f.maxEventTime) < s.from) continue;
      out.push({ partition: p, file: f, key: `${partitionKey(p)}/${f.name}` });
    }
  }
  return out;
}

function rowMatches(r: Row, s: ArchiveSelection, devices?: Set<string>, sensors?: Set<string>) {
  const t = rowTime(r);
  if (t < s.from || t >= s.to) return false;
  if (devices && !devices.has(r.device_id)) return false;
  if (sensors && !('sensor_type' in r && sensors.has(r.sensor_type))) return false;
  return true;
}

/** The event of an archived row, as the clean stream carried it (times at millisecond precision). */
export function rowToEvent(r: Row, region: string): Event {
  if ('sensor_type' in r) {
    const t = r as TelemetryRow;
    return {
      kind: {
        $case: 'telemetry',
        value: {
          eventId: t.event_id,
          deviceId: t.device_id,
          eventTime: new Date(t.event_time),
          sensorType: t.sensor_type,
          value: t.value,
          unit: t.unit,
          firmwareVersion: t.firmware_version,
          region,
          schemaVersion: t.schema_version,
          attributes: { ...t.attributes },
        },
      },
    };
  }
  return {
    kind: {
      $case: 'detection',
      value: {
        eventId: r.event_id,
        deviceId: r.device_id,
        streamId: r.stream_id,
        frameTime: new Date(r.frame_time),
        region,
        schemaVersion: r.schema_version,
        firmwareVersion: r.firmware_version,
        attributes: { ...r.attributes },
        detections: r.detections.map((d) => ({
          objectId: d.object_id,
          classId: d.class_id,
          label: d.label,
          confidence: d.confidence,
          trackerId: d.tracker_id,
          ...(d.bbox ? { bbox: { ...d.bbox } } : {}),
        })),
      },
    },
  };
}

/**
 * Reads one selected file, checks it against its manifest checksum, and regroups the rows that pass
 * the selection into their original batches, ordered by stream sequence, events by batch position.
 */
export async function readBatches(
  store: ObjectStore,
  f: SelectedFile,
  s: ArchiveSelection,
): Promise<{ batches: ArchivedBatch[]; bytes: number; rows: number }> {
  const body = await store.get(f.key);
  if (!body) throw new ArchiveStateError(`${f.key} is listed in its manifest but missing`);
  const sha = createHash('sha256').update(body).digest('hex');
  if (sha !== f.file.sha256)
    throw new ArchiveStateError(
      `${f.key} does not match its manifest checksum (sha256 ${sha}, manifest ${f.file.sha256})`,
    );
  const { rows } = decodeParquet(body);
  const devices = s.devices ? new Set(s.devices) : undefined;
  const sensors = s.sensors ? new Set(s.sensors) : undefined;
  const groups = new Map<string, { rows: Row[]; first: Row }>();
  for (const r of rows as Row[]) {
    if (!rowMatches(r, s, devices, sensors)) continue;
    const id = `${r.stream}:${r.stream_seq}:${r.stored_at}`;
    const g = groups.get(id);
    if (g) g.rows.push(r);
    else groups.set(id, { rows: [r], first: r });
  }
  const pk = partitionKey(f.partition);
  const batches = [...groups.entries()]
    .map(([id, g]) => {
      g.rows.sort((a, b) => a.batch_index - b.batch_index);
      return {
        key: `${id}:${pk}`,
        stream: g.first.stream,
        seq: g.first.stream_seq,
        storedAt: g.first.stored_at,
        batchId: g.first.batch_id,
        region: f.partition.region,
        dataset: f.partition.dataset,
        indexes: g.rows.map((r) => r.batch_index),
        events: g.rows.map((r) => rowToEvent(r, f.partition.region)),
      };
    })
    .sort((a, b) => a.storedAt - b.storedAt || a.seq - b.seq);
  return { batches, bytes: body.byteLength, rows: rows.length };
}

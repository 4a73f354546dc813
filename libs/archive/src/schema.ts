// The archive's columns, derived from the proto contract (sluice.telemetry.v1): one dataset per event
// kind. Partition columns (`region`, `event_date`) live in the path only, as Hive layouts expect.
// Changing a column is a new ARCHIVE_SCHEMA_VERSION; readers see it in every file's metadata.
import {
  AsyncByteQueue,
  Field,
  Float32,
  Float64,
  Int64,
  List,
  Map_,
  RecordBatch,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  Uint32,
  Utf8,
  makeData,
  tableFromIPC,
  type Data,
  type DataType,
} from 'apache-arrow';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as pq from 'parquet-wasm/node';
import type { Event } from '@sluice/contracts';
import { detectionRecords, type DetectionRecord } from '@sluice/sinks-core';

/** Version of the archive's file layout (columns and their types), in every file's key-value metadata. */
export const ARCHIVE_SCHEMA_VERSION = 2;

export type Dataset = 'telemetry' | 'detections';
export const DATASETS: readonly Dataset[] = ['telemetry', 'detections'];

/** Where a row came from in the clean stream (kept in the file for audit and replay). */
export interface Provenance {
  /** Name of the clean stream the batch was consumed from. */
  stream: string;
  /** JetStream stream sequence of the clean batch that carried the event. */
  stream_seq: number;
  /** Position of the event in that batch (a replay rebuilds the batch in this order). */
  batch_index: number;
  /** `EventBatch.batch_id`. */
  batch_id: string;
  /** When JetStream stored the clean batch (epoch ms). */
  stored_at: number;
}

export interface TelemetryRow extends Provenance {
  event_id: string;
  device_id: string;
  /** Epoch ms, UTC. */
  event_time: number;
  sensor_type: string;
  value: number;
  unit: string;
  firmware_version: string;
  schema_version: number;
  attributes: Record<string, string>;
}

export interface DetectionRow extends Provenance {
  event_id: string;
  device_id: string;
  stream_id: string;
  /** Epoch ms, UTC. */
  frame_time: number;
  firmware_version: string;
  schema_version: number;
  attributes: Record<string, string>;
  detections: DetectionRecord[];
}

export type Row = TelemetryRow | DetectionRow;

/** Every row of one file: the dataset says which shape. */
export type Rows =
  { dataset: 'telemetry'; rows: TelemetryRow[] } | { dataset: 'detections'; rows: DetectionRow[] };

const ts = () => new TimestampMillisecond('UTC');
const mapType = () =>
  new Map_<Utf8, Utf8>(
    new Field(
      'entries',
      new Struct([new Field('key', new Utf8(), false), new Field('value', new Utf8(), true)]),
      false,
    ),
    false,
  );
const bboxType = () =>
  new Struct([
    new Field('left', new Float32(), false),
    new Field('top', new Float32(), false),
    new Field('width', new Float32(), false),
    new Field('height', new Float32(), false),
  ]);
const detectionType = () =>
  new Struct([
    new Field('object_id', new Utf8(), false),
    new Field('class_id', new Uint32(), false),
    new Field('label', new Utf8(), false),
    new Field('confidence', new Float32(), false),
    new Field('tracker_id', new Utf8(), false),
    new Field('bbox', bboxType(), true),
  ]);

const provenanceFields = () => [
  new Field('stream', new Utf8(), false),
  new Field('stream_seq', new Int64(), false),
  new Field('batch_index', new Uint32(), false),
  new Field('batch_id', new Utf8(), false),
  new Field('stored_at', ts(), false),
];

/** The Arrow schema of each dataset (Parquet logical types follow from it). */
export const ARROW_SCHEMAS: Record<Dataset, Schema> = {
  telemetry: new Schema([
    new Field('event_id', new Utf8(), false),
    new Field('device_id', new Utf8(), false),
    new Field('event_time', ts(), false),
    new Field('sensor_type', new Utf8(), false),
    new Field('value', new Float64(), false),
    new Field('unit', new Utf8(), false),
    new Field('firmware_version', new Utf8(), false),
    new Field('schema_version', new Uint32(), false),
    new Field('attributes', mapType(), false),
    ...provenanceFields(),
  ]),
  detections: new Schema([
    new Field('event_id', new Utf8(), false),
    new Field('device_id', new Utf8(), false),
    new Field('stream_id', new Utf8(), false),
    new Field('frame_time', ts(), false),
    new Field('firmware_version', new Utf8(), false),
    new Field('schema_version', new Uint32(), false),
    new Field('attributes', mapType(), false),
    new Field('detections', new List(new Field('item', detectionType(), false)), false),
    ...provenanceFields(),
  ]),
};

/** The dataset an event belongs to. */
export function datasetOf(event: Event): Dataset {
  return event.kind?.$case === 'detection' ? 'detections' : 'telemetry';
}

/** The event's time (device clock) in epoch ms, or undefined when it has none. */
export function eventTimeMs(event: Event): number | undefined {
  const k = event.kind;
  if (!k) return undefined;
  const t = k.$case === 'telemetry' ? k.value.eventTime : k.value.frameTime;
  const ms = t?.getTime();
  return ms === undefined || Number.isNaN(ms) ? undefined : ms;
}

/** The row of an event (kind set, checked by the caller). */
export function toRow(event: Event, prov: Provenance): Row {
  const k = event.kind!;
  if (k.$case === 'telemetry') {
    const e = k.value;
    return {
      event_id: e.eventId,
      device_id: e.deviceId,
      event_time: e.eventTime!.getTime(),
      sensor_type: e.sensorType,
      value: e.value,
      unit: e.unit,
      firmware_version: e.firmwareVersion,
      schema_version: e.schemaVersion,
      attributes: e.attributes,
      ...prov,
    };
  }
  const e = k.value;
  return {
    event_id: e.eventId,
    device_id: e.deviceId,
    stream_id: e.streamId,
    frame_time: e.frameTime!.getTime(),
    firmware_version: e.firmwareVersion,
    schema_version: e.schemaVersion,
    attributes: e.attributes,
    detections: detectionRecords(e.detections),
    ...prov,
  };
}

/** Event time of a row (epoch ms). */
export function rowTime(row: Row): number {
  return 'event_time' in row ? row.event_time : row.frame_time;
}

/**
 * The order of rows inside a file: (device_id, event time), then event_id so the order is total and
 * a rewrite of the same rows produces the same bytes.
 */
export function compareRows(a: Row, b: Row): number {
  if (a.device_id !== b.device_id) return a.device_id < b.device_id ? -1 : 1;
  const ta = rowTime(a);
  const tb = rowTime(b);
  if (ta !== tb) return ta - tb;
  return a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0;
}

// Columns are built straight into Arrow buffers: apache-arrow's generic builders cost ~20 µs a value,
// which alone would cap the archiver far below its target.
type AnyData = Data<DataType>;

function utf8(values: readonly string[]): AnyData {
  const offsets = new Int32Array(values.length + 1);
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    total += Buffer.byteLength(values[i]!, 'utf8');
    offsets[i + 1] = total;
  }
  const buf = Buffer.allocUnsafe(total);
  for (let i = 0; i < values.length; i++) buf.write(values[i]!, offsets[i]!, 'utf8');
  return makeData({
    type: new Utf8(),
    length: values.length,
    nullCount: 0,
    valueOffsets: offsets,
    data: new Uint8Array(buf.buffer, buf.byteOffset, total),
  }) as AnyData;
}

function f64(values: readonly number[]): AnyData {
  return makeData({
    type: new Float64(),
    length: values.length,
    nullCount: 0,
    data: Float64Array.from(values),
  }) as AnyData;
}

function f32(values: readonly number[]): AnyData {
  return makeData({
    type: new Float32(),
    length: values.length,
    nullCount: 0,
    data: Float32Array.from(values),
  }) as AnyData;
}

function u32(values: readonly number[]): AnyData {
  return makeData({
    type: new Uint32(),
    length: values.length,
    nullCount: 0,
    data: Uint32Array.from(values),
  }) as AnyData;
}

function i64(values: readonly number[]): AnyData {
  const a = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) a[i] = BigInt(values[i]!);
  return makeData({ type: new Int64(), length: values.length, nullCount: 0, data: a }) as AnyData;
}

function tsMs(values: readonly number[]): AnyData {
  const a = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) a[i] = BigInt(values[i]!);
  return makeData({ type: ts(), length: values.length, nullCount: 0, data: a }) as AnyData;
}

function stringMap(values: ReadonlyArray<Record<string, string>>): AnyData {
  const offsets = new Int32Array(values.length + 1);
  const keys: string[] = [];
  const vals: string[] = [];
  for (let i = 0; i < values.length; i++) {
    for (const [k, v] of Object.entries(values[i]!)) {
      keys.push(k);
      vals.push(v);
    }
    offsets[i + 1] = keys.length;
  }
  const type = mapType();
  const entries = makeData({
    type: type.children[0]!.type as Struct,
    length: keys.length,
    nullCount: 0,
    children: [utf8(keys), utf8(vals)],
  });
  return makeData({
    type,
    length: values.length,
    nullCount: 0,
    valueOffsets: offsets,
    child: entries,
  }) as AnyData;
}

function detectionList(values: ReadonlyArray<DetectionRow['detections']>): AnyData {
  const offsets = new Int32Array(values.length + 1);
  const flat: Array<DetectionRow['detections'][number]> = [];
  for (let i = 0; i < values.length; i++) {
    for (const d of values[i]!) flat.push(d);
    offsets[i + 1] = flat.length;
  }
  const bitmap = new Uint8Array(Math.ceil(flat.length / 8));
  let nulls = 0;
  flat.forEach((d, i) => {
    if (d.bbox) bitmap[i >> 3]! |= 1 << (i & 7);
    else nulls++;
  });
  const box = (k: 'left' | 'top' | 'width' | 'height') => f32(flat.map((d) => d.bbox?.[k] ?? 0));
  const bbox = makeData({
    type: bboxType(),
    length: flat.length,
    nullCount: nulls,
    nullBitmap: nulls ? bitmap : null,
    children: [box('left'), box('top'), box('width'), box('height')],
  });
  const item = makeData({
    type: detectionType(),
    length: flat.length,
    nullCount: 0,
    children: [
      utf8(flat.map((d) => d.object_id)),
      u32(flat.map((d) => d.class_id)),
      utf8(flat.map((d) => d.label)),
      f32(flat.map((d) => d.confidence)),
      utf8(flat.map((d) => d.tracker_id)),
      bbox as AnyData,
    ],
  });
  return makeData({
    type: new List(new Field('item', detectionType(), false)),
    length: values.length,
    nullCount: 0,
    valueOffsets: offsets,
    child: item,
  }) as AnyData;
}

function buildColumn(field: Field, values: unknown[]): AnyData {
  switch (field.name) {
    case 'attributes':
      return stringMap(values as Array<Record<string, string>>);
    case 'detections':
      return detectionList(values as Array<DetectionRow['detections']>);
    case 'stream_seq':
      return i64(values as number[]);
    case 'event_time':
    case 'frame_time':
    case 'stored_at':
      return tsMs(values as number[]);
    case 'value':
      return f64(values as number[]);
    case 'schema_version':
    case 'batch_index':
      return u32(values as number[]);
    default:
      return utf8(values as string[]);
  }
}

/** Sorted rows as an Arrow table of the dataset's schema. */
export function toArrow(data: Rows): Table {
  const schema = ARROW_SCHEMAS[data.dataset];
  const rows = data.rows as Row[];
  const children = schema.fields.map((f) =>
    buildColumn(
      f,
      rows.map((r) => (r as unknown as Record<string, unknown>)[f.name]),
    ),
  );
  const struct = makeData({
    type: new Struct(schema.fields),
    length: rows.length,
    nullCount: 0,
    children,
  });
  return new Table(schema, new RecordBatch(schema, struct));
}

export interface ParquetOptions {
  /** Rows per row group (each with min/max statistics per column). Default 131 072. */
  rowGroupRows?: number;
  /**
   * Not applied: parquet-wasm's writer takes ZSTD without a level (it uses the codec's default level);
   * kept so callers that pass it still compile.
   */
  zstdLevel?: number;
  /** Extra key-value metadata (provenance of the file). */
  metadata?: Record<string, string>;
}

/** The bytes of a string column: `offsets` has one more entry than the column has values. */
export interface Utf8ColumnData {
  kind: 'utf8';
  offsets: Int32Array;
  data: Uint8Array;
}

/**
 * One column of a file as plain typed arrays (what the archiver writes from the wire bytes, and what
 * a worker thread can receive): {@link encodeColumnsParquet} turns them into the dataset's Arrow
 * types. Times and int64 values are `BigInt64Array`s of epoch ms / the number.
 */
export type ColumnData =
  | Utf8ColumnData
  | { kind: 'float64'; values: Float64Array }
  | { kind: 'uint32'; values: Uint32Array }
  | { kind: 'int64' | 'timestamp'; values: BigInt64Array }
  | { kind: 'map'; offsets: Int32Array; keys: Utf8ColumnData; values: Utf8ColumnData }
  | {
      kind: 'detections';
      /** Per row: where its detections start in the item columns (rows + 1 entries). */
      offsets: Int32Array;
      objectId: Utf8ColumnData;
      classId: Uint32Array;
      label: Utf8ColumnData;
      confidence: Float32Array;
      trackerId: Utf8ColumnData;
      /** Per item: the box, `valid[i]` 0 where it has none (its numbers are then 0). */
      bbox: {
        left: Float32Array;
        top: Float32Array;
        width: Float32Array;
        height: Float32Array;
        valid: Uint8Array;
      };
    };

function utf8Data(c: Utf8ColumnData): AnyData {
  return makeData({
    type: new Utf8(),
    length: c.offsets.length - 1,
    nullCount: 0,
    valueOffsets: c.offsets,
    data: c.data,
  }) as AnyData;
}

function numData(
  type: Float64 | Float32 | Uint32 | Int64 | TimestampMillisecond,
  data: Float64Array | Float32Array | Uint32Array | BigInt64Array,
): AnyData {
  return makeData({ type, length: data.length, nullCount: 0, data } as never) as AnyData;
}

function columnData(field: Field, c: ColumnData, rows: number): AnyData {
  const mismatch = () =>
    new Error(`column ${field.name} (${String(field.type)}) cannot take ${c.kind} data`);
  let d: AnyData;
  switch (c.kind) {
    case 'utf8':
      if (!(field.type instanceof Utf8)) throw mismatch();
      d = utf8Data(c);
      break;
    case 'float64':
      if (!(field.type instanceof Float64)) throw mismatch();
      d = numData(new Float64(), c.values);
      break;
    case 'uint32':
      if (!(field.type instanceof Uint32)) throw mismatch();
      d = numData(new Uint32(), c.values);
      break;
    case 'int64':
      if (!(field.type instanceof Int64)) throw mismatch();
      d = numData(new Int64(), c.values);
      break;
    case 'timestamp':
      if (!(field.type instanceof TimestampMillisecond)) throw mismatch();
      d = numData(ts(), c.values);
      break;
    case 'map': {
      if (!(field.type instanceof Map_)) throw mismatch();
      const type = mapType();
      const entries = makeData({
        type: type.children[0]!.type as Struct,
        length: c.keys.offsets.length - 1,
        nullCount: 0,
        children: [utf8Data(c.keys), utf8Data(c.values)],
      });
      d = makeData({
        type,
        length: c.offsets.length - 1,
        nullCount: 0,
        valueOffsets: c.offsets,
        child: entries,
      }) as AnyData;
      break;
    }
    case 'detections': {
      if (!(field.type instanceof List)) throw mismatch();
      const items = c.classId.length;
      const bitmap = new Uint8Array(Math.ceil(items / 8));
      let nulls = 0;
      for (let i = 0; i < items; i++) {
        if (c.bbox.valid[i]) bitmap[i >> 3]! |= 1 << (i & 7);
        else nulls++;
      }
      const bbox = makeData({
        type: bboxType(),
        length: items,
        nullCount: nulls,
        nullBitmap: nulls ? bitmap : null,
        children: [c.bbox.left, c.bbox.top, c.bbox.width, c.bbox.height].map((v) =>
          numData(new Float32(), v),
        ),
      });
      const item = makeData({
        type: detectionType(),
        length: items,
        nullCount: 0,
        children: [
          utf8Data(c.objectId),
          numData(new Uint32(), c.classId),
          utf8Data(c.label),
          numData(new Float32(), c.confidence),
          utf8Data(c.trackerId),
          bbox as AnyData,
        ],
      });
      d = makeData({
        type: new List(new Field('item', detectionType(), false)),
        length: c.offsets.length - 1,
        nullCount: 0,
        valueOffsets: c.offsets,
        child: item,
      }) as AnyData;
      break;
    }
  }
  if (d.length !== rows)
    throw new Error(`column ${field.name} has ${d.length} values, not ${rows}`);
  return d;
}

/** Columns (every field of the dataset's schema, in file order already) as an Arrow table. */
export function columnsToArrow(
  dataset: Dataset,
  rows: number,
  columns: Readonly<Record<string, ColumnData>>,
): Table {
  const schema = ARROW_SCHEMAS[dataset];
  const children = schema.fields.map((f) => {
    const c = columns[f.name];
    if (!c) throw new Error(`column ${f.name} of ${dataset} is missing`);
    return columnData(f, c, rows);
  });
  const struct = makeData({
    type: new Struct(schema.fields),
    length: rows,
    nullCount: 0,
    children,
  });
  return new Table(schema, new RecordBatch(schema, struct));
}

/** Collects the IPC writer's chunks (references to the columns' buffers) instead of queueing them. */
class ChunkSink extends AsyncByteQueue {
  readonly chunks: Uint8Array[] = [];
  size = 0;
  override write(value: Uint8Array): void {
    if (value.byteLength === 0) return;
    this.chunks.push(value);
    this.size += value.byteLength;
  }
}

/**
 * The IPC stream's bytes are copied into wasm memory and dropped at once: one buffer, kept for the
 * next file, spares allocating (and faulting in) tens of MiB per file. Bounded: one buffer, at most
 * 256 MiB kept.
 */
let ipcBuffer: Uint8Array | undefined;
const IPC_BUFFER_MAX = 256 * 1024 * 1024;

/** The table in parquet-wasm's memory, through an Arrow IPC stream. */
function toWasm(arrow: Table): pq.Table {
  const sink = new ChunkSink();
  const writer = new RecordBatchStreamWriter();
  writer.reset(sink);
  writer.writeAll(arrow);
  let buf = ipcBuffer && ipcBuffer.byteLength >= sink.size ? ipcBuffer : undefined;
  if (!buf) {
    buf = Buffer.allocUnsafeSlow(Math.max(sink.size, (ipcBuffer?.byteLength ?? 0) * 2));
    ipcBuffer = buf.byteLength <= IPC_BUFFER_MAX ? buf : undefined;
  }
  let at = 0;
  for (const c of sink.chunks) {
    buf.set(c, at);
    at += c.byteLength;
  }
  return pq.Table.fromIPCStream(buf.subarray(0, at));
}

function writeTable(arrow: Table, dataset: Dataset, opts: ParquetOptions): Uint8Array {
  const wasmTable = toWasm(arrow);
  const meta = new Map<string, string>([
    ['sluice.archive_schema_version', String(ARCHIVE_SCHEMA_VERSION)],
    ['sluice.dataset', dataset],
    [
      'sluice.sort_order',
      'device_id,' + (dataset === 'telemetry' ? 'event_time' : 'frame_time') + ',event_id',
    ],
    ...Object.entries(opts.metadata ?? {}),
  ]);
  const props = new pq.WriterPropertiesBuilder()
    .setCompression(pq.Compression.ZSTD)
    .setStatisticsEnabled(pq.EnabledStatistics.Page)
    .setMaxRowGroupSize(opts.rowGroupRows ?? 131_072)
    .setCreatedBy('sluice-archiver')
    .setKeyValueMetadata(meta)
    .build();
  return pq.writeParquet(wasmTable, props);
}

/**
 * Encodes rows (sorted by the caller) as one Parquet file: ZSTD, page and row-group statistics on
 * every column, the dataset's schema and `sluice.*` metadata.
 */
export function encodeParquet(data: Rows, opts: ParquetOptions = {}): Uint8Array {
  return writeTable(toArrow(data), data.dataset, opts);
}

/**
 * Encodes columns (rows already sorted by device_id, event time, event_id) as one Parquet file with
 * the schema, options and metadata of {@link encodeParquet}: the same rows read back.
 */
export function encodeColumnsParquet(
  dataset: Dataset,
  rows: number,
  columns: Readonly<Record<string, ColumnData>>,
  opts: ParquetOptions = {},
): Uint8Array {
  return writeTable(columnsToArrow(dataset, rows, columns), dataset, opts);
}

function readUtf8(d: AnyData): string[] {
  const out = new Array<string>(d.length);
  const offs = d.valueOffsets as Int32Array;
  const bytes = d.values as Uint8Array;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < d.length; i++)
    out[i] = buf.toString('utf8', offs[d.offset + i]!, offs[d.offset + i + 1]!);
  return out;
}

function readNumbers(d: AnyData): number[] {
  const v = d.values as ArrayLike<number | bigint>;
  const out = new Array<number>(d.length);
  // Timestamps and int64 may come as pairs of int32 in older Arrow JS layouts.
  if (
    v instanceof Int32Array &&
    d.type.typeId !== new Uint32().typeId &&
    (d.type instanceof Int64 || d.type instanceof TimestampMillisecond || 'unit' in d.type)
  ) {
    for (let i = 0; i < d.length; i++)
      out[i] = v[2 * (d.offset + i)]! + v[2 * (d.offset + i) + 1]! * 2 ** 32;
    return out;
  }
  for (let i = 0; i < d.length; i++) out[i] = Number(v[d.offset + i]!);
  return out;
}

function readColumn(name: string, d: AnyData): unknown[] {
  if (name === 'attributes') {
    const entries = d.children[0]!;
    const keys = readUtf8(entries.children[0]!);
    const vals = readUtf8(entries.children[1]!);
    const offs = d.valueOffsets as Int32Array;
    const out: Array<Record<string, string>> = [];
    for (let i = 0; i < d.length; i++) {
      const o: Record<string, string> = {};
      for (let j = offs[d.offset + i]!; j < offs[d.offset + i + 1]!; j++)
        o[keys[j - entries.offset]!] = vals[j - entries.offset]!;
      out.push(o);
    }
    return out;
  }
  if (name === 'detections') {
    const item = d.children[0]!;
    const [oid, cls, label, conf, tid, bbox] = item.children as AnyData[];
    const oids = readUtf8(oid!);
    const classes = readNumbers(cls!);
    const labels = readUtf8(label!);
    const confs = readNumbers(conf!);
    const tids = readUtf8(tid!);
    const [l, t, w, h] = bbox!.children.map((c) => readNumbers(c as AnyData));
    const offs = d.valueOffsets as Int32Array;
    const out: Array<DetectionRow['detections']> = [];
    for (let i = 0; i < d.length; i++) {
      const list: DetectionRow['detections'] = [];
      for (
        let j = offs[d.offset + i]! - item.offset;
        j < offs[d.offset + i + 1]! - item.offset;
        j++
      ) {
        list.push({
          object_id: oids[j]!,
          class_id: classes[j]!,
          label: labels[j]!,
          confidence: confs[j]!,
          tracker_id: tids[j]!,
          bbox: bbox!.getValid(j)
            ? { left: l![j]!, top: t![j]!, width: w![j]!, height: h![j]! }
            : null,
        });
      }
      out.push(list);
    }
    return out;
  }
  if (d.type instanceof Utf8) return readUtf8(d);
  return readNumbers(d);
}

/** Decodes a file this archiver wrote back into rows (compaction). */
export function decodeParquet(bytes: Uint8Array): Rows {
  const wasm = pq.readParquet(bytes);
  const table = tableFromIPC(wasm.intoIPCStream());
  const dataset = (table.schema.metadata.get('sluice.dataset') ??
    (table.schema.fields.some((f) => f.name === 'frame_time')
      ? 'detections'
      : 'telemetry')) as Dataset;
  const names = table.schema.fields.map((f) => f.name);
  const rows: Row[] = [];
  for (const batch of table.batches) {
    const cols = names.map((n, c) => readColumn(n, batch.data.children[c] as AnyData));
    for (let i = 0; i < batch.numRows; i++) {
      const r: Record<string, unknown> = {};
      names.forEach((n, c) => (r[n] = cols[c]![i]));
      rows.push(r as unknown as Row);
    }
  }
  return { dataset, rows } as Rows;
}

/** The rows as JSON Lines (times as ISO strings), gzip'ed. */
export function encodeJsonlGz(data: Rows): Uint8Array {
  const lines = (data.rows as Row[]).map((r) => {
    const o: Record<string, unknown> = { ...r };
    for (const k of ['event_time', 'frame_time', 'stored_at'])
      if (k in o) o[k] = new Date(o[k] as number).toISOString();
    return JSON.stringify(o);
  });
  return gzipSync(Buffer.from(lines.join('\n') + (lines.length ? '\n' : ''), 'utf8'));
}

/** Reads a JSONL.gz file back (tests, tools). */
export function decodeJsonlGz(bytes: Uint8Array): Array<Record<string, unknown>> {
  return gunzipSync(bytes)
    .toString('utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

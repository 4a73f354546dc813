// The one exported record shape every destination receives (MQTT, RabbitMQ, PostgreSQL, files), derived
// from the proto contract (sluice.telemetry.v1) and rendered as JSON (default), protobuf or CSV.
// The fields are those the MongoDB sink stores for an event (snake_case, detections by
// detectionRecords()), plus `export_schema_version` and `kind`; delivery plumbing (stream sequence,
// batch id) stays out, so every destination holds the same fields with the same values.
// Changing a field is a new EXPORT_SCHEMA_VERSION.
import {
  CONTENT_TYPES,
  DecodeError,
  Event,
  type DetectionEvent,
  type TelemetryEvent,
} from '@sluice/contracts';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { RecordRejectedError } from './errors';
import { detectionRecords, type DetectionRecord } from './records';

/** Version of the exported record layout: a JSON field, a header, a user property or a column. */
export const EXPORT_SCHEMA_VERSION = 1;

/** Metadata names where a destination has headers (AMQP) or user properties (MQTT 5). */
export const EXPORT_HEADERS = {
  /** {@link EXPORT_SCHEMA_VERSION}, decimal. */
  SCHEMA_VERSION: 'sluice-export-schema-version',
  /** `event_id`: duplicates of an at-least-once destination are recognised by it. */
  EVENT_ID: 'sluice-event-id',
  /** `telemetry` or `detection`. */
  KIND: 'sluice-event-kind',
} as const;

/** How a record is rendered on a message destination. */
export type ExportFormat = 'json' | 'protobuf';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['json', 'protobuf'];

/** Content type of each format; protobuf payloads are one `sluice.telemetry.v1.Event`. */
export const EXPORT_CONTENT_TYPES: Readonly<Record<ExportFormat, string>> = {
  json: 'application/json',
  protobuf: CONTENT_TYPES.EVENT_BATCH.replace(/\.EventBatch$/, '.Event'),
};

export type ExportKind = 'telemetry' | 'detection';

/** One sensor reading as every destination receives it. */
export interface TelemetryExportRecord {
  export_schema_version: number;
  kind: 'telemetry';
  event_id: string;
  device_id: string;
  /** ISO-8601, UTC, milliseconds: `2026-11-01T12:00:00.123Z`. */
  event_time: string;
  sensor_type: string;
  value: number;
  unit: string;
  firmware_version: string;
  region: string;
  /** Wire schema version the event arrived as (1 or 2; 0 = not from the JSON wire). */
  schema_version: number;
  /** Keys in code-point order. */
  attributes: Record<string, string>;
}

/** One frame's detections as every destination receives them. */
export interface DetectionExportRecord {
  export_schema_version: number;
  kind: 'detection';
  event_id: string;
  device_id: string;
  stream_id: string;
  /** ISO-8601, UTC, milliseconds. */
  frame_time: string;
  region: string;
  schema_version: number;
  firmware_version: string;
  /** Keys in code-point order. */
  attributes: Record<string, string>;
  /** `confidence` and `bbox` are 32-bit floats in the contract: see {@link float32}. */
  detections: DetectionRecord[];
}

export type ExportRecord = TelemetryExportRecord | DetectionExportRecord;

/** An event that cannot be exported as it is (no time, a non-finite number); the reason names the field. */
export class InvalidExportRecordError extends RecordRejectedError {
  override readonly name = 'InvalidExportRecordError';
  override readonly code = 'export_record_invalid';
}

/** A payload that is not an exported record of this schema version (for readers of exported data). */
export class ExportDecodeError extends RecordRejectedError {
  override readonly name = 'ExportDecodeError';
  override readonly code = 'export_decode_failed';
}

/**
 * The shortest decimal that reads back as the same 32-bit float: how `confidence` and the box are
 * written everywhere, so `0.91` stays `0.91` whether it was decoded from protobuf
 * (0.9100000262260437) or built in memory, and equals what PostgreSQL's `real` prints.
 */
export function float32(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.fround(x);
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(f.toPrecision(digits));
    if (Math.fround(candidate) === f) return candidate;
  }
  return f;
}

function isoTime(t: Date | undefined, field: string, id: string): string {
  if (!t || Number.isNaN(t.getTime()))
    throw new InvalidExportRecordError(`event ${id} has no ${field}`);
  return t.toISOString();
}

function finite(v: number, field: string, id: string): number {
  if (!Number.isFinite(v))
    throw new InvalidExportRecordError(
      `event ${id}: ${field} is ${v}; JSON, CSV and every destination need a finite number`,
    );
  return v;
}

function sortedAttributes(a: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(a).sort()) out[k] = a[k]!;
  return out;
}

export function telemetryExportRecord(e: TelemetryEvent): TelemetryExportRecord {
  return {
    export_schema_version: EXPORT_SCHEMA_VERSION,
    kind: 'telemetry',
    event_id: e.eventId,
    device_id: e.deviceId,
    event_time: isoTime(e.eventTime, 'event_time', e.eventId),
    sensor_type: e.sensorType,
    value: finite(e.value, 'value', e.eventId),
    unit: e.unit,
    firmware_version: e.firmwareVersion,
    region: e.region,
    schema_version: e.schemaVersion,
    attributes: sortedAttributes(e.attributes),
  };
}

export function detectionExportRecord(e: DetectionEvent): DetectionExportRecord {
  const f = (v: number, field: string) => float32(finite(v, field, e.eventId));
  return {
    export_schema_version: EXPORT_SCHEMA_VERSION,
    kind: 'detection',
    event_id: e.eventId,
    device_id: e.deviceId,
    stream_id: e.streamId,
    frame_time: isoTime(e.frameTime, 'frame_time', e.eventId),
    region: e.region,
    schema_version: e.schemaVersion,
    firmware_version: e.firmwareVersion,
    attributes: sortedAttributes(e.attributes),
    detections: detectionRecords(e.detections).map((d, i) => ({
      ...d,
      confidence: f(d.confidence, `detections[${i}].confidence`),
      bbox: d.bbox
        ? {
            left: f(d.bbox.left, `detections[${i}].bbox.left`),
            top: f(d.bbox.top, `detections[${i}].bbox.top`),
            width: f(d.bbox.width, `detections[${i}].bbox.width`),
            height: f(d.bbox.height, `detections[${i}].bbox.height`),
          }
        : null,
    })),
  };
}

/** The exported record of an event. Throws {@link InvalidExportRecordError} (a record rejection). */
export function toExportRecord(event: Event): ExportRecord {
  const k = event.kind;
  if (!k)
    throw new InvalidExportRecordError(
      'event has no kind: exactly one of "telemetry" or "detection" must be set',
    );
  return k.$case === 'telemetry' ? telemetryExportRecord(k.value) : detectionExportRecord(k.value);
}

/** The record as one line of JSON (no newline): fields in the order of the record types. */
export function encodeJsonRecord(record: ExportRecord): Buffer {
  return Buffer.from(JSON.stringify(record), 'utf8');
}

/** The event as one protobuf `sluice.telemetry.v1.Event` (the export schema version travels beside it). */
export function encodeProtobufEvent(event: Event): Uint8Array {
  return Event.encode(event).finish();
}

/** A message body of `format` for one event, with its record (the JSON body, the template values). */
export interface RenderedRecord {
  record: ExportRecord;
  body: Buffer;
  contentType: string;
}

/** Renders an event for a message destination. Throws {@link InvalidExportRecordError}. */
export function renderRecord(event: Event, format: ExportFormat): RenderedRecord {
  const record = toExportRecord(event);
  const body =
    format === 'json' ? encodeJsonRecord(record) : Buffer.from(encodeProtobufEvent(event));
  return { record, body, contentType: EXPORT_CONTENT_TYPES[format] };
}

/**
 * Reads a message body back into the record (a consumer's view; the tests' too). A protobuf body
 * is a `sluice.telemetry.v1.Event`; a JSON body must carry this {@link EXPORT_SCHEMA_VERSION}.
 */
export function decodeRecord(format: ExportFormat, body: Uint8Array): ExportRecord {
  if (format === 'protobuf') {
    let event: Event;
    try {
      const reader = new BinaryReader(body);
      event = Event.decode(reader);
      if (reader.pos !== reader.len)
        throw new Error(`stopped at byte ${reader.pos} of ${reader.len}`);
    } catch (err) {
      throw new ExportDecodeError(
        new DecodeError('sluice.telemetry.v1.Event', body.byteLength, err).message,
      );
    }
    return toExportRecord(event);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (err) {
    throw new ExportDecodeError(`not JSON: ${(err as Error).message}`);
  }
  const v = (parsed as { export_schema_version?: unknown } | null)?.export_schema_version;
  if (v !== EXPORT_SCHEMA_VERSION)
    throw new ExportDecodeError(
      `export_schema_version is ${JSON.stringify(v)}; this reader knows ${EXPORT_SCHEMA_VERSION}`,
    );
  return parsed as ExportRecord;
}

// CSV: RFC 4180 fields, one row per event, a fixed header per kind (telemetry and detections differ,
// so they never share a file). `attributes` and `detections` are JSON in one cell, so a row is the
// whole record and reads back into the same record; a row per detection would repeat the frame and
// need an empty row for "looked, saw nothing".

type ColumnType = 'string' | 'number' | 'json';

const TELEMETRY_COLUMNS = [
  ['export_schema_version', 'number'],
  ['kind', 'string'],
  ['event_id', 'string'],
  ['device_id', 'string'],
  ['event_time', 'string'],
  ['sensor_type', 'string'],
  ['value', 'number'],
  ['unit', 'string'],
  ['firmware_version', 'string'],
  ['region', 'string'],
  ['schema_version', 'number'],
  ['attributes', 'json'],
] as const satisfies ReadonlyArray<readonly [keyof TelemetryExportRecord, ColumnType]>;

const DETECTION_COLUMNS = [
  ['export_schema_version', 'number'],
  ['kind', 'string'],
  ['event_id', 'string'],
  ['device_id', 'string'],
  ['stream_id', 'string'],
  ['frame_time', 'string'],
  ['region', 'string'],
  ['schema_version', 'number'],
  ['firmware_version', 'string'],
  ['attributes', 'json'],
  ['detections', 'json'],
] as const satisfies ReadonlyArray<readonly [keyof DetectionExportRecord, ColumnType]>;

const COLUMNS: Record<ExportKind, ReadonlyArray<readonly [string, ColumnType]>> = {
  telemetry: TELEMETRY_COLUMNS,
  detection: DETECTION_COLUMNS,
};

/** The CSV columns of each kind, in order: the header row. */
export const CSV_COLUMNS: Readonly<Record<ExportKind, readonly string[]>> = {
  telemetry: TELEMETRY_COLUMNS.map(([name]) => name),
  detection: DETECTION_COLUMNS.map(([name]) => name),
};

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The header line of a CSV file of `kind` (with its newline). */
export function csvHeader(kind: ExportKind): string {
  return `${CSV_COLUMNS[kind].join(',')}\n`;
}

/** The record as one CSV row (with its newline). */
export function csvRow(record: ExportRecord): string {
  const r = record as unknown as Record<string, unknown>;
  return `${COLUMNS[record.kind]
    .map(([name, type]) => {
      const v = r[name];
      return csvField(type === 'json' ? JSON.stringify(v) : String(v));
    })
    .join(',')}\n`;
}

/** Splits RFC 4180 text into rows of fields. A final row without its newline is ignored (partial). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c !== '"') field += c;
      else if (text[i + 1] === '"') {
        field += '"';
        i++;
      } else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field.endsWith('\r') ? field.slice(0, -1) : field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  return rows;
}

/** Reads CSV rows (header first) of one kind back into records. */
export function recordsFromCsv(text: string): ExportRecord[] {
  const [header, ...rows] = parseCsv(text);
  if (!header) return [];
  const kind: ExportKind | undefined =
    header.join(',') === CSV_COLUMNS.telemetry.join(',')
      ? 'telemetry'
      : header.join(',') === CSV_COLUMNS.detection.join(',')
        ? 'detection'
        : undefined;
  if (!kind) throw new ExportDecodeError(`unknown CSV header: ${header.join(',')}`);
  const columns = COLUMNS[kind];
  return rows.map((cells, n) => {
    if (cells.length !== columns.length)
      throw new ExportDecodeError(
        `CSV row ${n + 2} has ${cells.length} fields; the ${kind} header has ${columns.length}`,
      );
    const out: Record<string, unknown> = {};
    columns.forEach(([name, type], i) => {
      const cell = cells[i]!;
      out[name] = type === 'number' ? Number(cell) : type === 'json' ? JSON.parse(cell) : cell;
    });
    return out as unknown as ExportRecord;
  });
}

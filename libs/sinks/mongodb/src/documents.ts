import type { DetectionEvent, TelemetryEvent } from '@sluice/contracts';
import {
  detectionRecords,
  RecordRejectedError,
  type DetectionRecord,
  type RecordSource,
  type SinkRecord,
} from '@sluice/sinks-core';

/** Where and when a document was captured; BSON dates, not strings. */
export interface IngestMeta {
  stream: string;
  seq: number;
  subject: string;
  /** Position of the event in its clean batch. */
  index: number;
  batch_id: string;
  /** JetStream timestamp of the clean batch. */
  published_at: Date;
  /** When this sink built the document (first successful write wins). */
  captured_at: Date;
}

export interface TelemetryDocument {
  _id: string;
  device_id: string;
  event_time: Date;
  sensor_type: string;
  value: number;
  unit: string;
  firmware_version: string;
  region: string;
  schema_version: number;
  attributes: Record<string, string>;
  ingest: IngestMeta;
}

export interface DetectionDocument {
  _id: string;
  device_id: string;
  stream_id: string;
  frame_time: Date;
  region: string;
  schema_version: number;
  firmware_version: string;
  attributes: Record<string, string>;
  detections: DetectionRecord[];
  ingest: IngestMeta;
}

/** An event that cannot become a document (e.g. no event time); `reason` says which field. */
export class InvalidDocumentError extends RecordRejectedError {
  override readonly name = 'InvalidDocumentError';
  override readonly code = 'document_invalid';
}

function ingest(s: RecordSource, now: Date): IngestMeta {
  return {
    stream: s.stream,
    seq: s.seq,
    subject: s.subject,
    index: s.index,
    batch_id: s.batchId,
    published_at: s.publishedAt,
    captured_at: now,
  };
}

export function telemetryDocument(
  e: TelemetryEvent,
  source: RecordSource,
  now = new Date(),
): TelemetryDocument {
  if (!e.eventTime || Number.isNaN(e.eventTime.getTime()))
    throw new InvalidDocumentError(`telemetry event ${e.eventId} has no event_time`);
  return {
    _id: e.eventId,
    device_id: e.deviceId,
    event_time: e.eventTime,
    sensor_type: e.sensorType,
    value: e.value,
    unit: e.unit,
    firmware_version: e.firmwareVersion,
    region: e.region,
    schema_version: e.schemaVersion,
    attributes: { ...e.attributes },
    ingest: ingest(source, now),
  };
}

export function detectionDocument(
  e: DetectionEvent,
  source: RecordSource,
  now = new Date(),
): DetectionDocument {
  if (!e.frameTime || Number.isNaN(e.frameTime.getTime()))
    throw new InvalidDocumentError(`detection event ${e.eventId} has no frame_time`);
  return {
    _id: e.eventId,
    device_id: e.deviceId,
    stream_id: e.streamId,
    frame_time: e.frameTime,
    region: e.region,
    schema_version: e.schemaVersion,
    firmware_version: e.firmwareVersion,
    attributes: { ...e.attributes },
    detections: detectionRecords(e.detections),
    ingest: ingest(source, now),
  };
}

/** The document of a record and the template values of its collection name. */
export function toDocument(
  r: SinkRecord,
  now = new Date(),
):
  | { kind: 'telemetry'; doc: TelemetryDocument; values: Record<string, string> }
  | { kind: 'detection'; doc: DetectionDocument; values: Record<string, string> } {
  const k = r.event.kind!;
  if (k.$case === 'telemetry') {
    return {
      kind: 'telemetry',
      doc: telemetryDocument(k.value, r.source, now),
      values: { region: k.value.region, sensor_type: k.value.sensorType },
    };
  }
  return {
    kind: 'detection',
    doc: detectionDocument(k.value, r.source, now),
    values: { region: k.value.region, stream_id: k.value.streamId },
  };
}

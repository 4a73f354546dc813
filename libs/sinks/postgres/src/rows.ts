import type { DetectionExportRecord, TelemetryExportRecord } from '@sluice/sinks-core';

/** Column arrays of a telemetry batch, in the order of {@link INSERT_TELEMETRY}'s parameters. */
export function telemetryParams(rows: readonly TelemetryExportRecord[]): unknown[] {
  return [
    rows.map((r) => r.event_id),
    rows.map((r) => r.export_schema_version),
    rows.map((r) => r.device_id),
    rows.map((r) => r.event_time),
    rows.map((r) => r.sensor_type),
    rows.map((r) => r.value),
    rows.map((r) => r.unit),
    rows.map((r) => r.firmware_version),
    rows.map((r) => r.region),
    rows.map((r) => r.schema_version),
    rows.map((r) => JSON.stringify(r.attributes)),
  ];
}

/** One statement per batch: every row through unnest, a redelivered event_id inserts nothing. */
export const INSERT_TELEMETRY = `
INSERT INTO telemetry_events (event_id, export_schema_version, device_id, event_time, sensor_type,
  value, unit, firmware_version, region, schema_version, attributes)
SELECT * FROM unnest($1::text[], $2::smallint[], $3::text[], $4::timestamptz[], $5::text[],
  $6::float8[], $7::text[], $8::text[], $9::text[], $10::int[], $11::jsonb[])
ON CONFLICT (event_id) DO NOTHING`;

/** Parameters of {@link INSERT_DETECTIONS}: the frames, then one entry per detection of every frame. */
export function detectionParams(rows: readonly DetectionExportRecord[]): unknown[] {
  const objects = rows.flatMap((r) => r.detections.map((d, ordinal) => ({ r, d, ordinal })));
  return [
    rows.map((r) => r.event_id),
    rows.map((r) => r.export_schema_version),
    rows.map((r) => r.device_id),
    rows.map((r) => r.stream_id),
    rows.map((r) => r.frame_time),
    rows.map((r) => r.region),
    rows.map((r) => r.schema_version),
    rows.map((r) => r.firmware_version),
    rows.map((r) => JSON.stringify(r.attributes)),
    objects.map((o) => o.r.event_id),
    objects.map((o) => o.ordinal),
    objects.map((o) => o.d.object_id),
    objects.map((o) => o.d.class_id),
    objects.map((o) => o.d.label),
    objects.map((o) => o.d.confidence),
    objects.map((o) => o.d.tracker_id),
    objects.map((o) => o.d.bbox?.left ?? null),
    objects.map((o) => o.d.bbox?.top ?? null),
    objects.map((o) => o.d.bbox?.width ?? null),
    objects.map((o) => o.d.bbox?.height ?? null),
  ];
}

/**
 * Frames and their detections in one statement (atomic without a transaction): the detections are
 * inserted only for the frames this statement inserted, so a redelivered frame adds no rows at all.
 */
export const INSERT_DETECTIONS = `
WITH frames AS (
  INSERT INTO detection_events (event_id, export_schema_version, device_id, stream_id, frame_time,
    region, schema_version, firmware_version, attributes)
  SELECT * FROM unnest($1::text[], $2::smallint[], $3::text[], $4::text[], $5::timestamptz[],
    $6::text[], $7::int[], $8::text[], $9::jsonb[])
  ON CONFLICT (event_id) DO NOTHING
  RETURNING event_id, frame_time, stream_id
)
INSERT INTO detection_objects (event_id, ordinal, frame_time, stream_id, object_id, class_id, label,
  confidence, tracker_id, bbox_left, bbox_top, bbox_width, bbox_height)
SELECT o.event_id, o.ordinal, f.frame_time, f.stream_id, o.object_id, o.class_id, o.label,
  o.confidence, o.tracker_id, o.bbox_left, o.bbox_top, o.bbox_width, o.bbox_height
FROM unnest($10::text[], $11::int[], $12::text[], $13::bigint[], $14::text[], $15::real[],
  $16::text[], $17::real[], $18::real[], $19::real[], $20::real[])
  AS o(event_id, ordinal, object_id, class_id, label, confidence, tracker_id, bbox_left, bbox_top,
    bbox_width, bbox_height)
JOIN frames f USING (event_id)`;

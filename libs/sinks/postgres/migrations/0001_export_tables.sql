-- The exported records (export schema 1, libs/sinks/core/src/formats.ts), one row per event keyed by
-- event_id (redeliveries insert nothing: ON CONFLICT (event_id) DO NOTHING). Unqualified names: the
-- sink runs its migrations with search_path set to its configured schema.

CREATE TABLE telemetry_events (
  event_id text PRIMARY KEY,
  export_schema_version smallint NOT NULL,
  device_id text NOT NULL,
  event_time timestamptz NOT NULL,
  sensor_type text NOT NULL,
  value double precision NOT NULL,
  unit text NOT NULL,
  firmware_version text NOT NULL,
  region text NOT NULL,
  schema_version integer NOT NULL,
  attributes jsonb NOT NULL,
  -- When this sink stored the row (not part of the exported record).
  exported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telemetry_events_time ON telemetry_events (event_time);
CREATE INDEX telemetry_events_device_time ON telemetry_events (device_id, event_time);
CREATE INDEX telemetry_events_sensor_time ON telemetry_events (sensor_type, event_time);

CREATE TABLE detection_events (
  event_id text PRIMARY KEY,
  export_schema_version smallint NOT NULL,
  device_id text NOT NULL,
  stream_id text NOT NULL,
  frame_time timestamptz NOT NULL,
  region text NOT NULL,
  schema_version integer NOT NULL,
  firmware_version text NOT NULL,
  attributes jsonb NOT NULL,
  exported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX detection_events_time ON detection_events (frame_time);
CREATE INDEX detection_events_stream_time ON detection_events (stream_id, frame_time);
CREATE INDEX detection_events_device_time ON detection_events (device_id, frame_time);

-- One row per detection of a frame (child rows, not a jsonb array): "detections of class X in a time
-- range" is a B-tree range scan on (label, frame_time) or (class_id, frame_time), and per-object
-- filters (confidence, tracker) are plain columns. The frame's time and stream are repeated here for
-- those indexes. Written in the same statement as the frame, only when the frame row is new.
CREATE TABLE detection_objects (
  event_id text NOT NULL REFERENCES detection_events (event_id) ON DELETE CASCADE,
  -- Position in the frame's detections (the exported record's order), from 0.
  ordinal integer NOT NULL,
  frame_time timestamptz NOT NULL,
  stream_id text NOT NULL,
  object_id text NOT NULL,
  class_id bigint NOT NULL,
  label text NOT NULL,
  confidence real NOT NULL,
  tracker_id text NOT NULL,
  -- All four or none (a detection without a box).
  bbox_left real,
  bbox_top real,
  bbox_width real,
  bbox_height real,
  PRIMARY KEY (event_id, ordinal)
);
CREATE INDEX detection_objects_label_time ON detection_objects (label, frame_time);
CREATE INDEX detection_objects_class_time ON detection_objects (class_id, frame_time);
CREATE INDEX detection_objects_stream_time ON detection_objects (stream_id, frame_time);

-- The exported record of each row as JSON, equal to what MQTT, RabbitMQ and the files receive.
CREATE VIEW telemetry_records AS
SELECT
  t.event_id,
  t.event_time,
  jsonb_build_object(
    'export_schema_version', t.export_schema_version,
    'kind', 'telemetry',
    'event_id', t.event_id,
    'device_id', t.device_id,
    'event_time', to_char(t.event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'sensor_type', t.sensor_type,
    'value', t.value,
    'unit', t.unit,
    'firmware_version', t.firmware_version,
    'region', t.region,
    'schema_version', t.schema_version,
    'attributes', t.attributes
  ) AS record
FROM telemetry_events t;

CREATE VIEW detection_records AS
SELECT
  e.event_id,
  e.frame_time,
  jsonb_build_object(
    'export_schema_version', e.export_schema_version,
    'kind', 'detection',
    'event_id', e.event_id,
    'device_id', e.device_id,
    'stream_id', e.stream_id,
    'frame_time', to_char(e.frame_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'region', e.region,
    'schema_version', e.schema_version,
    'firmware_version', e.firmware_version,
    'attributes', e.attributes,
    'detections', COALESCE(
      (
        SELECT jsonb_agg(
          jsonb_build_object(
            'object_id', o.object_id,
            'class_id', o.class_id,
            'label', o.label,
            'confidence', o.confidence,
            'tracker_id', o.tracker_id,
            'bbox', CASE WHEN o.bbox_left IS NULL THEN NULL ELSE jsonb_build_object(
              'left', o.bbox_left, 'top', o.bbox_top, 'width', o.bbox_width, 'height', o.bbox_height
            ) END
          )
          ORDER BY o.ordinal
        )
        FROM detection_objects o
        WHERE o.event_id = e.event_id
      ),
      '[]'::jsonb
    )
  ) AS record
FROM detection_events e;

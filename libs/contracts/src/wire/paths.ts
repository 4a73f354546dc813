// Rejections found on the canonical event (the gateway's validator) name the field in the JSON the
// client sent, like the wire parser's own errors: one path scheme per transport.
import { formatPath } from './result';
import type { SchemaVersion } from './versions';

/** The v1 field that carried the event time: `event_time`, or its alias `timestamp`. */
export type V1TimeField = 'event_time' | 'timestamp';

const V1: Readonly<Record<string, string>> = { event_time: 'event_time' };
const V2: Readonly<Record<string, string>> = {
  event_id: 'id',
  device_id: 'device.id',
  event_time: 'time',
  frame_time: 'time',
  firmware_version: 'device.firmware',
  sensor_type: 'reading.sensor',
  value: 'reading.value',
  unit: 'reading.unit',
  stream_id: 'detections.stream',
  detections: 'detections.objects',
};
const CANONICAL = /^(?:telemetry|detection)\.([a-z_]+)(.*)$/;
const ATTRIBUTE_KEY = /^\[("(?:[^"\\]|\\.)*")\]$/;

/**
 * The JSON wire path of a canonical field path (`telemetry.event_time`, `telemetry.attributes["a.b"]`,
 * `detection.detections[2].bbox`) for an event that arrived as schema `version`: `event_time` (or
 * `timestamp`, see `timeField`), `attributes["a.b"]`, `detections.objects[2].bbox` — the format of
 * {@link FieldError.path}. `kind` (no event kind at all) is `""`, the event as a whole; a path that
 * is not a canonical field path is returned unchanged.
 */
export function wirePath(
  canonical: string,
  version: SchemaVersion,
  timeField: V1TimeField = 'event_time',
): string {
  if (canonical === 'kind') return '';
  const m = CANONICAL.exec(canonical);
  if (!m) return canonical;
  const field = m[1]!;
  const rest = m[2]!;
  if (field === 'attributes') {
    const key = ATTRIBUTE_KEY.exec(rest);
    return key ? formatPath(['attributes', JSON.parse(key[1]!) as string]) : `attributes${rest}`;
  }
  if (version === 1) return `${field === 'event_time' ? timeField : (V1[field] ?? field)}${rest}`;
  return `${V2[field] ?? field}${rest}`;
}

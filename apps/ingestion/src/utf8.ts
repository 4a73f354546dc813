import { isUtf8 } from 'node:buffer';
import { ProtoReader, WIRE, type EventBatch } from '@sluice/contracts';

/** Per message type: field number → a string (`'s'`) or a nested message's shape. */
interface Shape {
  readonly [field: number]: 's' | Shape;
}
const MAP_ENTRY: Shape = { 1: 's', 2: 's' };
const TELEMETRY: Shape = { 1: 's', 2: 's', 4: 's', 6: 's', 7: 's', 8: 's', 10: MAP_ENTRY };
const DETECTION: Shape = { 1: 's', 3: 's', 5: 's' };
const DETECTION_EVENT: Shape = {
  1: 's',
  2: 's',
  3: 's',
  5: 's',
  7: DETECTION,
  8: MAP_ENTRY,
  9: 's',
};
const EVENT: Shape = { 1: TELEMETRY, 2: DETECTION_EVENT };
const NAMES: Record<string, Record<number, string>> = {
  batch: { 1: 'batch_id', 2: 'events' },
  telemetry: {
    1: 'event_id',
    2: 'device_id',
    4: 'sensor_type',
    6: 'unit',
    7: 'firmware_version',
    8: 'region',
    10: 'attributes',
  },
};
const BATCH: Shape = { 1: 's', 2: EVENT };

function walk(r: ProtoReader, end: number, shape: Shape, path: string): string | undefined {
  while (r.pos < end) {
    const t = r.tag(end);
    const field = t >>> 3;
    const kind = (t & 7) === WIRE.LEN ? shape[field] : undefined;
    if (kind === undefined) {
      r.skip(t & 7, end);
      continue;
    }
    const to = r.lenEnd(end);
    const here = `${path}${path ? '.' : ''}${fieldName(shape, field)}`;
    if (kind === 's') {
      if (!isUtf8(r.buf.subarray(r.pos, to))) return here;
      r.pos = to;
    } else {
      const bad = walk(r, to, kind, here);
      if (bad !== undefined) return bad;
      r.pos = to;
    }
  }
  return undefined;
}

function fieldName(shape: Shape, field: number): string {
  if (shape === BATCH) return NAMES['batch']![field] ?? String(field);
  if (shape === EVENT) return field === 1 ? 'telemetry' : 'detection';
  if (shape === TELEMETRY) return NAMES['telemetry']![field] ?? String(field);
  return String(field);
}

/**
 * The path of the first string field of a raw EventBatch that is not valid UTF-8 (protobuf requires
 * it; strict decoders in other languages refuse such a message, and the gateway republishes the raw
 * bytes), or undefined when every string is valid. Only length-delimited fields of the known schema
 * are looked at; the bytes must already have decoded as an EventBatch.
 */
export function invalidUtf8Field(raw: Uint8Array): string | undefined {
  return walk(new ProtoReader(raw), raw.length, BATCH, '');
}

const REPLACEMENT = '\uFFFD';
const suspicious = (s: string) => s.includes(REPLACEMENT);
const suspiciousMap = (m: Record<string, string>) =>
  Object.entries(m).some(([k, v]) => suspicious(k) || suspicious(v));

/**
 * Whether a decoded batch holds U+FFFD in a string: the generated decoder puts it where the bytes
 * were not UTF-8 (or the device sent that character). Cheap, so the exact check of the raw bytes
 * ({@link invalidUtf8Field}) runs only for such batches.
 */
export function hasReplacementChar(batch: EventBatch): boolean {
  if (suspicious(batch.batchId)) return true;
  for (const e of batch.events) {
    const k = e.kind;
    if (!k) continue;
    const v = k.value;
    if (
      suspicious(v.eventId) ||
      suspicious(v.deviceId) ||
      suspicious(v.region) ||
      suspicious(v.firmwareVersion) ||
      suspiciousMap(v.attributes)
    )
      return true;
    if (k.$case === 'telemetry') {
      if (suspicious(k.value.sensorType) || suspicious(k.value.unit)) return true;
    } else if (
      suspicious(k.value.streamId) ||
      k.value.detections.some(
        (d) => suspicious(d.objectId) || suspicious(d.label) || suspicious(d.trackerId),
      )
    )
      return true;
  }
  return false;
}

import {
  DecodeError,
  NAME_TOKEN_PATTERN,
  ProtoFormatError,
  ProtoReader,
  WIRE,
} from '@sluice/contracts';
import type { Reading } from './partial';

/** What {@link decodeReadings} found in one EventBatch. */
export interface DecodedReadings {
  readings: Reading[];
  /** Detection events: not aggregated, counted. */
  detections: number;
  /** Events that cannot be windowed: no kind, no time, non-finite value, bad ids; counted. */
  invalid: number;
}

const TYPE = 'sluice.telemetry.v1.EventBatch';
const { LEN, I64 } = WIRE;

/** Validity of a device id or sensor, and of a region, per (interned) string; cleared when full. */
const validIds = new Map<string, boolean>();
const validRegions = new Map<string, boolean>();
const VALIDITY_MAX = 65_536;

function remember<K, V>(map: Map<K, V>, key: K, value: V): V {
  if (map.size >= VALIDITY_MAX) map.clear();
  map.set(key, value);
  return value;
}

/** A usable device id or sensor: 1–128 characters, no control character (PostgreSQL text cannot hold NUL). */
function validId(s: string): boolean {
  const known = validIds.get(s);
  if (known !== undefined) return known;
  let ok = s.length > 0 && s.length <= 128;
  for (let i = 0; ok && i < s.length; i++) if (s.charCodeAt(i) < 0x20) ok = false;
  return remember(validIds, s, ok);
}

function validRegion(s: string): boolean {
  return validRegions.get(s) ?? remember(validRegions, s, NAME_TOKEN_PATTERN.test(s));
}

/** A TelemetryEvent → a reading, or undefined when it cannot be windowed. */
function telemetry(r: ProtoReader, end: number): Reading | undefined {
  let device = '';
  let sensor = '';
  let region = '';
  let value = 0;
  let t: number | undefined;
  while (r.pos < end) {
    const tag = r.tag(end);
    switch (tag) {
      case (2 << 3) | LEN:
        device = r.string(end);
        break;
      case (3 << 3) | LEN:
        t = r.timestampMs(end);
        break;
      case (4 << 3) | LEN:
        sensor = r.string(end);
        break;
      case (5 << 3) | I64:
        value = r.double(end);
        break;
      case (8 << 3) | LEN:
        region = r.string(end);
        break;
      default:
        r.skip(tag & 7, end);
    }
  }
  if (
    t === undefined ||
    !Number.isFinite(t) ||
    !Number.isFinite(value) ||
    !validId(device) ||
    !validId(sensor) ||
    !validRegion(region)
  ) {
    return undefined;
  }
  return { device, region, sensor, t, value };
}

/**
 * Reads the telemetry readings of an EventBatch straight from its wire bytes: only the five fields
 * aggregation needs are decoded (no Event, Date or attribute objects), everything else is skipped
 * by its length with its bounds checked. For the fields it reads it accepts and rejects what the
 * generated decoder does; the insides of fields it skips (attributes, detections) are not checked
 * (dedupe's scan checked them before the message reached the clean stream), and groups and field
 * number 0 (never written by any Sluice producer) are rejected as malformed instead of ending the
 * message early. Throws {@link DecodeError}.
 */
export function decodeReadings(bytes: Uint8Array): DecodedReadings {
  const r = new ProtoReader(bytes);
  const out: DecodedReadings = { readings: [], detections: 0, invalid: 0 };
  const end = bytes.length;
  try {
    while (r.pos < end) {
      const tag = r.tag(end);
      if (tag !== ((2 << 3) | LEN)) {
        r.skip(tag & 7, end);
        continue;
      }
      // One Event: the last of its oneof fields wins, as in the generated decoder.
      const eventEnd = r.lenEnd(end);
      let kind: 'telemetry' | 'detection' | undefined;
      let reading: Reading | undefined;
      while (r.pos < eventEnd) {
        const etag = r.tag(eventEnd);
        if (etag === ((1 << 3) | LEN)) {
          const to = r.lenEnd(eventEnd);
          kind = 'telemetry';
          reading = telemetry(r, to);
          r.pos = to;
        } else if (etag === ((2 << 3) | LEN)) {
          kind = 'detection';
          r.pos = r.lenEnd(eventEnd);
        } else r.skip(etag & 7, eventEnd);
      }
      if (kind === 'detection') out.detections++;
      else if (kind === 'telemetry' && reading) out.readings.push(reading);
      else out.invalid++;
    }
  } catch (err) {
    if (err instanceof ProtoFormatError) throw new DecodeError(TYPE, bytes.length, err);
    throw err;
  }
  return out;
}

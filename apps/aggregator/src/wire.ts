import { DecodeError, NAME_TOKEN_PATTERN } from '@sluice/contracts';

/** The fields of a telemetry event the aggregator uses. */
export interface WireReading {
  device: string;
  region: string;
  sensor: string;
  /** Event time, epoch ms. */
  t: number;
  value: number;
}

/** What {@link decodeReadings} found in one EventBatch. */
export interface DecodedReadings {
  readings: WireReading[];
  /** Detection events: not aggregated, counted. */
  detections: number;
  /** Events that cannot be windowed: no kind, no time, non-finite value, bad ids; counted. */
  invalid: number;
}

const TYPE = 'sluice.telemetry.v1.EventBatch';
const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;
/** Dates beyond ±8.64e15 ms are invalid (as `new Date` has them). */
const MAX_DATE_MS = 8.64e15;
const utf8 = new TextDecoder();

/**
 * Short ASCII strings seen before (device ids, sensors, regions repeat in every batch), by a hash of
 * their bytes: a hit costs no allocation, and the string's own hash is already computed for the Maps
 * that group readings. Bounded: cleared when full.
 */
const interned = new Map<number, string>();
const INTERN_MAX = 65_536;
/** Validity of a device id or sensor, and of a region, per interned string (same bound). */
const validIds = new Map<string, boolean>();
const validRegions = new Map<string, boolean>();

function remember<K, V>(map: Map<K, V>, key: K, value: V): V {
  if (map.size >= INTERN_MAX) map.clear();
  map.set(key, value);
  return value;
}

class Malformed extends Error {}

/**
 * A forward-only protobuf reader over one message's bytes. Positions are absolute; every read checks
 * its bound, so a truncated or overlong field throws instead of reading the next field's bytes.
 */
class Reader {
  pos = 0;
  private lo = 0;
  private hi = 0;
  private readonly view: DataView;

  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** A varint of at most 32 bits (tags, lengths). */
  uint32(end: number): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= end) throw new Malformed('truncated varint');
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
    throw new Malformed('varint longer than 32 bits');
  }

  /** Reads a varint of up to 64 bits into lo/hi (two's complement halves). */
  private varint64(end: number): void {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) throw new Malformed('truncated varint');
      const b = this.buf[this.pos++]!;
      const bits = b & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= (bits & 0x0f) << 28;
        hi = bits >> 4;
      } else hi |= bits << (7 * i - 32);
      if (b < 0x80) {
        this.lo = lo;
        this.hi = hi;
        return;
      }
    }
    throw new Malformed('varint longer than 64 bits');
  }

  /** An int64 that must be a safe integer (as ts-proto's decoders require). */
  int64(end: number): number {
    this.varint64(end);
    const n = (this.hi | 0) * 4_294_967_296 + (this.lo >>> 0);
    if (!Number.isSafeInteger(n)) throw new Malformed('int64 beyond the safe integer range');
    return n;
  }

  int32(end: number): number {
    this.varint64(end);
    return this.lo | 0;
  }

  double(end: number): number {
    if (this.pos + 8 > end) throw new Malformed('truncated double');
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** The end of a length-delimited field starting here. */
  lenEnd(end: number): number {
    const len = this.uint32(end);
    const to = this.pos + len;
    if (to > end) throw new Malformed('length-delimited field overruns its message');
    return to;
  }

  string(end: number): string {
    const to = this.lenEnd(end);
    const from = this.pos;
    this.pos = to;
    if (to - from > 64) return utf8.decode(this.buf.subarray(from, to));
    let h = 0x811c9dc5 ^ (to - from);
    for (let i = from; i < to; i++) {
      const c = this.buf[i]!;
      if (c >= 0x80) return utf8.decode(this.buf.subarray(from, to));
      h = Math.imul(h ^ c, 0x01000193);
    }
    const hit = interned.get(h);
    if (hit !== undefined && hit.length === to - from) {
      let same = true;
      for (let i = 0; i < hit.length && same; i++) same = hit.charCodeAt(i) === this.buf[from + i];
      if (same) return hit;
    }
    return remember(interned, h, String.fromCharCode.apply(null, this.buf.subarray(from, to) as unknown as number[]));
  }

  skip(wireType: number, end: number): void {
    switch (wireType) {
      case VARINT:
        this.varint64(end);
        return;
      case I64:
        this.pos += 8;
        break;
      case LEN:
        this.pos = this.lenEnd(end);
        return;
      case I32:
        this.pos += 4;
        break;
      default:
        // Groups (3, 4) and the reserved types 6, 7: none of them belongs in these messages.
        throw new Malformed(`unsupported wire type ${wireType}`);
    }
    if (this.pos > end) throw new Malformed('truncated fixed-width field');
  }

  /** A tag, rejecting field number 0. */
  tag(end: number): number {
    const tag = this.uint32(end);
    if (tag >>> 3 === 0) throw new Malformed('field number 0');
    return tag;
  }
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

/** `google.protobuf.Timestamp` → epoch ms, truncated like `Date` (NaN outside Date's range). */
function timestamp(r: Reader, end: number): number {
  let seconds = 0;
  let nanos = 0;
  while (r.pos < end) {
    const tag = r.tag(end);
    if (tag === (1 << 3) /* seconds, varint */) seconds = r.int64(end);
    else if (tag === ((2 << 3) | VARINT)) nanos = r.int32(end);
    else r.skip(tag & 7, end);
  }
  const ms = Math.trunc(seconds * 1000 + nanos / 1_000_000);
  return Math.abs(ms) > MAX_DATE_MS ? Number.NaN : ms;
}

/** A TelemetryEvent → a reading, or undefined when it cannot be windowed. */
function telemetry(r: Reader, end: number): WireReading | undefined {
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
      case (3 << 3) | LEN: {
        const to = r.lenEnd(end);
        t = timestamp(r, to);
        r.pos = to;
        break;
      }
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
  if (t === undefined || !Number.isFinite(t) || !Number.isFinite(value) || !validId(device) || !validId(sensor) || !validRegion(region)) {
    return undefined;
  }
  return { device, region, sensor, t, value };
}

/**
 * Reads the telemetry readings of an EventBatch straight from its wire bytes: only the five fields
 * aggregation needs are decoded (no Event, Date or attribute objects), everything else is skipped
 * with its bounds checked. It accepts and rejects what the generated decoder does, with one
 * difference: groups and field number 0 (never written by any Sluice producer) are rejected as
 * malformed instead of ending the message early. Throws {@link DecodeError}.
 */
export function decodeReadings(bytes: Uint8Array): DecodedReadings {
  const r = new Reader(bytes);
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
      let reading: WireReading | undefined;
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
    if (err instanceof Malformed) throw new DecodeError(TYPE, bytes.length, err);
    throw err;
  }
  return out;
}

// The archiver reads clean batches from their wire bytes instead of the generated decoder's objects:
// one pass checks a batch the way `decodeBatch` would (every nested message included) and keeps, per
// event, where its bytes are and what its file's place depends on (kind, device, time, region). The
// column writers (columns.ts) read the same bytes again when a segment is encoded.
import { ProtoFormatError, ProtoReader, WIRE } from '@sluice/contracts';

/** `Event.kind` as a number: 0 none, 1 telemetry, 2 detection. */
export const KIND_NONE = 0;
export const KIND_TELEMETRY = 1;
export const KIND_DETECTION = 2;

const tag = (field: number, wire: number) => (field << 3) | wire;
const LEN = WIRE.LEN;

// Field tags of sluice.telemetry.v1 (proto/sluice/telemetry/v1/telemetry.proto).
export const T = {
  BATCH_ID: tag(1, LEN),
  BATCH_EVENTS: tag(2, LEN),
  EVENT_TELEMETRY: tag(1, LEN),
  EVENT_DETECTION: tag(2, LEN),
  // TelemetryEvent
  TE_EVENT_ID: tag(1, LEN),
  TE_DEVICE_ID: tag(2, LEN),
  TE_EVENT_TIME: tag(3, LEN),
  TE_SENSOR_TYPE: tag(4, LEN),
  TE_VALUE: tag(5, WIRE.I64),
  TE_UNIT: tag(6, LEN),
  TE_FIRMWARE: tag(7, LEN),
  TE_REGION: tag(8, LEN),
  TE_SCHEMA_VERSION: tag(9, WIRE.VARINT),
  TE_ATTRIBUTES: tag(10, LEN),
  // DetectionEvent
  DE_EVENT_ID: tag(1, LEN),
  DE_DEVICE_ID: tag(2, LEN),
  DE_STREAM_ID: tag(3, LEN),
  DE_FRAME_TIME: tag(4, LEN),
  DE_REGION: tag(5, LEN),
  DE_SCHEMA_VERSION: tag(6, WIRE.VARINT),
  DE_DETECTIONS: tag(7, LEN),
  DE_ATTRIBUTES: tag(8, LEN),
  DE_FIRMWARE: tag(9, LEN),
  // Detection
  D_OBJECT_ID: tag(1, LEN),
  D_CLASS_ID: tag(2, WIRE.VARINT),
  D_LABEL: tag(3, LEN),
  D_CONFIDENCE: tag(4, WIRE.I32),
  D_TRACKER_ID: tag(5, LEN),
  D_BBOX: tag(6, LEN),
  // BoundingBox
  B_LEFT: tag(1, WIRE.I32),
  B_TOP: tag(2, WIRE.I32),
  B_WIDTH: tag(3, WIRE.I32),
  B_HEIGHT: tag(4, WIRE.I32),
  // map<string, string> entry
  M_KEY: tag(1, LEN),
  M_VALUE: tag(2, LEN),
} as const;

/** A clean batch checked on the wire; positions are into `bytes`. */
export interface ScannedBatch {
  readonly bytes: Uint8Array;
  /** `batch_id` bytes (empty when absent). */
  readonly batchIdStart: number;
  readonly batchIdEnd: number;
  readonly count: number;
  /** Per event: {@link KIND_NONE}, {@link KIND_TELEMETRY} or {@link KIND_DETECTION}. */
  readonly kind: Uint8Array;
  /** Per event: the bytes of the kind's message (TelemetryEvent or DetectionEvent). */
  readonly start: Int32Array;
  readonly end: Int32Array;
  /** Per event: event id bytes (empty when absent). */
  readonly idStart: Int32Array;
  readonly idEnd: Int32Array;
  /** Per event: event_time / frame_time in epoch ms; NaN when absent or beyond `Date`'s range. */
  readonly time: Float64Array;
  readonly deviceId: string[];
  readonly region: string[];
}

/** A `float` (I32) field's 4 bytes, checked. */
function skipFixed(r: ProtoReader, n: number, end: number): void {
  if (r.pos + n > end) throw new ProtoFormatError('truncated fixed-width field');
  r.pos += n;
}

/** A `uint32` varint as the generated decoders read it (the low 32 bits of up to 10 bytes). */
export function readUint32(r: ProtoReader, end: number): number {
  return r.int32(end) >>> 0;
}

function checkMapEntry(r: ProtoReader, end: number): void {
  while (r.pos < end) {
    const t = r.tag(end);
    if (t === T.M_KEY || t === T.M_VALUE) r.pos = r.lenEnd(end);
    else r.skip(t & 7, end);
  }
}

function checkBox(r: ProtoReader, end: number): void {
  while (r.pos < end) {
    const t = r.tag(end);
    if (t === T.B_LEFT || t === T.B_TOP || t === T.B_WIDTH || t === T.B_HEIGHT)
      skipFixed(r, 4, end);
    else r.skip(t & 7, end);
  }
}

function checkDetection(r: ProtoReader, end: number): void {
  while (r.pos < end) {
    const t = r.tag(end);
    switch (t) {
      case T.D_OBJECT_ID:
      case T.D_LABEL:
      case T.D_TRACKER_ID:
        r.pos = r.lenEnd(end);
        break;
      case T.D_CLASS_ID:
        readUint32(r, end);
        break;
      case T.D_CONFIDENCE:
        skipFixed(r, 4, end);
        break;
      case T.D_BBOX: {
        const to = r.lenEnd(end);
        checkBox(r, to);
        break;
      }
      default:
        r.skip(t & 7, end);
    }
  }
}

interface EventKeys {
  idStart: number;
  idEnd: number;
  time: number;
  deviceId: string;
  region: string;
}

function scanTelemetry(r: ProtoReader, end: number, k: EventKeys): void {
  while (r.pos < end) {
    const t = r.tag(end);
    switch (t) {
      case T.TE_EVENT_ID:
        k.idEnd = r.lenEnd(end);
        k.idStart = r.pos;
        r.pos = k.idEnd;
        break;
      case T.TE_DEVICE_ID:
        k.deviceId = r.string(end);
        break;
      case T.TE_EVENT_TIME:
        k.time = r.timestampMs(end);
        break;
      case T.TE_REGION:
        k.region = r.string(end);
        break;
      case T.TE_SENSOR_TYPE:
      case T.TE_UNIT:
      case T.TE_FIRMWARE:
        r.pos = r.lenEnd(end);
        break;
      case T.TE_VALUE:
        r.double(end);
        break;
      case T.TE_SCHEMA_VERSION:
        readUint32(r, end);
        break;
      case T.TE_ATTRIBUTES: {
        const to = r.lenEnd(end);
        checkMapEntry(r, to);
        break;
      }
      default:
        r.skip(t & 7, end);
    }
  }
}

function scanDetection(r: ProtoReader, end: number, k: EventKeys): void {
  while (r.pos < end) {
    const t = r.tag(end);
    switch (t) {
      case T.DE_EVENT_ID:
        k.idEnd = r.lenEnd(end);
        k.idStart = r.pos;
        r.pos = k.idEnd;
        break;
      case T.DE_DEVICE_ID:
        k.deviceId = r.string(end);
        break;
      case T.DE_FRAME_TIME:
        k.time = r.timestampMs(end);
        break;
      case T.DE_REGION:
        k.region = r.string(end);
        break;
      case T.DE_STREAM_ID:
      case T.DE_FIRMWARE:
        r.pos = r.lenEnd(end);
        break;
      case T.DE_SCHEMA_VERSION:
        readUint32(r, end);
        break;
      case T.DE_DETECTIONS: {
        const to = r.lenEnd(end);
        checkDetection(r, to);
        break;
      }
      case T.DE_ATTRIBUTES: {
        const to = r.lenEnd(end);
        checkMapEntry(r, to);
        break;
      }
      default:
        r.skip(t & 7, end);
    }
  }
}

/**
 * Checks a clean batch's wire bytes as the generated decoder would and returns where each event is.
 * Throws {@link ProtoFormatError} for bytes that are not an EventBatch. Like the generated decoder, a
 * field repeated on the wire keeps its last value and a field of an unexpected wire type is skipped.
 */
export function scanBatch(bytes: Uint8Array): ScannedBatch {
  const r = new ProtoReader(bytes);
  const end = bytes.length;
  // A first walk finds batch_id and the events' byte ranges (events are length-delimited).
  let batchIdStart = 0;
  let batchIdEnd = 0;
  const evFrom: number[] = [];
  const evTo: number[] = [];
  while (r.pos < end) {
    const t = r.tag(end);
    if (t === T.BATCH_EVENTS) {
      const to = r.lenEnd(end);
      evFrom.push(r.pos);
      evTo.push(to);
      r.pos = to;
    } else if (t === T.BATCH_ID) {
      batchIdEnd = r.lenEnd(end);
      batchIdStart = r.pos;
      r.pos = batchIdEnd;
    } else r.skip(t & 7, end);
  }
  const count = evFrom.length;
  const out = {
    bytes,
    batchIdStart,
    batchIdEnd,
    count,
    kind: new Uint8Array(count),
    start: new Int32Array(count),
    end: new Int32Array(count),
    idStart: new Int32Array(count),
    idEnd: new Int32Array(count),
    time: new Float64Array(count),
    deviceId: new Array<string>(count),
    region: new Array<string>(count),
  };
  const k: EventKeys = { idStart: 0, idEnd: 0, time: Number.NaN, deviceId: '', region: '' };
  for (let i = 0; i < count; i++) {
    const to = evTo[i]!;
    r.pos = evFrom[i]!;
    let kind = KIND_NONE;
    let from = 0;
    let kindEnd = 0;
    while (r.pos < to) {
      const t = r.tag(to);
      if (t === T.EVENT_TELEMETRY || t === T.EVENT_DETECTION) {
        // A oneof seen twice keeps the last member, as the generated decoder does.
        kindEnd = r.lenEnd(to);
        from = r.pos;
        kind = t === T.EVENT_TELEMETRY ? KIND_TELEMETRY : KIND_DETECTION;
        r.pos = kindEnd;
      } else r.skip(t & 7, to);
    }
    k.idStart = k.idEnd = 0;
    k.time = Number.NaN;
    k.deviceId = k.region = '';
    if (kind !== KIND_NONE) {
      r.pos = from;
      if (kind === KIND_TELEMETRY) scanTelemetry(r, kindEnd, k);
      else scanDetection(r, kindEnd, k);
    }
    out.kind[i] = kind;
    out.start[i] = from;
    out.end[i] = kindEnd;
    out.idStart[i] = k.idStart;
    out.idEnd[i] = k.idEnd;
    out.time[i] = k.time;
    out.deviceId[i] = k.deviceId;
    out.region[i] = k.region;
  }
  return out;
}

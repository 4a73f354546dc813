// A segment's events as the archiver keeps them until the cut: every accepted message's bytes in one
// arena, and per partition a few numbers per event (where its bytes are, its message, its sort key).
// At the cut each partition is sorted by (device_id, event time, event_id) and its Arrow columns are
// written straight from the wire bytes: no Event objects, no row objects, strings copied as bytes.
import { DetectionEvent, ProtoReader, TelemetryEvent, type Event } from '@sluice/contracts';
import {
  encodeColumnsParquet,
  encodeJsonlGz,
  eventDate,
  partitionKey,
  regionSegment,
  toRow,
  type ColumnData,
  type Dataset,
  type FileFormat,
  type ParquetOptions,
  type PartitionRef,
  type Row,
  type Rows,
  type Utf8ColumnData,
} from '@sluice/archive';
import { KIND_TELEMETRY, T as TAGS, readUint32 as readU32, type ScannedBatch } from './wire';

// Local bindings: a module loaded through a transpiling loader (tsx, jest) reads an imported binding
// through a getter, which the per-field loops below would pay millions of times.
const T = TAGS;
const readUint32 = readU32;

const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/**
 * Arena buffers of released segments, reused by the next ones: a segment's arena is tens of MiB, and
 * fresh memory costs a page fault per 4 KiB on first touch. Bounded: two buffers of at most 256 MiB.
 */
const spare: Uint8Array[] = [];
const SPARE_MAX = 2;
const SPARE_BYTES_MAX = 256 * 1024 * 1024;

function takeBuffer(min: number): Uint8Array {
  let best = -1;
  for (let i = 0; i < spare.length; i++)
    if (spare[i]!.byteLength >= min && (best < 0 || spare[i]!.byteLength < spare[best]!.byteLength))
      best = i;
  if (best >= 0) return spare.splice(best, 1)[0]!;
  return Buffer.allocUnsafeSlow(min);
}

function giveBuffer(buf: Uint8Array): void {
  if (buf.byteLength < 1 << 20 || buf.byteLength > SPARE_BYTES_MAX) return;
  spare.push(buf);
  spare.sort((a, b) => b.byteLength - a.byteLength);
  spare.length = Math.min(spare.length, SPARE_MAX);
}

/** Takes back an arena buffer that went to the encoder thread and came back. */
export function reuseArenaBuffer(buf: Uint8Array): void {
  giveBuffer(buf);
}

/** A byte buffer that doubles when full (only its first `length` bytes are meaningful). */
export class ByteArena {
  buf: Uint8Array;
  length = 0;
  constructor(initial = 1 << 20) {
    this.buf = initial > 0 ? takeBuffer(initial) : new Uint8Array(0);
  }
  reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = Math.max(1 << 20, this.buf.length * 2);
    while (size < this.length + n) size *= 2;
    const next = takeBuffer(size);
    next.set(this.buf.subarray(0, this.length));
    giveBuffer(this.buf);
    this.buf = next;
  }
  /** Appends bytes; returns where they start. */
  append(bytes: Uint8Array): number {
    this.reserve(bytes.length);
    const at = this.length;
    this.buf.set(bytes, at);
    this.length += bytes.length;
    return at;
  }
  /** Hands the buffer to the next arena; this one is empty afterwards. */
  free(): void {
    giveBuffer(this.buf);
    this.buf = new Uint8Array(0);
    this.length = 0;
  }
}

function growI32(a: Int32Array<ArrayBuffer>, min: number): Int32Array<ArrayBuffer> {
  if (min <= a.length) return a;
  const b = new Int32Array(Math.max(min, a.length * 2));
  b.set(a);
  return b;
}

function growF64(a: Float64Array<ArrayBuffer>, min: number): Float64Array<ArrayBuffer> {
  if (min <= a.length) return a;
  const b = new Float64Array(Math.max(min, a.length * 2));
  b.set(a);
  return b;
}

/** One message of a segment: what every row of its events repeats. */
export interface SegmentMessage {
  stream: string;
  seq: number;
  storedAt: number;
  /** `batch_id` bytes in the arena. */
  batchIdStart: number;
  batchIdEnd: number;
}

/** The events of one partition in a segment (positions into the segment's arena). */
export class PartitionEvents {
  length = 0;
  start = new Int32Array(256);
  end = new Int32Array(256);
  idStart = new Int32Array(256);
  idEnd = new Int32Array(256);
  msg = new Int32Array(256);
  batchIndex = new Int32Array(256);
  time = new Float64Array(256);
  /** Per event: its device_id as an index into `devices`. */
  device = new Int32Array(256);
  /** The partition's distinct device ids, in order of first appearance. */
  devices: string[] = [];
  private readonly deviceIndex = new Map<string, number>();
  minTime = Number.POSITIVE_INFINITY;
  maxTime = Number.NEGATIVE_INFINITY;

  constructor(readonly dataset: Dataset) {}

  push(base: number, b: ScannedBatch, i: number, msg: number): void {
    const n = this.length;
    if (n === this.start.length) {
      const size = n * 2;
      this.start = growI32(this.start, size);
      this.end = growI32(this.end, size);
      this.idStart = growI32(this.idStart, size);
      this.idEnd = growI32(this.idEnd, size);
      this.msg = growI32(this.msg, size);
      this.batchIndex = growI32(this.batchIndex, size);
      this.time = growF64(this.time, size);
      this.device = growI32(this.device, size);
    }
    this.start[n] = base + b.start[i]!;
    this.end[n] = base + b.end[i]!;
    this.idStart[n] = base + b.idStart[i]!;
    this.idEnd[n] = base + b.idEnd[i]!;
    this.msg[n] = msg;
    this.batchIndex[n] = i;
    const t = b.time[i]!;
    this.time[n] = t;
    if (t < this.minTime) this.minTime = t;
    if (t > this.maxTime) this.maxTime = t;
    const dev = b.deviceId[i]!;
    let d = this.deviceIndex.get(dev);
    if (d === undefined) {
      d = this.devices.push(dev) - 1;
      this.deviceIndex.set(dev, d);
    }
    this.device[n] = d;
    this.length = n + 1;
  }

  toTransfer(): PartitionTransfer {
    const n = this.length;
    return {
      dataset: this.dataset,
      length: n,
      start: this.start.slice(0, n),
      end: this.end.slice(0, n),
      idStart: this.idStart.slice(0, n),
      idEnd: this.idEnd.slice(0, n),
      msg: this.msg.slice(0, n),
      batchIndex: this.batchIndex.slice(0, n),
      time: this.time.slice(0, n),
      device: this.device.slice(0, n),
      devices: this.devices,
      minTime: this.minTime,
      maxTime: this.maxTime,
    };
  }
}

/** What the column writers read of a partition's events. */
type Events = PartitionEvents | PartitionTransfer;

/** Byte order of two ranges of one buffer, as JavaScript orders the strings they hold. */
function compareIds(buf: Uint8Array, as: number, ae: number, bs: number, be: number): number {
  const n = Math.min(ae - as, be - bs);
  for (let i = 0; i < n; i++) {
    const x = buf[as + i]!;
    const y = buf[bs + i]!;
    if (x !== y) {
      if (x < 0x80 && y < 0x80) return x - y;
      // Outside ASCII, UTF-8 byte order and UTF-16 code unit order can differ: compare as strings.
      const sa = utf8Decoder.decode(buf.subarray(as, ae));
      const sb = utf8Decoder.decode(buf.subarray(bs, be));
      return sa < sb ? -1 : sa > sb ? 1 : 0;
    }
  }
  return ae - as - (be - bs);
}

/**
 * The order of a partition's events in its file: (device_id, event time, event_id), the order
 * `compareRows` gives the same rows.
 */
export function sortOrder(p: Events, arena: Uint8Array): Uint32Array {
  const n = p.length;
  // Devices ranked by the order of their ids, so events compare by a number.
  const byId = p.devices
    .map((_, i) => i)
    .sort((a, b) => {
      const x = p.devices[a]!;
      const y = p.devices[b]!;
      return x < y ? -1 : x > y ? 1 : 0;
    });
  const rankOf = new Int32Array(p.devices.length);
  byId.forEach((d, r) => (rankOf[d] = r));
  const { time, idStart, idEnd } = p;
  // Grouped by device (a counting sort keeps arrival order), then each device's events by time,
  // which they mostly arrive in already: a group is sorted only when it is not.
  const d = p.devices.length;
  const first = new Int32Array(d + 1);
  for (let i = 0; i < n; i++) first[rankOf[p.device[i]!]! + 1]!++;
  for (let r = 0; r < d; r++) first[r + 1]! += first[r]!;
  const fill = first.slice(0, d);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[fill[rankOf[p.device[i]!]!]!++] = i;
  const inDevice = (a: number, b: number) => {
    const t = time[a]! - time[b]!;
    if (t !== 0) return t;
    return compareIds(arena, idStart[a]!, idEnd[a]!, idStart[b]!, idEnd[b]!);
  };
  for (let r = 0; r < d; r++) {
    const from = first[r]!;
    const to = first[r + 1]!;
    for (let k = from + 1; k < to; k++) {
      if (inDevice(order[k - 1]!, order[k]!) > 0) {
        order.subarray(from, to).sort(inDevice);
        break;
      }
    }
  }
  return order;
}

/** A string column being written: offsets known up front for `rows` values, bytes growing. */
class Utf8Column {
  readonly offsets: Int32Array;
  data: Uint8Array;
  private n = 0;
  private len = 0;

  constructor(rows: number, bytesHint: number) {
    this.offsets = new Int32Array(rows + 1);
    this.data = new Uint8Array(Math.max(64, bytesHint));
  }

  private reserve(k: number): void {
    if (this.len + k <= this.data.length) return;
    let size = this.data.length * 2;
    while (size < this.len + k) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.data.subarray(0, this.len));
    this.data = next;
  }

  /**
   * Appends the UTF-8 bytes src[from, to). Bytes that are not valid UTF-8 become U+FFFD, as the
   * generated decoder's strings have them.
   */
  appendRange(src: Uint8Array, from: number, to: number): void {
    const k = to - from;
    this.reserve(k);
    const d = this.data;
    let at = this.len;
    let high = 0;
    for (let i = from; i < to; i++) {
      const c = src[i]!;
      high |= c;
      d[at++] = c;
    }
    if (high >= 0x80) {
      this.appendBytes(utf8Encoder.encode(utf8Decoder.decode(src.subarray(from, to))));
      return;
    }
    this.len = at;
    this.offsets[++this.n] = at;
  }

  /** Appends bytes that are valid UTF-8. */
  appendBytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.data.set(bytes, this.len);
    this.len += bytes.length;
    this.offsets[++this.n] = this.len;
  }

  appendEmpty(): void {
    this.offsets[++this.n] = this.len;
  }

  finish(): Utf8ColumnData {
    return { kind: 'utf8', offsets: this.offsets, data: this.data.subarray(0, this.len) };
  }
}

/** A growable string column whose row count is not known up front (map entries, detections). */
class Utf8Growing {
  private col: Utf8Column;
  private rows = 0;
  private readonly parts: Utf8ColumnData[] = [];
  constructor(private readonly chunk: number) {
    this.col = new Utf8Column(chunk, chunk * 8);
  }
  private roll(): void {
    if (this.rows < this.chunk) return;
    this.parts.push(this.col.finish());
    this.col = new Utf8Column(this.chunk, this.chunk * 8);
    this.rows = 0;
  }
  appendRange(src: Uint8Array, from: number, to: number): void {
    this.roll();
    this.col.appendRange(src, from, to);
    this.rows++;
  }
  finish(): Utf8ColumnData {
    const last = this.col.finish();
    const all = [...this.parts, { ...last, offsets: last.offsets.subarray(0, this.rows + 1) }];
    if (all.length === 1) return all[0]!;
    return concatUtf8(all);
  }
}

function concatUtf8(parts: Utf8ColumnData[]): Utf8ColumnData {
  let rows = 0;
  let bytes = 0;
  for (const p of parts) {
    rows += p.offsets.length - 1;
    bytes += p.data.length;
  }
  const offsets = new Int32Array(rows + 1);
  const data = new Uint8Array(bytes);
  let r = 0;
  let b = 0;
  for (const p of parts) {
    for (let i = 1; i < p.offsets.length; i++) offsets[++r] = b + p.offsets[i]!;
    data.set(p.data, b);
    b += p.data.length;
  }
  return { kind: 'utf8', offsets, data };
}

/** Epoch ms (non-negative integers below 2^53) as int64 values, without a BigInt each. */
class I64Column {
  private readonly halves: Int32Array;
  constructor(rows: number) {
    this.halves = new Int32Array(rows * 2);
  }
  set(i: number, v: number): void {
    this.halves[2 * i] = (v % 4_294_967_296) | 0;
    this.halves[2 * i + 1] = Math.floor(v / 4_294_967_296);
  }
  finish(kind: 'int64' | 'timestamp'): ColumnData {
    return { kind, values: new BigInt64Array(this.halves.buffer) };
  }
}

/**
 * A map<string, string> being written. Entries of one row with the same key keep the first's place
 * and the last's value (the generated decoder fills an object the same way).
 */
class MapColumn {
  readonly offsets: Int32Array;
  private readonly keys: Utf8Growing;
  private readonly values: Utf8Growing;
  private entries = 0;
  private row = 0;
  // The current row's entries: key from/to, value from/to.
  private scratch = new Int32Array(64);
  private count = 0;

  constructor(rows: number) {
    this.offsets = new Int32Array(rows + 1);
    this.keys = new Utf8Growing(Math.max(1024, rows));
    this.values = new Utf8Growing(Math.max(1024, rows));
  }

  /** Reads one entry message r[pos, end). */
  add(r: ProtoReader, end: number): void {
    let ks = 0;
    let ke = 0;
    let vs = 0;
    let ve = 0;
    while (r.pos < end) {
      const t = r.tag(end);
      if (t === T.M_KEY) {
        ke = r.lenEnd(end);
        ks = r.pos;
        r.pos = ke;
      } else if (t === T.M_VALUE) {
        ve = r.lenEnd(end);
        vs = r.pos;
        r.pos = ve;
      } else r.skip(t & 7, end);
    }
    const buf = r.buf;
    const s = this.scratch;
    for (let j = 0; j < this.count; j++) {
      const js = s[4 * j]!;
      const je = s[4 * j + 1]!;
      if (je - js !== ke - ks) continue;
      let same = true;
      for (let x = 0; x < ke - ks && same; x++) same = buf[js + x] === buf[ks + x];
      if (same) {
        s[4 * j + 2] = vs;
        s[4 * j + 3] = ve;
        return;
      }
    }
    if (4 * (this.count + 1) > s.length) {
      const next = new Int32Array(s.length * 2);
      next.set(s);
      this.scratch = next;
    }
    const at = 4 * this.count++;
    this.scratch[at] = ks;
    this.scratch[at + 1] = ke;
    this.scratch[at + 2] = vs;
    this.scratch[at + 3] = ve;
  }

  /** Closes the current row. */
  endRow(buf: Uint8Array): void {
    const s = this.scratch;
    for (let j = 0; j < this.count; j++) {
      this.keys.appendRange(buf, s[4 * j]!, s[4 * j + 1]!);
      this.values.appendRange(buf, s[4 * j + 2]!, s[4 * j + 3]!);
    }
    this.entries += this.count;
    this.count = 0;
    this.offsets[++this.row] = this.entries;
  }

  finish(): ColumnData {
    return {
      kind: 'map',
      offsets: this.offsets,
      keys: this.keys.finish(),
      values: this.values.finish(),
    };
  }
}

/** Growable float32 / uint32 / float64 values. */
class NumGrowing<A extends Float32Array | Uint32Array> {
  values: A;
  length = 0;
  constructor(private readonly make: (n: number) => A) {
    this.values = make(1024);
  }
  push(v: number): void {
    if (this.length === this.values.length) {
      const next = this.make(this.length * 2);
      next.set(this.values);
      this.values = next;
    }
    this.values[this.length++] = v;
  }
  finish(): A {
    return this.values.subarray(0, this.length) as A;
  }
}

/** Where the per-message columns come from. */
export interface SegmentSource {
  arena: Uint8Array;
  messages: readonly SegmentMessage[];
}

/** Columns every dataset ends with: where each row came from. */
function provenanceColumns(
  p: Events,
  order: Uint32Array,
  src: SegmentSource,
): Record<string, ColumnData> {
  const n = order.length;
  const stream = new Utf8Column(n, n * 16);
  const seq = new I64Column(n);
  const batchIndex = new Uint32Array(n);
  const batchId = new Utf8Column(n, n * 24);
  const storedAt = new I64Column(n);
  const streamBytes = new Map<string, Uint8Array>();
  const { arena, messages } = src;
  for (let j = 0; j < n; j++) {
    const i = order[j]!;
    const m = messages[p.msg[i]!]!;
    let sb = streamBytes.get(m.stream);
    if (!sb) streamBytes.set(m.stream, (sb = utf8Encoder.encode(m.stream)));
    stream.appendBytes(sb);
    seq.set(j, m.seq);
    batchIndex[j] = p.batchIndex[i]!;
    batchId.appendRange(arena, m.batchIdStart, m.batchIdEnd);
    storedAt.set(j, m.storedAt);
  }
  return {
    stream: stream.finish(),
    stream_seq: seq.finish('int64'),
    batch_index: { kind: 'uint32', values: batchIndex },
    batch_id: batchId.finish(),
    stored_at: storedAt.finish('timestamp'),
  };
}

function telemetryColumns(
  p: Events,
  order: Uint32Array,
  src: SegmentSource,
): Record<string, ColumnData> {
  const n = order.length;
  const buf = src.arena;
  const r = new ProtoReader(buf);
  const eventId = new Utf8Column(n, n * 24);
  const deviceId = new Utf8Column(n, n * 12);
  const eventTime = new I64Column(n);
  const sensor = new Utf8Column(n, n * 12);
  const value = new Float64Array(n);
  const unit = new Utf8Column(n, n * 4);
  const firmware = new Utf8Column(n, n * 8);
  const schemaVersion = new Uint32Array(n);
  const attributes = new MapColumn(n);
  for (let j = 0; j < n; j++) {
    const i = order[j]!;
    const end = p.end[i]!;
    r.pos = p.start[i]!;
    let ds = 0;
    let de = 0;
    let ss = 0;
    let se = 0;
    let us = 0;
    let ue = 0;
    let fs = 0;
    let fe = 0;
    let v = 0;
    let sv = 0;
    while (r.pos < end) {
      const t = r.tag(end);
      switch (t) {
        case T.TE_DEVICE_ID:
          de = r.lenEnd(end);
          ds = r.pos;
          r.pos = de;
          break;
        case T.TE_SENSOR_TYPE:
          se = r.lenEnd(end);
          ss = r.pos;
          r.pos = se;
          break;
        case T.TE_UNIT:
          ue = r.lenEnd(end);
          us = r.pos;
          r.pos = ue;
          break;
        case T.TE_FIRMWARE:
          fe = r.lenEnd(end);
          fs = r.pos;
          r.pos = fe;
          break;
        case T.TE_VALUE:
          v = r.double(end);
          break;
        case T.TE_SCHEMA_VERSION:
          sv = readUint32(r, end);
          break;
        case T.TE_ATTRIBUTES: {
          const to = r.lenEnd(end);
          attributes.add(r, to);
          break;
        }
        default:
          // event_id and event_time were kept by the scan; region lives in the path.
          r.skip(t & 7, end);
      }
    }
    eventId.appendRange(buf, p.idStart[i]!, p.idEnd[i]!);
    deviceId.appendRange(buf, ds, de);
    eventTime.set(j, p.time[i]!);
    sensor.appendRange(buf, ss, se);
    value[j] = v;
    unit.appendRange(buf, us, ue);
    firmware.appendRange(buf, fs, fe);
    schemaVersion[j] = sv;
    attributes.endRow(buf);
  }
  return {
    event_id: eventId.finish(),
    device_id: deviceId.finish(),
    event_time: eventTime.finish('timestamp'),
    sensor_type: sensor.finish(),
    value: { kind: 'float64', values: value },
    unit: unit.finish(),
    firmware_version: firmware.finish(),
    schema_version: { kind: 'uint32', values: schemaVersion },
    attributes: attributes.finish(),
    ...provenanceColumns(p, order, src),
  };
}

function detectionColumns(
  p: Events,
  order: Uint32Array,
  src: SegmentSource,
): Record<string, ColumnData> {
  const n = order.length;
  const buf = src.arena;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const r = new ProtoReader(buf);
  const eventId = new Utf8Column(n, n * 24);
  const deviceId = new Utf8Column(n, n * 12);
  const streamId = new Utf8Column(n, n * 12);
  const frameTime = new I64Column(n);
  const firmware = new Utf8Column(n, n * 8);
  const schemaVersion = new Uint32Array(n);
  const attributes = new MapColumn(n);
  const listOffsets = new Int32Array(n + 1);
  const objectId = new Utf8Growing(Math.max(1024, n));
  const classId = new NumGrowing((k) => new Uint32Array(k));
  const label = new Utf8Growing(Math.max(1024, n));
  const confidence = new NumGrowing((k) => new Float32Array(k));
  const trackerId = new Utf8Growing(Math.max(1024, n));
  const boxes = [0, 1, 2, 3].map(() => new NumGrowing((k) => new Float32Array(k)));
  const boxValid: number[] = [];
  let items = 0;
  for (let j = 0; j < n; j++) {
    const i = order[j]!;
    const end = p.end[i]!;
    r.pos = p.start[i]!;
    let ds = 0;
    let de = 0;
    let ss = 0;
    let se = 0;
    let fs = 0;
    let fe = 0;
    let sv = 0;
    while (r.pos < end) {
      const t = r.tag(end);
      switch (t) {
        case T.DE_DEVICE_ID:
          de = r.lenEnd(end);
          ds = r.pos;
          r.pos = de;
          break;
        case T.DE_STREAM_ID:
          se = r.lenEnd(end);
          ss = r.pos;
          r.pos = se;
          break;
        case T.DE_FIRMWARE:
          fe = r.lenEnd(end);
          fs = r.pos;
          r.pos = fe;
          break;
        case T.DE_SCHEMA_VERSION:
          sv = readUint32(r, end);
          break;
        case T.DE_ATTRIBUTES: {
          const to = r.lenEnd(end);
          attributes.add(r, to);
          break;
        }
        case T.DE_DETECTIONS: {
          const to = r.lenEnd(end);
          let os = 0;
          let oe = 0;
          let ls = 0;
          let le = 0;
          let ts = 0;
          let te = 0;
          let cls = 0;
          let conf = 0;
          let box = -1;
          while (r.pos < to) {
            const dt = r.tag(to);
            switch (dt) {
              case T.D_OBJECT_ID:
                oe = r.lenEnd(to);
                os = r.pos;
                r.pos = oe;
                break;
              case T.D_CLASS_ID:
                cls = readUint32(r, to);
                break;
              case T.D_LABEL:
                le = r.lenEnd(to);
                ls = r.pos;
                r.pos = le;
                break;
              case T.D_CONFIDENCE:
                conf = view.getFloat32(r.pos, true);
                r.pos += 4;
                break;
              case T.D_TRACKER_ID:
                te = r.lenEnd(to);
                ts = r.pos;
                r.pos = te;
                break;
              case T.D_BBOX:
                // A box seen twice: the last one, as the generated decoder keeps it.
                box = r.pos;
                r.pos = r.lenEnd(to);
                break;
              default:
                r.skip(dt & 7, to);
            }
          }
          objectId.appendRange(buf, os, oe);
          classId.push(cls);
          label.appendRange(buf, ls, le);
          confidence.push(conf);
          trackerId.appendRange(buf, ts, te);
          const lrtb = [0, 0, 0, 0];
          if (box >= 0) {
            const after = r.pos;
            r.pos = box;
            const boxEnd = r.lenEnd(to);
            while (r.pos < boxEnd) {
              const bt = r.tag(boxEnd);
              const f =
                bt === T.B_LEFT
                  ? 0
                  : bt === T.B_TOP
                    ? 1
                    : bt === T.B_WIDTH
                      ? 2
                      : bt === T.B_HEIGHT
                        ? 3
                        : -1;
              if (f >= 0) {
                lrtb[f] = view.getFloat32(r.pos, true);
                r.pos += 4;
              } else r.skip(bt & 7, boxEnd);
            }
            r.pos = after;
          }
          for (let f = 0; f < 4; f++) boxes[f]!.push(lrtb[f]!);
          boxValid.push(box >= 0 ? 1 : 0);
          items++;
          break;
        }
        default:
          r.skip(t & 7, end);
      }
    }
    eventId.appendRange(buf, p.idStart[i]!, p.idEnd[i]!);
    deviceId.appendRange(buf, ds, de);
    streamId.appendRange(buf, ss, se);
    frameTime.set(j, p.time[i]!);
    firmware.appendRange(buf, fs, fe);
    schemaVersion[j] = sv;
    attributes.endRow(buf);
    listOffsets[j + 1] = items;
  }
  return {
    event_id: eventId.finish(),
    device_id: deviceId.finish(),
    stream_id: streamId.finish(),
    frame_time: frameTime.finish('timestamp'),
    firmware_version: firmware.finish(),
    schema_version: { kind: 'uint32', values: schemaVersion },
    attributes: attributes.finish(),
    detections: {
      kind: 'detections',
      offsets: listOffsets,
      objectId: objectId.finish(),
      classId: classId.finish(),
      label: label.finish(),
      confidence: confidence.finish(),
      trackerId: trackerId.finish(),
      bbox: {
        left: boxes[0]!.finish(),
        top: boxes[1]!.finish(),
        width: boxes[2]!.finish(),
        height: boxes[3]!.finish(),
        valid: Uint8Array.from(boxValid),
      },
    },
    ...provenanceColumns(p, order, src),
  };
}

/** A partition's columns in file order, straight from the wire bytes. */
export function partitionColumns(
  p: Events,
  order: Uint32Array,
  src: SegmentSource,
): Record<string, ColumnData> {
  return p.dataset === 'telemetry'
    ? telemetryColumns(p, order, src)
    : detectionColumns(p, order, src);
}

/** The same partition as row objects, in file order (the JSONL.gz format writes these). */
export function partitionRows(p: Events, order: Uint32Array, src: SegmentSource): Rows {
  const rows: Row[] = [];
  for (const i of order) {
    const m = src.messages[p.msg[i]!]!;
    const bytes = src.arena.subarray(p.start[i]!, p.end[i]!);
    const event: Event =
      p.dataset === 'telemetry'
        ? { kind: { $case: 'telemetry', value: TelemetryEvent.decode(bytes) } }
        : { kind: { $case: 'detection', value: DetectionEvent.decode(bytes) } };
    rows.push(
      toRow(event, {
        stream: m.stream,
        stream_seq: m.seq,
        batch_index: p.batchIndex[i]!,
        batch_id: utf8Decoder.decode(src.arena.subarray(m.batchIdStart, m.batchIdEnd)),
        stored_at: m.storedAt,
      }),
    );
  }
  return { dataset: p.dataset, rows } as Rows;
}

/** One partition of a segment: its events and the messages they came from. */
export interface SegmentPartition {
  key: string;
  ref: PartitionRef;
  events: PartitionEvents;
  seqs: Set<number>;
}

const DAY_MS = 86_400_000;
/** Region path segments and event dates by what they are made of (both repeat endlessly). */
const regionSegments = new Map<string, string>();
const dates = new Map<number, string>();

function regionOf(raw: string): string {
  let region = regionSegments.get(raw);
  if (region === undefined) {
    region = regionSegment(raw);
    if (regionSegments.size >= 10_000) regionSegments.clear();
    regionSegments.set(raw, region);
  }
  return region;
}

function dateOf(day: number): string {
  let date = dates.get(day);
  if (date === undefined) {
    date = eventDate(day * DAY_MS);
    if (dates.size >= 100_000) dates.clear();
    dates.set(day, date);
  }
  return date;
}

/** What one message adds to a segment besides its events. */
export interface MessageInfo {
  stream: string;
  seq: number;
  /** When JetStream stored it (epoch ms). */
  storedAt: number;
  /** The region of its subject (`…clean.<region>`), for events that name none. */
  subjectRegion: () => string;
}

/** A segment's events: the accepted messages' bytes and, per partition, where each event is. */
export class SegmentEvents {
  arena: ByteArena;
  messages: SegmentMessage[] = [];
  readonly partitions = new Map<string, SegmentPartition>();
  rows = 0;
  maxPartitionRows = 0;

  /** @param arenaBytes the arena's first size (e.g. what the previous segment needed). Default 1 MiB. */
  constructor(arenaBytes = 1 << 20) {
    this.arena = new ByteArena(Math.max(1 << 16, arenaBytes));
  }

  /**
   * Adds the events of a scanned message, except those at the indexes in `skip` (which the caller
   * has dead-lettered), each to the partition of its dataset, region and event date.
   */
  add(b: ScannedBatch, m: MessageInfo, skip: ReadonlySet<number>): void {
    const base = this.arena.append(b.bytes);
    const msg =
      this.messages.push({
        stream: m.stream,
        seq: m.seq,
        storedAt: m.storedAt,
        batchIdStart: base + b.batchIdStart,
        batchIdEnd: base + b.batchIdEnd,
      }) - 1;
    // Consecutive events mostly share a partition: the last one is checked first.
    let lastKind = -1;
    let lastRegion = '';
    let lastDay = Number.NaN;
    let p: SegmentPartition | undefined;
    let added = 0;
    for (let i = 0; i < b.count; i++) {
      if (skip.size > 0 && skip.has(i)) continue;
      const kind = b.kind[i]!;
      const rawRegion = b.region[i]!;
      const day = Math.floor(b.time[i]! / DAY_MS);
      if (!p || kind !== lastKind || rawRegion !== lastRegion || day !== lastDay) {
        const ref: PartitionRef = {
          dataset: kind === KIND_TELEMETRY ? 'telemetry' : 'detections',
          region: regionOf(rawRegion || m.subjectRegion()),
          eventDate: dateOf(day),
        };
        const key = partitionKey(ref);
        p = this.partitions.get(key);
        if (!p) {
          p = { key, ref, events: new PartitionEvents(ref.dataset), seqs: new Set() };
          this.partitions.set(key, p);
        }
        lastKind = kind;
        lastRegion = rawRegion;
        lastDay = day;
      }
      p.events.push(base, b, i, msg);
      p.seqs.add(m.seq);
      if (p.events.length > this.maxPartitionRows) this.maxPartitionRows = p.events.length;
      added++;
    }
    this.rows += added;
  }

  /** The partitions by key (the order their files are written in). */
  sorted(): SegmentPartition[] {
    return [...this.partitions.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  /** Drops the events' bytes (once encoded); the partitions' sequences stay. */
  release(): void {
    this.arena.free();
    this.arena = new ByteArena(0);
    this.messages = [];
    for (const p of this.partitions.values()) p.events = new PartitionEvents(p.ref.dataset);
  }

  /** One partition as a file of `format`, rows sorted by (device_id, event time, event_id). */
  encode(p: SegmentPartition, format: FileFormat, opts: ParquetOptions = {}): Uint8Array {
    return encodePartition(
      p.events,
      { arena: this.arena.buf, messages: this.messages },
      format,
      opts,
    );
  }

  /** The segment as a worker thread takes it; the arena's buffer moves with it (see `transfer`). */
  toTransfer(): SegmentTransfer {
    return {
      arena: this.arena.buf,
      messages: this.messages,
      partitions: [...this.partitions.values()].map((p) => p.events.toTransfer()),
    };
  }
}

/** A segment's events as plain data for `postMessage`. */
export interface SegmentTransfer {
  arena: Uint8Array;
  messages: SegmentMessage[];
  partitions: PartitionTransfer[];
}

/** One partition's events as plain data (typed arrays trimmed to `length`). */
export interface PartitionTransfer {
  dataset: Dataset;
  length: number;
  start: Int32Array;
  end: Int32Array;
  idStart: Int32Array;
  idEnd: Int32Array;
  msg: Int32Array;
  batchIndex: Int32Array;
  time: Float64Array;
  device: Int32Array;
  devices: string[];
  minTime: number;
  maxTime: number;
}

/** One partition's events as a file of `format`, rows sorted by (device_id, event time, event_id). */
export function encodePartition(
  events: PartitionEvents | PartitionTransfer,
  src: SegmentSource,
  format: FileFormat,
  opts: ParquetOptions = {},
): Uint8Array {
  const order = sortOrder(events, src.arena);
  return format === 'parquet'
    ? encodeColumnsParquet(events.dataset, order.length, partitionColumns(events, order, src), opts)
    : encodeJsonlGz(partitionRows(events, order, src));
}

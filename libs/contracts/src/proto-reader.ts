// A forward-only protobuf wire reader for hot paths that need a few fields of a large batch without
// the generated decoder's objects (apps/aggregator reads readings, apps/dedupe ids and times).

/** Wire types. */
import { SluiceError } from '@sluice/errors';

export const WIRE = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;

/** The bytes break the protobuf wire format (truncated, overlong, a group or field number 0). */
export class ProtoFormatError extends SluiceError {
  override readonly name = 'ProtoFormatError';
  readonly code = 'proto_format';
  constructor(message: string) {
    super(message, { httpStatus: 400 });
  }
}

/** Dates beyond ±8.64e15 ms are invalid (as `new Date` has them). */
const MAX_DATE_MS = 8.64e15;
// ignoreBOM keeps a leading U+FEFF in the string, as the generated decoders do.
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Short ASCII strings seen before (device ids, sensors, regions repeat in every batch), by a hash of
 * their bytes: a hit costs no allocation, and the string's own hash is already computed for the Maps
 * it is looked up in. Bounded: cleared when full.
 */
const interned = new Map<number, string>();
const INTERN_MAX = 65_536;

/**
 * Reads one message's bytes. Positions are absolute; every read checks the bound it is given (the
 * end of the enclosing message), so a truncated or overlong field throws {@link ProtoFormatError}
 * instead of reading the next field's bytes. Decodes what the generated (ts-proto) decoders decode:
 * strings as UTF-8 without validation, int64 only within the safe integer range.
 */
export class ProtoReader {
  pos = 0;
  private lo = 0;
  private hi = 0;
  private readonly view: DataView;

  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** A varint of at most 35 bits (tags, lengths). */
  uint32(end: number): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= end) throw new ProtoFormatError('truncated varint');
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
    throw new ProtoFormatError('varint longer than 32 bits');
  }

  /** Reads a varint of up to 64 bits into lo/hi (two's complement halves). */
  private varint64(end: number): void {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) throw new ProtoFormatError('truncated varint');
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
    throw new ProtoFormatError('varint longer than 64 bits');
  }

  /** An int64 that must be a safe integer (as the generated decoders require). */
  int64(end: number): number {
    this.varint64(end);
    const n = (this.hi | 0) * 4_294_967_296 + (this.lo >>> 0);
    if (!Number.isSafeInteger(n)) throw new ProtoFormatError('int64 beyond the safe integer range');
    return n;
  }

  int32(end: number): number {
    this.varint64(end);
    return this.lo | 0;
  }

  double(end: number): number {
    if (this.pos + 8 > end) throw new ProtoFormatError('truncated double');
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Reads a length prefix; returns the end of the field's bytes (the reader stands at their start). */
  lenEnd(end: number): number {
    const len = this.uint32(end);
    const to = this.pos + len;
    if (to > end) throw new ProtoFormatError('length-delimited field overruns its message');
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
    const s = String.fromCharCode.apply(null, this.buf.subarray(from, to) as unknown as number[]);
    if (interned.size >= INTERN_MAX) interned.clear();
    interned.set(h, s);
    return s;
  }

  /** A `google.protobuf.Timestamp` field → epoch ms, truncated like `Date` (NaN outside its range). */
  timestampMs(end: number): number {
    const to = this.lenEnd(end);
    let seconds = 0;
    let nanos = 0;
    while (this.pos < to) {
      const tag = this.tag(to);
      if (tag === ((1 << 3) | WIRE.VARINT)) seconds = this.int64(to);
      else if (tag === ((2 << 3) | WIRE.VARINT)) nanos = this.int32(to);
      else this.skip(tag & 7, to);
    }
    const ms = Math.trunc(seconds * 1000 + nanos / 1_000_000);
    return Math.abs(ms) > MAX_DATE_MS ? Number.NaN : ms;
  }

  skip(wireType: number, end: number): void {
    switch (wireType) {
      case WIRE.VARINT:
        this.varint64(end);
        return;
      case WIRE.I64:
        this.pos += 8;
        break;
      case WIRE.LEN:
        this.pos = this.lenEnd(end);
        return;
      case WIRE.I32:
        this.pos += 4;
        break;
      default:
        // Groups (3, 4) and the reserved types 6, 7: no Sluice message has them.
        throw new ProtoFormatError(`unsupported wire type ${wireType}`);
    }
    if (this.pos > end) throw new ProtoFormatError('truncated fixed-width field');
  }

  /** A tag, rejecting field number 0. */
  tag(end: number): number {
    const tag = this.uint32(end);
    if (tag >>> 3 === 0) throw new ProtoFormatError('field number 0');
    return tag;
  }
}

import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

/** EventBatch.batch_id (field 1, length-delimited) tag. */
const BATCH_ID_TAG = (1 << 3) | WireType.LengthDelimited;

/** Reads the varint at `at`; returns [value, next position] or undefined if truncated / over 2^53. */
function varint(buf: Uint8Array, at: number): [number, number] | undefined {
  let value = 0;
  let scale = 1;
  for (let i = at; i < buf.length && i < at + 8; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, i + 1];
    scale *= 128;
  }
  // 64-bit varints longer than 8 bytes (e.g. negative int64) only occur in fields we skip as a whole.
  for (let i = at + 8; i < buf.length && i < at + 10; i++)
    if (buf[i]! < 0x80) return [value, i + 1];
  return undefined;
}

/**
 * The clean payload of a raw message whose events are ALL kept: the raw EventBatch bytes with
 * `batch_id` replaced, without decoding and re-encoding the events (the costliest step of the
 * pass-through path). Protobuf merges concatenated fields, so `{batch_id}` + every top-level field of
 * the raw batch except its own `batch_id` (field 1) is the same EventBatch with the new id; the event
 * bytes are forwarded unchanged. Returns undefined when the top level holds something this scanner
 * does not handle (groups, truncation): the caller then re-encodes. `raw` must already have decoded
 * as an EventBatch.
 */
export function rebatchRaw(raw: Uint8Array, batchId: string): Uint8Array | undefined {
  // Byte ranges of the raw batch to keep, merged when adjacent (normally one: all events after the id).
  const ranges: number[] = [];
  let at = 0;
  while (at < raw.length) {
    const start = at;
    const tag = varint(raw, at);
    if (!tag) return undefined;
    at = tag[1];
    switch (tag[0] & 7) {
      case WireType.Varint: {
        const v = varint(raw, at);
        if (!v) return undefined;
        at = v[1];
        break;
      }
      case WireType.Bit64:
        at += 8;
        break;
      case WireType.Bit32:
        at += 4;
        break;
      case WireType.LengthDelimited: {
        const len = varint(raw, at);
        if (!len) return undefined;
        at = len[1] + len[0];
        break;
      }
      default:
        return undefined;
    }
    if (at > raw.length) return undefined;
    if (tag[0] >>> 3 === 1) continue;
    if (ranges.length > 0 && ranges[ranges.length - 1] === start) ranges[ranges.length - 1] = at;
    else ranges.push(start, at);
  }
  return batchOfEvents(raw, batchId, ranges);
}

/**
 * `{batch_id}` followed by byte ranges of the raw batch (`ranges`: [start, end) pairs of whole
 * top-level fields): for a partly duplicate message, the kept events' fields from
 * `decodeRawMessage`. No event is decoded or re-encoded.
 */
export function batchOfEvents(
  raw: Uint8Array,
  batchId: string,
  ranges: readonly number[],
): Uint8Array {
  const header = new BinaryWriter().uint32(BATCH_ID_TAG).string(batchId).finish();
  let size = header.length;
  for (let i = 0; i < ranges.length; i += 2) size += ranges[i + 1]! - ranges[i]!;
  const out = new Uint8Array(size);
  out.set(header, 0);
  let to = header.length;
  for (let i = 0; i < ranges.length; i += 2) {
    out.set(raw.subarray(ranges[i], ranges[i + 1]), to);
    to += ranges[i + 1]! - ranges[i]!;
  }
  return out;
}

import type { JsMsg } from '@nats-io/jetstream';
import { PoisonMessageError } from '@sluice/actor';
import {
  DecodeError,
  NAME_TOKEN_PATTERN,
  ProtoFormatError,
  ProtoReader,
  WIRE,
  type Topology,
} from '@sluice/contracts';

/** A raw message, scanned and reduced to the first occurrence of each event id. */
export interface RawMessage {
  /** Region of the clean subject. */
  region: string;
  /** Event id of each distinct event, in original order (the first of each id). */
  ids: string[];
  /** Event time (ms since the epoch, 0 when unset) of each of `ids`: picks the claim's bucket. */
  times: number[];
  /** Byte range [start, end) in `bytes` of each of `ids`' whole `events` field (tag, length, body). */
  spans: number[];
  /** Events dropped because their id occurred earlier in the same message. */
  repeatedInMessage: number;
  /** The raw EventBatch bytes: the clean payload is made from them, never re-encoded. */
  bytes: Uint8Array;
  /** The batch's `batch_id` (last occurrence wins). */
  batchId: string;
}

const TYPE = 'sluice.telemetry.v1.EventBatch';
const { LEN } = WIRE;
const tag = (field: number, wireType: number) => (field << 3) | wireType;

/** Fields holding nested messages, per message type: checked as protobuf down to the leaves. */
type Shape = ReadonlyMap<number, Shape>;
const LEAF: Shape = new Map();
const MAP_ENTRY = LEAF;
const DETECTION: Shape = new Map([[6, LEAF /* BoundingBox */]]);

/** Walks a message's fields, descending into the nested messages `shape` names. */
function check(r: ProtoReader, end: number, shape: Shape): void {
  while (r.pos < end) {
    const t = r.tag(end);
    const child = (t & 7) === LEN ? shape.get(t >>> 3) : undefined;
    if (child === undefined) r.skip(t & 7, end);
    else {
      const to = r.lenEnd(end);
      check(r, to, child);
    }
  }
}

interface Scanned {
  id: string;
  time: number;
  region: string;
}

/**
 * TelemetryEvent (event_id 1, event_time 3, region 8, attributes 10) or DetectionEvent (event_id 1,
 * frame_time 4, region 5, detections 7, attributes 8): the id, time and region, every other field
 * checked or skipped. The last occurrence of a field wins, as in the generated decoders.
 */
function scanEvent(r: ProtoReader, end: number, detection: boolean): Scanned {
  const timeField = detection ? 4 : 3;
  const regionField = detection ? 5 : 8;
  const attributesField = detection ? 8 : 10;
  let id = '';
  let time = Number.NaN;
  let hasTime = false;
  let region = '';
  while (r.pos < end) {
    const t = r.tag(end);
    if (t === tag(1, LEN)) id = r.string(end);
    else if (t === tag(timeField, LEN)) {
      time = r.timestampMs(end);
      hasTime = true;
    } else if (t === tag(regionField, LEN)) region = r.string(end);
    else if (t === tag(attributesField, LEN)) check(r, r.lenEnd(end), MAP_ENTRY);
    else if (detection && t === tag(7, LEN)) check(r, r.lenEnd(end), DETECTION);
    else r.skip(t & 7, end);
  }
  return { id, time: hasTime ? time : 0, region };
}

/**
 * Scans a raw EventBatch without building Event objects: per event its kind, id, time and region,
 * and the byte range of the whole event, so the clean batch is made of the raw event bytes. Every
 * nested message is checked to be well-formed protobuf, so what passes here decodes downstream.
 *
 * Throws (→ the actor dead-letters the message): `DecodeError` for bytes that are not an EventBatch;
 * `PoisonMessageError` for an event without a kind or an id, or when no region can be found. The
 * region comes from the subject (`telemetry.raw.<region>`); for a subject outside the topology (e.g.
 * a per-region stream with its own subjects) every event must carry the same valid region.
 */
export function decodeRawMessage(
  msg: Pick<JsMsg, 'data' | 'subject'>,
  topology: Topology,
): RawMessage {
  const bytes = msg.data;
  const r = new ProtoReader(bytes);
  const out: RawMessage = {
    region: '',
    ids: [],
    times: [],
    spans: [],
    repeatedInMessage: 0,
    bytes,
    batchId: '',
  };
  const regions = new Set<string>();
  const seen = new Set<string>();
  let index = 0;
  try {
    while (r.pos < bytes.length) {
      const start = r.pos;
      const t = r.tag(bytes.length);
      if (t === tag(1, LEN)) {
        out.batchId = r.string(bytes.length);
        continue;
      }
      if (t !== tag(2, LEN)) {
        r.skip(t & 7, bytes.length);
        continue;
      }
      const eventEnd = r.lenEnd(bytes.length);
      let scanned: Scanned | undefined;
      while (r.pos < eventEnd) {
        const et = r.tag(eventEnd);
        // Event.kind is a oneof: the last member present wins.
        if (et === tag(1, LEN) || et === tag(2, LEN))
          scanned = scanEvent(r, r.lenEnd(eventEnd), et === tag(2, LEN));
        else r.skip(et & 7, eventEnd);
      }
      const i = index++;
      if (scanned === undefined)
        throw new PoisonMessageError(`event ${i} has no kind (telemetry or detection)`);
      if (scanned.id === '')
        throw new PoisonMessageError(`event ${i} has an empty event_id; dedupe cannot claim it`);
      if (seen.has(scanned.id)) {
        out.repeatedInMessage++;
        continue;
      }
      seen.add(scanned.id);
      regions.add(scanned.region);
      out.ids.push(scanned.id);
      out.times.push(scanned.time);
      out.spans.push(start, eventEnd);
    }
  } catch (err) {
    if (err instanceof ProtoFormatError) throw new DecodeError(TYPE, bytes.length, err);
    throw err;
  }
  const parsed = topology.parse(msg.subject);
  // A clean subject too: the re-seed reads the clean stream with this scanner.
  if (parsed?.kind === 'raw' || parsed?.kind === 'clean') out.region = parsed.region;
  else {
    const only = regions.size === 1 ? [...regions][0]! : undefined;
    if (only === undefined || !NAME_TOKEN_PATTERN.test(only)) {
      throw new PoisonMessageError(
        `subject "${msg.subject}" is not a raw subject and the events do not share one valid region`,
      );
    }
    out.region = only;
  }
  return out;
}

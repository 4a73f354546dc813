// Binary encoding of the messages carried on the streams, and accessors over the Event oneof.
import { SluiceError } from '@sluice/errors';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { DeadLetter } from './gen/sluice/ops/v1/dead_letter';
import { Rollup } from './gen/sluice/telemetry/v1/rollup';
import { EventBatch, type Event } from './gen/sluice/telemetry/v1/telemetry';

/** Bytes that are not a valid encoding of the expected message. */
export class DecodeError extends SluiceError {
  override readonly name = 'DecodeError';
  readonly code = 'decode_failed';

  constructor(
    /** Fully-qualified protobuf type that was expected, e.g. `sluice.telemetry.v1.EventBatch`. */
    readonly messageType: string,
    /** Length of the rejected input. */
    readonly byteLength: number,
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`cannot decode ${messageType} from ${byteLength} bytes: ${reason}`, {
      cause,
      httpStatus: 400,
    });
  }
}

/** An Event whose oneof `kind` is not set; every producer must set it. */
export class MissingEventKindError extends SluiceError {
  override readonly name = 'MissingEventKindError';
  readonly code = 'event_kind_missing';

  constructor() {
    super('event has no kind: exactly one of "telemetry" or "detection" must be set', {
      httpStatus: 400,
    });
  }
}

function decode<T>(
  fns: { decode(input: BinaryReader | Uint8Array): T },
  messageType: string,
  bytes: Uint8Array,
): T {
  try {
    const reader = new BinaryReader(bytes);
    const message = fns.decode(reader);
    // Generated decoders return early, without error, at an end-group or zero tag; bytes left over
    // mean the input was not this message (a JSON body starting with "d" would "decode" as empty).
    if (reader.pos !== reader.len) {
      throw new Error(
        `decoding stopped at byte ${reader.pos} of ${reader.len} (stray end-group or zero tag)`,
      );
    }
    return message;
  } catch (error) {
    throw new DecodeError(messageType, bytes.byteLength, error);
  }
}

export function encodeBatch(batch: EventBatch): Uint8Array {
  return EventBatch.encode(batch).finish();
}

/** Throws {@link DecodeError}. */
export function decodeBatch(bytes: Uint8Array): EventBatch {
  return decode(EventBatch, 'sluice.telemetry.v1.EventBatch', bytes);
}

export function encodeRollup(rollup: Rollup): Uint8Array {
  return Rollup.encode(rollup).finish();
}

/** Throws {@link DecodeError}. */
export function decodeRollup(bytes: Uint8Array): Rollup {
  return decode(Rollup, 'sluice.telemetry.v1.Rollup', bytes);
}

export function encodeDeadLetter(deadLetter: DeadLetter): Uint8Array {
  return DeadLetter.encode(deadLetter).finish();
}

/** Throws {@link DecodeError}. */
export function decodeDeadLetter(bytes: Uint8Array): DeadLetter {
  return decode(DeadLetter, 'sluice.ops.v1.DeadLetter', bytes);
}

function payload(event: Event) {
  if (event.kind === undefined) throw new MissingEventKindError();
  return event.kind.value;
}

/** Throws {@link MissingEventKindError}. */
export function eventId(event: Event): string {
  return payload(event).eventId;
}

/** Throws {@link MissingEventKindError}. */
export function eventRegion(event: Event): string {
  return payload(event).region;
}

/** Throws {@link MissingEventKindError}. */
export function eventDeviceId(event: Event): string {
  return payload(event).deviceId;
}

/**
 * When it happened by the device clock: `eventTime` of a reading, `frameTime` of a detection.
 * Throws {@link MissingEventKindError}.
 */
export function eventTime(event: Event): Date | undefined {
  if (event.kind === undefined) throw new MissingEventKindError();
  return event.kind.$case === 'telemetry' ? event.kind.value.eventTime : event.kind.value.frameTime;
}

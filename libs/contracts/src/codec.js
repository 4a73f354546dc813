"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.MissingEventKindError = exports.DecodeError = void 0;
exports.encodeBatch = encodeBatch;
exports.decodeBatch = decodeBatch;
exports.encodeRollup = encodeRollup;
exports.decodeRollup = decodeRollup;
exports.encodeDeadLetter = encodeDeadLetter;
exports.decodeDeadLetter = decodeDeadLetter;
exports.eventId = eventId;
exports.eventRegion = eventRegion;
exports.eventDeviceId = eventDeviceId;
exports.eventTime = eventTime;
// Binary encoding of the messages carried on the streams, and accessors over the Event oneof.
const wire_1 = require("@bufbuild/protobuf/wire");
const dead_letter_1 = require("./gen/sluice/ops/v1/dead_letter");
const rollup_1 = require("./gen/sluice/telemetry/v1/rollup");
const telemetry_1 = require("./gen/sluice/telemetry/v1/telemetry");
/** Bytes that are not a valid encoding of the expected message. */
class DecodeError extends Error {
    messageType;
    byteLength;
    name = 'DecodeError';
    constructor(
    /** Fully-qualified protobuf type that was expected, e.g. `sluice.telemetry.v1.EventBatch`. */
    messageType, 
    /** Length of the rejected input. */
    byteLength, cause) {
        const reason = cause instanceof Error ? cause.message : String(cause);
        super(`cannot decode ${messageType} from ${byteLength} bytes: ${reason}`, { cause });
        this.messageType = messageType;
        this.byteLength = byteLength;
    }
}
exports.DecodeError = DecodeError;
/** An Event whose oneof `kind` is not set; every producer must set it. */
class MissingEventKindError extends Error {
    name = 'MissingEventKindError';
    constructor() {
        super('event has no kind: exactly one of "telemetry" or "detection" must be set');
    }
}
exports.MissingEventKindError = MissingEventKindError;
function decode(fns, messageType, bytes) {
    try {
        const reader = new wire_1.BinaryReader(bytes);
        const message = fns.decode(reader);
        // Generated decoders return early, without error, at an end-group or zero tag; bytes left over
        // mean the input was not this message (a JSON body starting with "d" would "decode" as empty).
        if (reader.pos !== reader.len) {
            throw new Error(`decoding stopped at byte ${reader.pos} of ${reader.len} (stray end-group or zero tag)`);
        }
        return message;
    }
    catch (error) {
        throw new DecodeError(messageType, bytes.byteLength, error);
    }
}
function encodeBatch(batch) {
    return telemetry_1.EventBatch.encode(batch).finish();
}
/** Throws {@link DecodeError}. */
function decodeBatch(bytes) {
    return decode(telemetry_1.EventBatch, 'sluice.telemetry.v1.EventBatch', bytes);
}
function encodeRollup(rollup) {
    return rollup_1.Rollup.encode(rollup).finish();
}
/** Throws {@link DecodeError}. */
function decodeRollup(bytes) {
    return decode(rollup_1.Rollup, 'sluice.telemetry.v1.Rollup', bytes);
}
function encodeDeadLetter(deadLetter) {
    return dead_letter_1.DeadLetter.encode(deadLetter).finish();
}
/** Throws {@link DecodeError}. */
function decodeDeadLetter(bytes) {
    return decode(dead_letter_1.DeadLetter, 'sluice.ops.v1.DeadLetter', bytes);
}
function payload(event) {
    if (event.kind === undefined)
        throw new MissingEventKindError();
    return event.kind.value;
}
/** Throws {@link MissingEventKindError}. */
function eventId(event) {
    return payload(event).eventId;
}
/** Throws {@link MissingEventKindError}. */
function eventRegion(event) {
    return payload(event).region;
}
/** Throws {@link MissingEventKindError}. */
function eventDeviceId(event) {
    return payload(event).deviceId;
}
/**
 * When it happened by the device clock: `eventTime` of a reading, `frameTime` of a detection.
 * Throws {@link MissingEventKindError}.
 */
function eventTime(event) {
    if (event.kind === undefined)
        throw new MissingEventKindError();
    return event.kind.$case === 'telemetry' ? event.kind.value.eventTime : event.kind.value.frameTime;
}
//# sourceMappingURL=codec.js.map
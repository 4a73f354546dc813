import { DeadLetter } from './gen/sluice/ops/v1/dead_letter';
import { Rollup } from './gen/sluice/telemetry/v1/rollup';
import { EventBatch, type Event } from './gen/sluice/telemetry/v1/telemetry';
/** Bytes that are not a valid encoding of the expected message. */
export declare class DecodeError extends Error {
    /** Fully-qualified protobuf type that was expected, e.g. `sluice.telemetry.v1.EventBatch`. */
    readonly messageType: string;
    /** Length of the rejected input. */
    readonly byteLength: number;
    readonly name = "DecodeError";
    constructor(
    /** Fully-qualified protobuf type that was expected, e.g. `sluice.telemetry.v1.EventBatch`. */
    messageType: string, 
    /** Length of the rejected input. */
    byteLength: number, cause: unknown);
}
/** An Event whose oneof `kind` is not set; every producer must set it. */
export declare class MissingEventKindError extends Error {
    readonly name = "MissingEventKindError";
    constructor();
}
export declare function encodeBatch(batch: EventBatch): Uint8Array;
/** Throws {@link DecodeError}. */
export declare function decodeBatch(bytes: Uint8Array): EventBatch;
export declare function encodeRollup(rollup: Rollup): Uint8Array;
/** Throws {@link DecodeError}. */
export declare function decodeRollup(bytes: Uint8Array): Rollup;
export declare function encodeDeadLetter(deadLetter: DeadLetter): Uint8Array;
/** Throws {@link DecodeError}. */
export declare function decodeDeadLetter(bytes: Uint8Array): DeadLetter;
/** Throws {@link MissingEventKindError}. */
export declare function eventId(event: Event): string;
/** Throws {@link MissingEventKindError}. */
export declare function eventRegion(event: Event): string;
/** Throws {@link MissingEventKindError}. */
export declare function eventDeviceId(event: Event): string;
/**
 * When it happened by the device clock: `eventTime` of a reading, `frameTime` of a detection.
 * Throws {@link MissingEventKindError}.
 */
export declare function eventTime(event: Event): Date | undefined;

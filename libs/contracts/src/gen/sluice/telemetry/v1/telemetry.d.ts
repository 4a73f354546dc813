import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
export declare const protobufPackage = "sluice.telemetry.v1";
export declare const protobufFileName = "sluice/telemetry/v1/telemetry.proto";
/**
 * One sensor reading from one device. Canonical form of wire schema versions 1 and 2
 * (see docs/CONTRACTS.md); everything downstream of the gateway sees only this.
 */
export interface TelemetryEvent {
    /**
     * Globally unique id chosen by the device: 1..128 characters of [A-Za-z0-9._:-].
     * Dedupe claims it; MongoDB uses it as `_id`.
     */
    eventId: string;
    /** 1..128 printable characters. */
    deviceId: string;
    /** When the reading was taken (device clock). Windows are by this time, never arrival time. */
    eventTime?: Date | undefined;
    /** What was measured, for example "engine_temp". */
    sensorType: string;
    value: number;
    /** Unit of `value`, for example "celsius"; "1" for dimensionless values. */
    unit: string;
    /** Empty when the device did not report it. */
    firmwareVersion: string;
    /** Routing region; a NATS subject token (see libs/contracts/src/subjects.ts). */
    region: string;
    /** Wire schema version the event arrived as (1 or 2); 0 = not from the JSON wire. */
    schemaVersion: number;
    /** Free-form device metadata, bounded by the gateway's limits. */
    attributes: {
        [key: string]: string;
    };
}
export interface TelemetryEvent_AttributesEntry {
    key: string;
    value: string;
}
/**
 * Axis-aligned box, normalised to the frame: every coordinate is a fraction of the frame width
 * (left, width) or height (top, height) in [0, 1], origin top-left, and the box lies inside the
 * frame (left + width <= 1, top + height <= 1). Pixel boxes are converted on the device.
 */
export interface BoundingBox {
    left: number;
    top: number;
    width: number;
    height: number;
}
/** One object found in one frame. */
export interface Detection {
    /** Id of this detection, unique within its DetectionEvent. */
    objectId: string;
    /** Model class index. */
    classId: number;
    /** Human-readable class, for example "person". */
    label: string;
    /** Model confidence in [0, 1]. */
    confidence: number;
    /**
     * Identity assigned by a multi-object tracker, stable across frames; empty when untracked.
     * A string, because tracker ids are often 64-bit and would lose precision as JS numbers.
     */
    trackerId: string;
    bbox?: BoundingBox | undefined;
}
/** The objects detected in one frame of one camera/source stream. */
export interface DetectionEvent {
    /** Same rules as TelemetryEvent.event_id. */
    eventId: string;
    deviceId: string;
    /** Camera or source stream on the device, for example "cam-1". */
    streamId: string;
    /** Capture time of the frame (device clock). */
    frameTime?: Date | undefined;
    region: string;
    /** Wire schema version the event arrived as (2); 0 = not from the JSON wire. */
    schemaVersion: number;
    /** May be empty: "looked, saw nothing" is information. */
    detections: Detection[];
    attributes: {
        [key: string]: string;
    };
    /** Empty when the device did not report it. */
    firmwareVersion: string;
}
export interface DetectionEvent_AttributesEntry {
    key: string;
    value: string;
}
/** Exactly one kind of event. An Event with no kind set is invalid. */
export interface Event {
    kind?: {
        $case: "telemetry";
        value: TelemetryEvent;
    } | {
        $case: "detection";
        value: DetectionEvent;
    } | undefined;
}
/** The unit of publication on TELEMETRY_RAW and TELEMETRY; `Nats-Msg-Id` is derived from it. */
export interface EventBatch {
    /** Unique per device batch; device retries reuse it so JetStream drops the duplicate. */
    batchId: string;
    events: Event[];
}
export declare const TelemetryEvent: MessageFns<TelemetryEvent>;
export declare const TelemetryEvent_AttributesEntry: MessageFns<TelemetryEvent_AttributesEntry>;
export declare const BoundingBox: MessageFns<BoundingBox>;
export declare const Detection: MessageFns<Detection>;
export declare const DetectionEvent: MessageFns<DetectionEvent>;
export declare const DetectionEvent_AttributesEntry: MessageFns<DetectionEvent_AttributesEntry>;
export declare const Event: MessageFns<Event>;
export declare const EventBatch: MessageFns<EventBatch>;
type Builtin = Date | Function | Uint8Array | string | number | boolean | undefined;
export type DeepPartial<T> = T extends Builtin ? T : T extends globalThis.Array<infer U> ? globalThis.Array<DeepPartial<U>> : T extends ReadonlyArray<infer U> ? ReadonlyArray<DeepPartial<U>> : T extends {
    $case: string;
    value: unknown;
} ? {
    $case: T["$case"];
    value?: DeepPartial<T["value"]>;
} : T extends {} ? {
    [K in keyof T]?: DeepPartial<T[K]>;
} : Partial<T>;
type KeysOfUnion<T> = T extends T ? keyof T : never;
export type Exact<P, I extends P> = P extends Builtin ? P : P & {
    [K in keyof P]: Exact<P[K], I[K]>;
} & {
    [K in Exclude<keyof I, KeysOfUnion<P>>]: never;
};
export interface MessageFns<T> {
    encode(message: T, writer?: BinaryWriter): BinaryWriter;
    decode(input: BinaryReader | Uint8Array, length?: number): T;
    fromJSON(object: any): T;
    toJSON(message: T): unknown;
    create<I extends Exact<DeepPartial<T>, I>>(base?: I): T;
    fromPartial<I extends Exact<DeepPartial<T>, I>>(object: I): T;
}
export {};

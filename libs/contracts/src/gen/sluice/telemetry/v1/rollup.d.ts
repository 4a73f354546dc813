import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
export declare const protobufPackage = "sluice.telemetry.v1";
export declare const protobufFileName = "sluice/telemetry/v1/rollup.proto";
/** What a roll-up aggregates over. */
export declare enum RollupScope {
    UNSPECIFIED = 0,
    /** DEVICE - One device's readings of one sensor type. */
    DEVICE = 1,
    /** REGION - All devices of a region, one sensor type. */
    REGION = 2,
    UNRECOGNIZED = -1
}
export declare function rollupScopeFromJSON(object: any): RollupScope;
export declare function rollupScopeToJSON(object: RollupScope): string;
/**
 * An event-time window aggregate, published on telemetry.rollup.<resolution>.<region> when the
 * watermark closes the window, and again (revision + 1) whenever a late event changes it.
 */
export interface Rollup {
    scope: RollupScope;
    /** Empty for ROLLUP_SCOPE_REGION. */
    deviceId: string;
    region: string;
    sensorType: string;
    /** Window length: "1s", "5s", "1m", "1h" (a subject token). */
    resolution: string;
    /** Inclusive. */
    windowStart?: Date | undefined;
    /** Exclusive. */
    windowEnd?: Date | undefined;
    count: number;
    sum: number;
    min: number;
    max: number;
    /** sum / count. */
    avg: number;
    /** Value with the earliest event time in the window, and that time. */
    firstValue: number;
    firstTime?: Date | undefined;
    /** Value with the latest event time in the window, and that time. */
    lastValue: number;
    lastTime?: Date | undefined;
    /** 1 for the first publication after the window closed; incremented by each late update. */
    revision: number;
    /** Events that arrived after the window had closed and were merged into this revision's totals. */
    lateCount: number;
}
export declare const Rollup: MessageFns<Rollup>;
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

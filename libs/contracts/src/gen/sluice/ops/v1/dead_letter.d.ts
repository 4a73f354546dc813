import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
export declare const protobufPackage = "sluice.ops.v1";
export declare const protobufFileName = "sluice/ops/v1/dead_letter.proto";
/**
 * A message a service could never process (poison), with its provenance, published on
 * dlq.<service>. Nothing is dropped silently: the original bytes and headers are kept.
 */
export interface DeadLetter {
    /** Service that gave up, for example "webhook-dispatcher". */
    service: string;
    /** Error class name, for example "DecodeError". */
    errorClass: string;
    errorMessage: string;
    /** JetStream delivery count of the original message when it was dead-lettered. */
    deliveryCount: number;
    originalSubject: string;
    originalStream: string;
    originalStreamSequence: number;
    /** The original message body, unchanged. */
    payload: Buffer;
    originalHeaders: {
        [key: string]: string;
    };
    failedAt?: Date | undefined;
}
export interface DeadLetter_OriginalHeadersEntry {
    key: string;
    value: string;
}
export declare const DeadLetter: MessageFns<DeadLetter>;
export declare const DeadLetter_OriginalHeadersEntry: MessageFns<DeadLetter_OriginalHeadersEntry>;
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

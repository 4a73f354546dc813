import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { type CallOptions, type ChannelCredentials, Client, type ClientDuplexStream, type ClientOptions, type ClientUnaryCall, type handleBidiStreamingCall, type handleUnaryCall, type Metadata, type ServiceError, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { EventBatch } from "../../telemetry/v1/telemetry";
export declare const protobufPackage = "sluice.gateway.v1";
export declare const protobufFileName = "sluice/gateway/v1/gateway.proto";
/** Outcome of one IngestRequest. */
export declare enum IngestStatus {
    UNSPECIFIED = 0,
    /** OK - Every event accepted. */
    OK = 1,
    /** PARTIAL - Some events rejected (see rejections); the rest accepted. Do not resend the accepted ones. */
    PARTIAL = 2,
    /** REJECTED - Every event rejected (see rejections), or the batch itself is invalid. */
    REJECTED = 3,
    /** RETRY - Nothing accepted; resend the same batch (same batch_id) after retry_after_ms. */
    RETRY = 4,
    UNRECOGNIZED = -1
}
export declare function ingestStatusFromJSON(object: any): IngestStatus;
export declare function ingestStatusToJSON(object: IngestStatus): string;
export interface IngestRequest {
    /** Carried whole so the gateway publishes exactly the message type every stream carries. */
    batch?: EventBatch | undefined;
}
export interface IngestAck {
    batchId: string;
    /** Number of events accepted. */
    accepted: number;
    rejections: EventRejection[];
    /** Back-off the device should apply before its next request; 0 = none. */
    retryAfterMs: number;
    status: IngestStatus;
}
/** Why one event of a batch was rejected. Rejected events must be fixed, not resent as is. */
export interface EventRejection {
    /** Position of the event in the batch, from 0. */
    index: number;
    /** Empty when the event had no readable id. */
    eventId: string;
    /** Path of the offending field, for example "reading.value". */
    field: string;
    reason: string;
}
export declare const IngestRequest: MessageFns<IngestRequest>;
export declare const IngestAck: MessageFns<IngestAck>;
export declare const EventRejection: MessageFns<EventRejection>;
/** Device-facing ingestion. A batch is acknowledged only after JetStream stored it. */
export type IngestServiceService = typeof IngestServiceService;
export declare const IngestServiceService: {
    /** Long-lived stream: one IngestAck per IngestRequest, in request order. */
    readonly ingest: {
        readonly path: "/sluice.gateway.v1.IngestService/Ingest";
        readonly requestStream: true;
        readonly responseStream: true;
        readonly requestSerialize: (value: IngestRequest) => Buffer;
        readonly requestDeserialize: (value: Buffer) => IngestRequest;
        readonly responseSerialize: (value: IngestAck) => Buffer;
        readonly responseDeserialize: (value: Buffer) => IngestAck;
    };
    /** One batch, one ack. */
    readonly ingestBatch: {
        readonly path: "/sluice.gateway.v1.IngestService/IngestBatch";
        readonly requestStream: false;
        readonly responseStream: false;
        readonly requestSerialize: (value: IngestRequest) => Buffer;
        readonly requestDeserialize: (value: Buffer) => IngestRequest;
        readonly responseSerialize: (value: IngestAck) => Buffer;
        readonly responseDeserialize: (value: Buffer) => IngestAck;
    };
};
export interface IngestServiceServer extends UntypedServiceImplementation {
    /** Long-lived stream: one IngestAck per IngestRequest, in request order. */
    ingest: handleBidiStreamingCall<IngestRequest, IngestAck>;
    /** One batch, one ack. */
    ingestBatch: handleUnaryCall<IngestRequest, IngestAck>;
}
export interface IngestServiceClient extends Client {
    /** Long-lived stream: one IngestAck per IngestRequest, in request order. */
    ingest(): ClientDuplexStream<IngestRequest, IngestAck>;
    ingest(options: Partial<CallOptions>): ClientDuplexStream<IngestRequest, IngestAck>;
    ingest(metadata: Metadata, options?: Partial<CallOptions>): ClientDuplexStream<IngestRequest, IngestAck>;
    /** One batch, one ack. */
    ingestBatch(request: IngestRequest, callback: (error: ServiceError | null, response: IngestAck) => void): ClientUnaryCall;
    ingestBatch(request: IngestRequest, metadata: Metadata, callback: (error: ServiceError | null, response: IngestAck) => void): ClientUnaryCall;
    ingestBatch(request: IngestRequest, metadata: Metadata, options: Partial<CallOptions>, callback: (error: ServiceError | null, response: IngestAck) => void): ClientUnaryCall;
}
export declare const IngestServiceClient: {
    new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): IngestServiceClient;
    service: typeof IngestServiceService;
    serviceName: string;
};
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

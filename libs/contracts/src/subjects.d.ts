/**
 * Pattern every region and resolution token must match: lowercase letters, digits, `_` and `-`,
 * starting with a letter or digit, 1..64 characters. Also what the wire parser accepts as `region`.
 */
export declare const NAME_TOKEN_PATTERN: RegExp;
/** What a subject token is used as; named in error messages. */
export type SubjectTokenRole = 'region' | 'resolution' | 'service' | 'token';
/** A value that cannot be used as one token of a NATS subject. */
export declare class InvalidSubjectTokenError extends Error {
    /** The rejected value, as given. */
    readonly token: unknown;
    readonly role: SubjectTokenRole;
    /** Why it was rejected, for example `must not contain "."`. */
    readonly reason: string;
    readonly name = "InvalidSubjectTokenError";
    constructor(
    /** The rejected value, as given. */
    token: unknown, role: SubjectTokenRole, 
    /** Why it was rejected, for example `must not contain "."`. */
    reason: string);
}
/**
 * Throws {@link InvalidSubjectTokenError} unless `token` is usable as exactly one subject token:
 * a non-empty string without `.` (the token separator), the wildcards `*` and `>`, whitespace or
 * control characters.
 */
export declare function assertSubjectToken(token: unknown, role?: SubjectTokenRole): asserts token is string;
/** {@link assertSubjectToken}, then {@link NAME_TOKEN_PATTERN}. */
export declare function assertNameToken(token: unknown, role?: SubjectTokenRole): asserts token is string;
/** Filters matching every subject of one family. */
export declare const SUBJECT_FILTERS: {
    /** Every raw subject, `telemetry.raw.<region>`. */
    readonly RAW_ALL: "telemetry.raw.>";
    /** Every clean subject, `telemetry.clean.<region>`. */
    readonly CLEAN_ALL: "telemetry.clean.>";
    /** Every roll-up subject, `telemetry.rollup.<resolution>.<region>`. */
    readonly ROLLUP_ALL: "telemetry.rollup.>";
    /** Every dead-letter subject, `dlq.<service>`. */
    readonly DLQ_ALL: "dlq.>";
};
/** A JetStream stream: its name and the subjects it captures. */
export interface StreamSpec {
    readonly name: string;
    readonly subjects: readonly string[];
}
/** The streams of the pipeline (see docs/CONTRACTS.md for what each carries). */
export declare const STREAMS: {
    /** Device batches as accepted by the gateway (EventBatch), before dedupe. */
    readonly TELEMETRY_RAW: {
        readonly name: "TELEMETRY_RAW";
        readonly subjects: readonly ["telemetry.raw.>"];
    };
    /** Deduplicated batches (EventBatch). */
    readonly TELEMETRY: {
        readonly name: "TELEMETRY";
        readonly subjects: readonly ["telemetry.clean.>"];
    };
    /** Closed and revised windows (Rollup). */
    readonly ROLLUPS: {
        readonly name: "ROLLUPS";
        readonly subjects: readonly ["telemetry.rollup.>"];
    };
    /** Dead letters of every service (DeadLetter). */
    readonly DLQ: {
        readonly name: "DLQ";
        readonly subjects: readonly ["dlq.>"];
    };
};
/** `telemetry.raw.<region>`. Throws {@link InvalidSubjectTokenError}. */
export declare function rawSubject(region: string): string;
/** `telemetry.clean.<region>`. Throws {@link InvalidSubjectTokenError}. */
export declare function cleanSubject(region: string): string;
/** `telemetry.rollup.<resolution>.<region>`. Throws {@link InvalidSubjectTokenError}. */
export declare function rollupSubject(resolution: string, region: string): string;
/** `dlq.<service>`. Throws {@link InvalidSubjectTokenError}. */
export declare function dlqSubject(service: string): string;
/**
 * Roll-up filter narrowed to one resolution and/or one region; an omitted part is `*`.
 * Throws {@link InvalidSubjectTokenError}.
 */
export declare function rollupFilter(filter?: {
    resolution?: string;
    region?: string;
}): string;
/** A concrete subject taken apart; see {@link parseSubject}. */
export type ParsedSubject = {
    kind: 'raw';
    region: string;
} | {
    kind: 'clean';
    region: string;
} | {
    kind: 'rollup';
    resolution: string;
    region: string;
} | {
    kind: 'dlq';
    service: string;
};
/** Inverse of the builders; `undefined` for a subject none of them could have produced. */
export declare function parseSubject(subject: string): ParsedSubject | undefined;
/** Message header names. */
export declare const HEADERS: {
    /** JetStream de-duplication id. */
    readonly MSG_ID: "Nats-Msg-Id";
    /** One of {@link CONTENT_TYPES}. */
    readonly CONTENT_TYPE: "content-type";
    /** W3C trace context. */
    readonly TRACEPARENT: "traceparent";
    readonly TRACESTATE: "tracestate";
    /** Dead-letter provenance: the service that gave up. */
    readonly DLQ_SERVICE: "Sluice-Dlq-Service";
    /** Dead-letter provenance: error class name, for example `DecodeError`. */
    readonly DLQ_ERROR_CLASS: "Sluice-Dlq-Error-Class";
    /** Dead-letter provenance: error message. */
    readonly DLQ_ERROR: "Sluice-Dlq-Error";
    /** Dead-letter provenance: delivery count of the original message (decimal). */
    readonly DLQ_DELIVERY_COUNT: "Sluice-Dlq-Delivery-Count";
    /** Dead-letter provenance: original subject. */
    readonly DLQ_ORIGINAL_SUBJECT: "Sluice-Dlq-Original-Subject";
    /** Dead-letter provenance: original stream name. */
    readonly DLQ_ORIGINAL_STREAM: "Sluice-Dlq-Original-Stream";
    /** Dead-letter provenance: original stream sequence (decimal). */
    readonly DLQ_ORIGINAL_SEQUENCE: "Sluice-Dlq-Original-Sequence";
};
/** `content-type` header values, one per message type carried on a stream. */
export declare const CONTENT_TYPES: {
    /** sluice.telemetry.v1.EventBatch, on TELEMETRY_RAW and TELEMETRY. */
    readonly EVENT_BATCH: "application/x-protobuf; proto=sluice.telemetry.v1.EventBatch";
    /** sluice.telemetry.v1.Rollup, on ROLLUPS. */
    readonly ROLLUP: "application/x-protobuf; proto=sluice.telemetry.v1.Rollup";
    /** sluice.ops.v1.DeadLetter, on DLQ. */
    readonly DEAD_LETTER: "application/x-protobuf; proto=sluice.ops.v1.DeadLetter";
    /** JSON wire events (schema versions 1 and 2) on the gateway's HTTP API. */
    readonly WIRE_JSON: "application/json";
};

"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.CONTENT_TYPES = exports.HEADERS = exports.STREAMS = exports.SUBJECT_FILTERS = exports.InvalidSubjectTokenError = exports.NAME_TOKEN_PATTERN = void 0;
exports.assertSubjectToken = assertSubjectToken;
exports.assertNameToken = assertNameToken;
exports.rawSubject = rawSubject;
exports.cleanSubject = cleanSubject;
exports.rollupSubject = rollupSubject;
exports.dlqSubject = dlqSubject;
exports.rollupFilter = rollupFilter;
exports.parseSubject = parseSubject;
// The only place NATS subject, stream and header names are spelled. Everything else builds them
// through these functions and constants.
const dead_letter_1 = require("./gen/sluice/ops/v1/dead_letter");
const telemetry_1 = require("./gen/sluice/telemetry/v1/telemetry");
/**
 * Pattern every region and resolution token must match: lowercase letters, digits, `_` and `-`,
 * starting with a letter or digit, 1..64 characters. Also what the wire parser accepts as `region`.
 */
exports.NAME_TOKEN_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** A value that cannot be used as one token of a NATS subject. */
class InvalidSubjectTokenError extends Error {
    token;
    role;
    reason;
    name = 'InvalidSubjectTokenError';
    constructor(
    /** The rejected value, as given. */
    token, role, 
    /** Why it was rejected, for example `must not contain "."`. */
    reason) {
        super(`invalid ${role} ${JSON.stringify(token) ?? String(token)}: ${reason}`);
        this.token = token;
        this.role = role;
        this.reason = reason;
    }
}
exports.InvalidSubjectTokenError = InvalidSubjectTokenError;
/**
 * Throws {@link InvalidSubjectTokenError} unless `token` is usable as exactly one subject token:
 * a non-empty string without `.` (the token separator), the wildcards `*` and `>`, whitespace or
 * control characters.
 */
function assertSubjectToken(token, role = 'token') {
    if (typeof token !== 'string') {
        throw new InvalidSubjectTokenError(token, role, `must be a string, got ${typeof token}`);
    }
    if (token === '')
        throw new InvalidSubjectTokenError(token, role, 'must not be empty');
    if (token.includes('.')) {
        throw new InvalidSubjectTokenError(token, role, 'must not contain "." (it separates subject tokens)');
    }
    for (const wildcard of ['*', '>']) {
        if (token.includes(wildcard)) {
            throw new InvalidSubjectTokenError(token, role, `must not contain the wildcard "${wildcard}"`);
        }
    }
    if (/[\s\p{Cc}]/u.test(token)) {
        throw new InvalidSubjectTokenError(token, role, 'must not contain whitespace or control characters');
    }
}
/** {@link assertSubjectToken}, then {@link NAME_TOKEN_PATTERN}. */
function assertNameToken(token, role = 'token') {
    assertSubjectToken(token, role);
    if (!exports.NAME_TOKEN_PATTERN.test(token)) {
        throw new InvalidSubjectTokenError(token, role, `must match ${String(exports.NAME_TOKEN_PATTERN)} (lowercase letters, digits, "_" and "-", at most 64)`);
    }
}
const RAW_PREFIX = 'telemetry.raw';
const CLEAN_PREFIX = 'telemetry.clean';
const ROLLUP_PREFIX = 'telemetry.rollup';
const DLQ_PREFIX = 'dlq';
/** Filters matching every subject of one family. */
exports.SUBJECT_FILTERS = {
    /** Every raw subject, `telemetry.raw.<region>`. */
    RAW_ALL: `${RAW_PREFIX}.>`,
    /** Every clean subject, `telemetry.clean.<region>`. */
    CLEAN_ALL: `${CLEAN_PREFIX}.>`,
    /** Every roll-up subject, `telemetry.rollup.<resolution>.<region>`. */
    ROLLUP_ALL: `${ROLLUP_PREFIX}.>`,
    /** Every dead-letter subject, `dlq.<service>`. */
    DLQ_ALL: `${DLQ_PREFIX}.>`,
};
/** The streams of the pipeline (see docs/CONTRACTS.md for what each carries). */
exports.STREAMS = {
    /** Device batches as accepted by the gateway (EventBatch), before dedupe. */
    TELEMETRY_RAW: { name: 'TELEMETRY_RAW', subjects: [exports.SUBJECT_FILTERS.RAW_ALL] },
    /** Deduplicated batches (EventBatch). */
    TELEMETRY: { name: 'TELEMETRY', subjects: [exports.SUBJECT_FILTERS.CLEAN_ALL] },
    /** Closed and revised windows (Rollup). */
    ROLLUPS: { name: 'ROLLUPS', subjects: [exports.SUBJECT_FILTERS.ROLLUP_ALL] },
    /** Dead letters of every service (DeadLetter). */
    DLQ: { name: 'DLQ', subjects: [exports.SUBJECT_FILTERS.DLQ_ALL] },
};
/** `telemetry.raw.<region>`. Throws {@link InvalidSubjectTokenError}. */
function rawSubject(region) {
    assertNameToken(region, 'region');
    return `${RAW_PREFIX}.${region}`;
}
/** `telemetry.clean.<region>`. Throws {@link InvalidSubjectTokenError}. */
function cleanSubject(region) {
    assertNameToken(region, 'region');
    return `${CLEAN_PREFIX}.${region}`;
}
/** `telemetry.rollup.<resolution>.<region>`. Throws {@link InvalidSubjectTokenError}. */
function rollupSubject(resolution, region) {
    assertNameToken(resolution, 'resolution');
    assertNameToken(region, 'region');
    return `${ROLLUP_PREFIX}.${resolution}.${region}`;
}
/** `dlq.<service>`. Throws {@link InvalidSubjectTokenError}. */
function dlqSubject(service) {
    assertSubjectToken(service, 'service');
    return `${DLQ_PREFIX}.${service}`;
}
/**
 * Roll-up filter narrowed to one resolution and/or one region; an omitted part is `*`.
 * Throws {@link InvalidSubjectTokenError}.
 */
function rollupFilter(filter = {}) {
    const { resolution, region } = filter;
    if (resolution !== undefined)
        assertNameToken(resolution, 'resolution');
    if (region !== undefined)
        assertNameToken(region, 'region');
    return `${ROLLUP_PREFIX}.${resolution ?? '*'}.${region ?? '*'}`;
}
/** Inverse of the builders; `undefined` for a subject none of them could have produced. */
function parseSubject(subject) {
    const tokens = subject.split('.');
    const name = (token) => token !== undefined && exports.NAME_TOKEN_PATTERN.test(token);
    const [a, b, c, d] = tokens;
    if (a === 'telemetry' && tokens.length === 3 && name(c)) {
        if (b === 'raw')
            return { kind: 'raw', region: c };
        if (b === 'clean')
            return { kind: 'clean', region: c };
    }
    if (a === 'telemetry' && b === 'rollup' && tokens.length === 4 && name(c) && name(d)) {
        return { kind: 'rollup', resolution: c, region: d };
    }
    if (a === DLQ_PREFIX && tokens.length === 2 && b !== undefined) {
        try {
            assertSubjectToken(b, 'service');
            return { kind: 'dlq', service: b };
        }
        catch {
            return undefined;
        }
    }
    return undefined;
}
/** Message header names. */
exports.HEADERS = {
    /** JetStream de-duplication id. */
    MSG_ID: 'Nats-Msg-Id',
    /** One of {@link CONTENT_TYPES}. */
    CONTENT_TYPE: 'content-type',
    /** W3C trace context. */
    TRACEPARENT: 'traceparent',
    TRACESTATE: 'tracestate',
    /** Dead-letter provenance: the service that gave up. */
    DLQ_SERVICE: 'Sluice-Dlq-Service',
    /** Dead-letter provenance: error class name, for example `DecodeError`. */
    DLQ_ERROR_CLASS: 'Sluice-Dlq-Error-Class',
    /** Dead-letter provenance: error message. */
    DLQ_ERROR: 'Sluice-Dlq-Error',
    /** Dead-letter provenance: delivery count of the original message (decimal). */
    DLQ_DELIVERY_COUNT: 'Sluice-Dlq-Delivery-Count',
    /** Dead-letter provenance: original subject. */
    DLQ_ORIGINAL_SUBJECT: 'Sluice-Dlq-Original-Subject',
    /** Dead-letter provenance: original stream name. */
    DLQ_ORIGINAL_STREAM: 'Sluice-Dlq-Original-Stream',
    /** Dead-letter provenance: original stream sequence (decimal). */
    DLQ_ORIGINAL_SEQUENCE: 'Sluice-Dlq-Original-Sequence',
};
const PROTOBUF = 'application/x-protobuf';
/** `content-type` header values, one per message type carried on a stream. */
exports.CONTENT_TYPES = {
    /** sluice.telemetry.v1.EventBatch, on TELEMETRY_RAW and TELEMETRY. */
    EVENT_BATCH: `${PROTOBUF}; proto=${telemetry_1.protobufPackage}.EventBatch`,
    /** sluice.telemetry.v1.Rollup, on ROLLUPS. */
    ROLLUP: `${PROTOBUF}; proto=${telemetry_1.protobufPackage}.Rollup`,
    /** sluice.ops.v1.DeadLetter, on DLQ. */
    DEAD_LETTER: `${PROTOBUF}; proto=${dead_letter_1.protobufPackage}.DeadLetter`,
    /** JSON wire events (schema versions 1 and 2) on the gateway's HTTP API. */
    WIRE_JSON: 'application/json',
};
//# sourceMappingURL=subjects.js.map
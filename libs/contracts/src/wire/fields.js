"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.time = exports.uint32 = exports.finiteNumber = exports.region = exports.Invalid = void 0;
exports.required = required;
exports.optional = optional;
exports.objectOf = objectOf;
exports.text = text;
exports.eventId = eventId;
exports.unitInterval = unitInterval;
exports.trackerId = trackerId;
exports.attributes = attributes;
// Field-level validators shared by the schema versions. Each leaf is a plain check returning the
// canonical value or an Invalid with a user-facing message; zod supplies structure and paths.
const zod_1 = require("zod");
const subjects_1 = require("../subjects");
const result_1 = require("./result");
/** A rejected leaf value and why. */
class Invalid {
    message;
    constructor(message) {
        this.message = message;
    }
}
exports.Invalid = Invalid;
function run(check, input, ctx) {
    const result = check(input);
    if (result instanceof Invalid) {
        ctx.issues.push({ code: 'custom', message: result.message, input });
        return zod_1.z.NEVER;
    }
    return result;
}
/** A field that must be present and not `null`. */
function required(check) {
    return zod_1.z.unknown().transform((input, ctx) => {
        if (input === undefined || input === null) {
            const message = input === null ? 'is required, got null' : 'is required';
            ctx.issues.push({ code: 'custom', message, input });
            return zod_1.z.NEVER;
        }
        return run(check, input, ctx);
    });
}
/** A field that may be absent; `null` counts as absent. */
function optional(check) {
    return zod_1.z
        .unknown()
        .transform((input, ctx) => input === undefined || input === null ? undefined : run(check, input, ctx))
        .optional();
}
/** An object of known fields; unknown fields are errors or skipped according to `policy`. */
function objectOf(shape, policy) {
    const expected = Object.keys(shape)
        .map((key) => `"${key}"`)
        .join(', ');
    const error = (issue) => {
        if (issue.code === 'unrecognized_keys')
            return `is not a known field; expected one of ${expected}`;
        if (issue.input === undefined)
            return 'is required';
        return `must be an object, got ${(0, result_1.describeInput)(issue.input)}`;
    };
    return policy === 'reject' ? zod_1.z.strictObject(shape, { error }) : zod_1.z.object(shape, { error });
}
const PRINTABLE_CHAR = /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u;
const NOT_PRINTABLE = /[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/u;
const NOT_EVENT_ID = /[^A-Za-z0-9._:-]/;
function showChar(char) {
    return PRINTABLE_CHAR.test(char)
        ? JSON.stringify(char)
        : `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}
function lengthProblem(input, max, allowEmpty) {
    if (input === '' && !allowEmpty)
        return new Invalid('must not be empty');
    if (input.length > max)
        return new Invalid(`must be at most ${max} characters, got ${input.length}`);
    return undefined;
}
/**
 * Printable text: letters, marks, digits, punctuation, symbols and inner spaces; no control,
 * format or other whitespace characters, no leading or trailing space.
 */
function text(max, options = {}) {
    return (input) => {
        if (typeof input !== 'string')
            return new Invalid(`must be a string, got ${(0, result_1.describeInput)(input)}`);
        const problem = lengthProblem(input, max, options.allowEmpty ?? false);
        if (problem)
            return problem;
        const bad = NOT_PRINTABLE.exec(input);
        if (bad) {
            return new Invalid(`must contain only printable characters (letters, digits, punctuation, symbols, spaces), ` +
                `found ${showChar(bad[0])} at position ${bad.index}`);
        }
        if (input.startsWith(' ') || input.endsWith(' ')) {
            return new Invalid('must not start or end with a space');
        }
        return input;
    };
}
/** Event id: 1..max characters of `A-Z a-z 0-9 . _ : -` (safe as a Redis key and a MongoDB _id). */
function eventId(max) {
    return (input) => {
        if (typeof input !== 'string')
            return new Invalid(`must be a string, got ${(0, result_1.describeInput)(input)}`);
        const problem = lengthProblem(input, max, false);
        if (problem)
            return problem;
        const bad = NOT_EVENT_ID.exec(input);
        if (bad) {
            return new Invalid(`may contain only letters, digits and . _ : - (found ${showChar(bad[0])} at position ${bad.index})`);
        }
        return input;
    };
}
/** Region: a subject token matching {@link NAME_TOKEN_PATTERN}. */
const region = (input) => typeof input === 'string' && subjects_1.NAME_TOKEN_PATTERN.test(input)
    ? input
    : new Invalid(`must be a region token matching ${String(subjects_1.NAME_TOKEN_PATTERN)} ` +
        `(lowercase letters, digits, "_", "-"), got ${(0, result_1.describeInput)(input)}`);
exports.region = region;
const finiteNumber = (input) => typeof input === 'number' && Number.isFinite(input)
    ? input
    : new Invalid(`must be a finite number, got ${(0, result_1.describeInput)(input)}`);
exports.finiteNumber = finiteNumber;
/** A number in [0, 1]; `hint` is appended to the message, e.g. "(normalised to the frame)". */
function unitInterval(hint = '') {
    const suffix = hint === '' ? '' : ` ${hint}`;
    return (input) => typeof input === 'number' && input >= 0 && input <= 1
        ? input
        : new Invalid(`must be a number in [0, 1]${suffix}, got ${(0, result_1.describeInput)(input)}`);
}
const UINT32_MAX = 0xffff_ffff;
const uint32 = (input) => typeof input === 'number' && Number.isInteger(input) && input >= 0 && input <= UINT32_MAX
    ? input
    : new Invalid(`must be an integer in 0..${UINT32_MAX}, got ${(0, result_1.describeInput)(input)}`);
exports.uint32 = uint32;
/** The largest epoch-milliseconds value a Date can hold. */
const MAX_EPOCH_MS = 8.64e15;
const ISO_DATE_TIME = zod_1.z.iso.datetime({ offset: true });
const TIME_EXPECTED = 'must be an ISO-8601 date-time with seconds and a time zone (for example ' +
    '"2026-05-01T12:00:00.123Z" or "2026-05-01T14:00:00+02:00") or epoch milliseconds';
/**
 * Event time: an RFC 3339 string (sub-millisecond digits are truncated) or whole epoch
 * milliseconds. Times before 1970 are refused: a protobuf Timestamp built from an earlier Date by
 * the generated code would carry negative nanos.
 */
const time = (input) => {
    if (typeof input === 'string') {
        if (!ISO_DATE_TIME.safeParse(input).success) {
            return new Invalid(`${TIME_EXPECTED}, got ${(0, result_1.describeInput)(input)}`);
        }
        const date = new Date(input);
        const ms = date.getTime();
        if (Number.isNaN(ms))
            return new Invalid(`${TIME_EXPECTED}, got ${(0, result_1.describeInput)(input)}`);
        if (ms < 0)
            return new Invalid(`must not be before 1970-01-01T00:00:00Z, got ${(0, result_1.describeInput)(input)}`);
        return date;
    }
    if (typeof input === 'number') {
        if (!Number.isInteger(input) || input < 0 || input > MAX_EPOCH_MS) {
            return new Invalid(`must be whole epoch milliseconds in 0..${MAX_EPOCH_MS}, got ${(0, result_1.describeInput)(input)}`);
        }
        return new Date(input);
    }
    return new Invalid(`${TIME_EXPECTED}, got ${(0, result_1.describeInput)(input)}`);
};
exports.time = time;
/**
 * Tracker id: text, or a non-negative integer (converted to its decimal string). Ids above 2^53
 * must be sent as strings: JSON parsers would already have rounded them.
 */
function trackerId(max) {
    const asText = text(max, { allowEmpty: true });
    return (input) => {
        if (typeof input === 'number') {
            return Number.isSafeInteger(input) && input >= 0
                ? String(input)
                : new Invalid(`must be a non-negative integer up to ${Number.MAX_SAFE_INTEGER} ` +
                    `(send larger ids as strings), got ${(0, result_1.describeInput)(input)}`);
        }
        if (typeof input !== 'string') {
            return new Invalid(`must be a string or a non-negative integer, got ${(0, result_1.describeInput)(input)}`);
        }
        return asText(input);
    };
}
const MAX_KEY_SHOWN = 40;
function showKey(key) {
    return JSON.stringify(key.length > MAX_KEY_SHOWN ? `${key.slice(0, MAX_KEY_SHOWN)}…` : key);
}
/**
 * Optional string-to-string attributes, bounded by `limits`. Problems with a key are reported on
 * `attributes` (the key may be too long to be a path); problems with a value on `attributes.<key>`.
 * The result is a fresh object in key order.
 */
function attributes(limits) {
    return zod_1.z
        .unknown()
        .transform((input, ctx) => {
        if (input === undefined || input === null)
            return undefined;
        const fail = (message, path = []) => {
            ctx.issues.push({ code: 'custom', message, input, path });
        };
        if (typeof input !== 'object' || Array.isArray(input)) {
            fail(`must be an object of string values, got ${(0, result_1.describeInput)(input)}`);
            return zod_1.z.NEVER;
        }
        const entries = Object.entries(input);
        if (entries.length > limits.maxAttributes) {
            fail(`must have at most ${limits.maxAttributes} entries, got ${entries.length}`);
            return zod_1.z.NEVER;
        }
        const before = ctx.issues.length;
        for (const [key, value] of entries) {
            if (key === '')
                fail('keys must not be empty');
            else if (key.length > limits.maxAttributeKeyLength) {
                fail(`key ${showKey(key)} is longer than ${limits.maxAttributeKeyLength} characters (${key.length})`);
            }
            else if (NOT_PRINTABLE.test(key)) {
                fail(`key ${showKey(key)} must contain only printable characters`);
            }
            else if (key === '__proto__') {
                // Generated decoders assign map entries with `obj[key] = value`, which would drop this key.
                fail('key "__proto__" is reserved');
            }
            if (typeof value !== 'string')
                fail(`must be a string, got ${(0, result_1.describeInput)(value)}`, [key]);
            else if (value.length > limits.maxAttributeValueLength) {
                fail(`must be at most ${limits.maxAttributeValueLength} characters, got ${value.length}`, [key]);
            }
        }
        if (ctx.issues.length > before)
            return zod_1.z.NEVER;
        entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return Object.fromEntries(entries);
    })
        .optional();
}
//# sourceMappingURL=fields.js.map
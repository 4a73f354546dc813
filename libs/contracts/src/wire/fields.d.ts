import { z } from 'zod';
import type { UnknownFieldPolicy, WireLimits } from './options';
/** A rejected leaf value and why. */
export declare class Invalid {
    readonly message: string;
    constructor(message: string);
}
/** Validates and converts one JSON value that is neither `undefined` nor `null`. */
export type Check<T> = (input: unknown) => T | Invalid;
/** A field that must be present and not `null`. */
export declare function required<T>(check: Check<T>): z.ZodType<T>;
/** A field that may be absent; `null` counts as absent. */
export declare function optional<T>(check: Check<T>): z.ZodType<T | undefined>;
/** An object of known fields; unknown fields are errors or skipped according to `policy`. */
export declare function objectOf<S extends z.core.$ZodLooseShape>(shape: S, policy: UnknownFieldPolicy): z.ZodObject<{ -readonly [P in keyof S]: S[P]; }, z.core.$strict>;
/**
 * Printable text: letters, marks, digits, punctuation, symbols and inner spaces; no control,
 * format or other whitespace characters, no leading or trailing space.
 */
export declare function text(max: number, options?: {
    allowEmpty?: boolean;
}): Check<string>;
/** Event id: 1..max characters of `A-Z a-z 0-9 . _ : -` (safe as a Redis key and a MongoDB _id). */
export declare function eventId(max: number): Check<string>;
/** Region: a subject token matching {@link NAME_TOKEN_PATTERN}. */
export declare const region: Check<string>;
export declare const finiteNumber: Check<number>;
/** A number in [0, 1]; `hint` is appended to the message, e.g. "(normalised to the frame)". */
export declare function unitInterval(hint?: string): Check<number>;
export declare const uint32: Check<number>;
/**
 * Event time: an RFC 3339 string (sub-millisecond digits are truncated) or whole epoch
 * milliseconds. Times before 1970 are refused: a protobuf Timestamp built from an earlier Date by
 * the generated code would carry negative nanos.
 */
export declare const time: Check<Date>;
/**
 * Tracker id: text, or a non-negative integer (converted to its decimal string). Ids above 2^53
 * must be sent as strings: JSON parsers would already have rounded them.
 */
export declare function trackerId(max: number): Check<string>;
/**
 * Optional string-to-string attributes, bounded by `limits`. Problems with a key are reported on
 * `attributes` (the key may be too long to be a path); problems with a value on `attributes.<key>`.
 * The result is a fresh object in key order.
 */
export declare function attributes(limits: Pick<WireLimits, 'maxAttributes' | 'maxAttributeKeyLength' | 'maxAttributeValueLength'>): z.ZodType<Record<string, string> | undefined>;

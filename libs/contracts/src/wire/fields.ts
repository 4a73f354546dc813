// Field-level validators shared by the schema versions. Each leaf is a plain check returning the
// canonical value or an Invalid with a user-facing message; zod supplies structure and paths.
import { z } from 'zod';
import { NAME_TOKEN_PATTERN } from '../subjects';
import type { UnknownFieldPolicy, WireLimits } from './options';
import { describeInput } from './result';

/** A rejected leaf value and why. */
export class Invalid {
  constructor(readonly message: string) {}
}

/** Validates and converts one JSON value that is neither `undefined` nor `null`. */
export type Check<T> = (input: unknown) => T | Invalid;

/** Zod's refinement context, as seen by a transform. */
type Ctx = z.core.$RefinementCtx;

function run<T>(check: Check<T>, input: unknown, ctx: Ctx): T {
  const result = check(input);
  if (result instanceof Invalid) {
    ctx.issues.push({ code: 'custom', message: result.message, input });
    return z.NEVER;
  }
  return result;
}

/** A field that must be present and not `null`. */
export function required<T>(check: Check<T>): z.ZodType<T> {
  return z.unknown().transform((input, ctx): T => {
    if (input === undefined || input === null) {
      const message = input === null ? 'is required, got null' : 'is required';
      ctx.issues.push({ code: 'custom', message, input });
      return z.NEVER;
    }
    return run(check, input, ctx);
  });
}

/** A field that may be absent; `null` counts as absent. */
export function optional<T>(check: Check<T>): z.ZodType<T | undefined> {
  return z
    .unknown()
    .transform((input, ctx): T | undefined =>
      input === undefined || input === null ? undefined : run(check, input, ctx),
    )
    .optional();
}

/** An object of known fields; unknown fields are errors or skipped according to `policy`. */
export function objectOf<S extends z.core.$ZodLooseShape>(shape: S, policy: UnknownFieldPolicy) {
  const expected = Object.keys(shape)
    .map((key) => `"${key}"`)
    .join(', ');
  const error = (issue: { code?: string; input?: unknown }): string => {
    if (issue.code === 'unrecognized_keys')
      return `is not a known field; expected one of ${expected}`;
    if (issue.input === undefined) return 'is required';
    return `must be an object, got ${describeInput(issue.input)}`;
  };
  return policy === 'reject' ? z.strictObject(shape, { error }) : z.object(shape, { error });
}

const PRINTABLE_CHAR = /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u;
const NOT_PRINTABLE = /[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/u;
const NOT_EVENT_ID = /[^A-Za-z0-9._:-]/;

function showChar(char: string): string {
  return PRINTABLE_CHAR.test(char)
    ? JSON.stringify(char)
    : `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

function lengthProblem(input: string, max: number, allowEmpty: boolean): Invalid | undefined {
  if (input === '' && !allowEmpty) return new Invalid('must not be empty');
  if (input.length > max)
    return new Invalid(`must be at most ${max} characters, got ${input.length}`);
  return undefined;
}

/**
 * Printable text: letters, marks, digits, punctuation, symbols and inner spaces; no control,
 * format or other whitespace characters, no leading or trailing space.
 */
export function text(max: number, options: { allowEmpty?: boolean } = {}): Check<string> {
  return (input) => {
    if (typeof input !== 'string')
      return new Invalid(`must be a string, got ${describeInput(input)}`);
    const problem = lengthProblem(input, max, options.allowEmpty ?? false);
    if (problem) return problem;
    const bad = NOT_PRINTABLE.exec(input);
    if (bad) {
      return new Invalid(
        `must contain only printable characters (letters, digits, punctuation, symbols, spaces), ` +
          `found ${showChar(bad[0])} at position ${bad.index}`,
      );
    }
    if (input.startsWith(' ') || input.endsWith(' ')) {
      return new Invalid('must not start or end with a space');
    }
    return input;
  };
}

/** Event id: 1..max characters of `A-Z a-z 0-9 . _ : -` (safe as a Redis key and a MongoDB _id). */
export function eventId(max: number): Check<string> {
  return (input) => {
    if (typeof input !== 'string')
      return new Invalid(`must be a string, got ${describeInput(input)}`);
    const problem = lengthProblem(input, max, false);
    if (problem) return problem;
    const bad = NOT_EVENT_ID.exec(input);
    if (bad) {
      return new Invalid(
        `may contain only letters, digits and . _ : - (found ${showChar(bad[0])} at position ${bad.index})`,
      );
    }
    return input;
  };
}

/** Region: a subject token matching {@link NAME_TOKEN_PATTERN}. */
export const region: Check<string> = (input) =>
  typeof input === 'string' && NAME_TOKEN_PATTERN.test(input)
    ? input
    : new Invalid(
        `must be a region token matching ${String(NAME_TOKEN_PATTERN)} ` +
          `(lowercase letters, digits, "_", "-"), got ${describeInput(input)}`,
      );

export const finiteNumber: Check<number> = (input) =>
  typeof input === 'number' && Number.isFinite(input)
    ? input
    : new Invalid(`must be a finite number, got ${describeInput(input)}`);

/** A number in [0, 1]; `hint` is appended to the message, e.g. "(normalised to the frame)". */
export function unitInterval(hint = ''): Check<number> {
  const suffix = hint === '' ? '' : ` ${hint}`;
  return (input) =>
    typeof input === 'number' && input >= 0 && input <= 1
      ? input
      : new Invalid(`must be a number in [0, 1]${suffix}, got ${describeInput(input)}`);
}

const UINT32_MAX = 0xffff_ffff;

export const uint32: Check<number> = (input) =>
  typeof input === 'number' && Number.isInteger(input) && input >= 0 && input <= UINT32_MAX
    ? input
    : new Invalid(`must be an integer in 0..${UINT32_MAX}, got ${describeInput(input)}`);

/** The largest epoch-milliseconds value a Date can hold. */
const MAX_EPOCH_MS = 8.64e15;
const ISO_DATE_TIME = z.iso.datetime({ offset: true });
const TIME_EXPECTED =
  'must be an ISO-8601 date-time with seconds and a time zone (for example ' +
  '"2026-05-01T12:00:00.123Z" or "2026-05-01T14:00:00+02:00") or epoch milliseconds';

/**
 * Event time: an RFC 3339 string (sub-millisecond digits are truncated) or whole epoch
 * milliseconds. Times before 1970 are refused: a protobuf Timestamp built from an earlier Date by
 * the generated code would carry negative nanos.
 */
export const time: Check<Date> = (input) => {
  if (typeof input === 'string') {
    if (!ISO_DATE_TIME.safeParse(input).success) {
      return new Invalid(`${TIME_EXPECTED}, got ${describeInput(input)}`);
    }
    const date = new Date(input);
    const ms = date.getTime();
    if (Number.isNaN(ms)) return new Invalid(`${TIME_EXPECTED}, got ${describeInput(input)}`);
    if (ms < 0)
      return new Invalid(`must not be before 1970-01-01T00:00:00Z, got ${describeInput(input)}`);
    return date;
  }
  if (typeof input === 'number') {
    if (!Number.isInteger(input) || input < 0 || input > MAX_EPOCH_MS) {
      return new Invalid(
        `must be whole epoch milliseconds in 0..${MAX_EPOCH_MS}, got ${describeInput(input)}`,
      );
    }
    return new Date(input);
  }
  return new Invalid(`${TIME_EXPECTED}, got ${describeInput(input)}`);
};

/**
 * Tracker id: text, or a non-negative integer (converted to its decimal string). Ids above 2^53
 * must be sent as strings: JSON parsers would already have rounded them.
 */
export function trackerId(max: number): Check<string> {
  const asText = text(max, { allowEmpty: true });
  return (input) => {
    if (typeof input === 'number') {
      return Number.isSafeInteger(input) && input >= 0
        ? String(input)
        : new Invalid(
            `must be a non-negative integer up to ${Number.MAX_SAFE_INTEGER} ` +
              `(send larger ids as strings), got ${describeInput(input)}`,
          );
    }
    if (typeof input !== 'string') {
      return new Invalid(`must be a string or a non-negative integer, got ${describeInput(input)}`);
    }
    return asText(input);
  };
}

const MAX_KEY_SHOWN = 40;

function showKey(key: string): string {
  return JSON.stringify(key.length > MAX_KEY_SHOWN ? `${key.slice(0, MAX_KEY_SHOWN)}…` : key);
}

/**
 * Optional string-to-string attributes, bounded by `limits`. Problems with a key are reported on
 * `attributes` (the key may be too long to be a path); problems with a value on `attributes.<key>`.
 * The result is a fresh object in key order.
 */
export function attributes(
  limits: Pick<WireLimits, 'maxAttributes' | 'maxAttributeKeyLength' | 'maxAttributeValueLength'>,
): z.ZodType<Record<string, string> | undefined> {
  return z
    .unknown()
    .transform((input, ctx): Record<string, string> | undefined => {
      if (input === undefined || input === null) return undefined;
      const fail = (message: string, path: string[] = []): void => {
        ctx.issues.push({ code: 'custom', message, input, path });
      };
      if (typeof input !== 'object' || Array.isArray(input)) {
        fail(`must be an object of string values, got ${describeInput(input)}`);
        return z.NEVER;
      }
      const entries = Object.entries(input);
      if (entries.length > limits.maxAttributes) {
        fail(`must have at most ${limits.maxAttributes} entries, got ${entries.length}`);
        return z.NEVER;
      }
      const before = ctx.issues.length;
      for (const [key, value] of entries) {
        if (key === '') fail('keys must not be empty');
        else if (key.length > limits.maxAttributeKeyLength) {
          fail(
            `key ${showKey(key)} is longer than ${limits.maxAttributeKeyLength} characters (${key.length})`,
          );
        } else if (NOT_PRINTABLE.test(key)) {
          fail(`key ${showKey(key)} must contain only printable characters`);
        } else if (key === '__proto__') {
          // Generated decoders assign map entries with `obj[key] = value`, which would drop this key.
          fail('key "__proto__" is reserved');
        }
        if (typeof value !== 'string') fail(`must be a string, got ${describeInput(value)}`, [key]);
        else if (value.length > limits.maxAttributeValueLength) {
          fail(
            `must be at most ${limits.maxAttributeValueLength} characters, got ${value.length}`,
            [key],
          );
        }
      }
      if (ctx.issues.length > before) return z.NEVER;
      entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return Object.fromEntries(entries) as Record<string, string>;
    })
    .optional();
}

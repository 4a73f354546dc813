// Flag parsing shared by the `sluice` commands: node:util parseArgs for the syntax (unknown flags,
// missing values), one zod schema for the values, and a UsageError naming the flag for anything
// malformed, so every command rejects a bad command line the same way (exit code 2).
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { z } from '@sluice/config';
import { UsageError } from './errors';

/** What {@link parseCommandLine} needs to know about one command. */
export interface CommandLineSpec<S extends z.ZodType> {
  /** parseArgs option definitions, keyed by flag name as typed (`dry-run`). */
  options: ParseArgsOptionsConfig;
  /**
   * Validates and converts the parsed flags, an object keyed like `options` (absent flags are
   * `undefined`). An issue's first path element names the flag in the error message.
   */
  schema: S;
  /** The command's usage text, printed after a usage error. */
  usage: string;
  /** Positional arguments accepted. Default 0. */
  maxPositionals?: number;
}

/** Parsed flags and the positional arguments in order. */
export interface CommandLine<T> {
  flags: T;
  positionals: string[];
}

/** Parses `args` against `spec`; throws {@link UsageError} for an unknown, missing or malformed flag. */
export function parseCommandLine<S extends z.ZodType>(
  args: readonly string[],
  spec: CommandLineSpec<S>,
): CommandLine<z.output<S>> {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...args],
      options: spec.options,
      strict: true,
      allowPositionals: (spec.maxPositionals ?? 0) > 0,
    });
  } catch (err) {
    throw new UsageError((err as Error).message, spec.usage);
  }
  const max = spec.maxPositionals ?? 0;
  if (parsed.positionals.length > max) {
    throw new UsageError(
      `unexpected argument ${JSON.stringify(parsed.positionals[max])}`,
      spec.usage,
    );
  }
  const result = spec.schema.safeParse(parsed.values);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const flag = issue.path[0];
    throw new UsageError(
      flag === undefined ? issue.message : `--${String(flag)}: ${issue.message}`,
      spec.usage,
    );
  }
  return { flags: result.data, positionals: parsed.positionals };
}

const AGO_UNITS: Record<string, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** The accepted forms of a time flag, for messages. */
export const TIME_FORMS = 'ISO 8601 (2026-11-29T10:00:00Z), now, or a duration ago (30m, 2h, 7d)';

/**
 * An absolute time from a flag value: ISO 8601 (a date alone is midnight UTC, a time without an
 * offset is UTC), `now`, or a whole number of s/m/h/d before `now`. `undefined` when unreadable.
 */
export function parseTime(value: string, now: number = Date.now()): Date | undefined {
  const v = value.trim();
  if (v === 'now') return new Date(now);
  const ago = /^(\d{1,9})(s|m|h|d)$/.exec(v);
  if (ago) return new Date(now - Number(ago[1]) * AGO_UNITS[ago[2]!]!);
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(v)) {
    return undefined;
  }
  const iso = /^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v.replace(' ', 'T');
  const t = Date.parse(/(Z|[+-]\d{2}:?\d{2})$/.test(iso) ? iso : `${iso}Z`);
  return Number.isFinite(t) ? new Date(t) : undefined;
}

/** A time flag (see {@link parseTime}); `now` is read when the flag is parsed. */
export function timeFlag(now: () => number = Date.now) {
  return z.string().transform((raw, ctx) => {
    const t = parseTime(raw, now());
    if (t === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(raw)} is not a time: use ${TIME_FORMS}`,
      });
      return z.NEVER;
    }
    return t;
  });
}

/**
 * A list flag: comma-separated values, and the flag may be repeated when its option has
 * `multiple: true`. Empty items are dropped; at least one value and at most `max` (default 10 000).
 */
export function listFlag(max = 10_000) {
  return z
    .union([z.string(), z.array(z.string())])
    .transform((raw) =>
      (Array.isArray(raw) ? raw : [raw])
        .flatMap((v) => v.split(','))
        .map((v) => v.trim())
        .filter((v) => v !== ''),
    )
    .refine((v) => v.length > 0, 'must list at least one value')
    .refine((v) => v.length <= max, `lists at most ${max} values`);
}

/** A whole-number flag in `[min, max]`, with a default when absent. */
export function intFlag(opts: { min: number; max: number; default: number }) {
  return z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(opts.min, `must be at least ${opts.min}`)
        .max(opts.max, `must be at most ${opts.max}`),
    )
    .default(opts.default);
}

/** A positive number flag (fractions allowed) up to `max`, with a default when absent. */
export function numberFlag(opts: { max: number; default: number }) {
  return z
    .string()
    .regex(/^\d+(\.\d+)?$/, 'must be a positive number')
    .transform(Number)
    .pipe(
      z.number().positive('must be greater than 0').max(opts.max, `must be at most ${opts.max}`),
    )
    .default(opts.default);
}

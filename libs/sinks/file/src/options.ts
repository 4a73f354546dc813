import { bool, durationMs, positiveInt, z } from '@sluice/config';
import { parseSinkOptions } from '@sluice/sinks-core';
import { parsePrefixTemplate, type PrefixTemplate } from './naming';

export const fileSinkOptionsSchema = z.strictObject({
  /** Folder of the files; created at `connect()` when missing. Required. */
  dir: z.string().min(1, 'must be a folder path'),
  /**
   * `jsonl`: one exported record per line (JSON). `csv`: a header row, then one row per event with
   * `attributes` and `detections` as JSON cells (RFC 4180 quoting). Default `jsonl`.
   */
  format: z.enum(['jsonl', 'csv']).default('jsonl'),
  /** Compress each file with gzip (`.gz`; one gzip member per write, which every gunzip reads). Default false. */
  gzip: bool(false),
  /** gzip level, 1 (fast) to 9 (small). Default 6. */
  gzipLevel: z.coerce.number().int().min(1).max(9).default(6),
  /**
   * File name prefix: letters, digits, `_`, `-`, `.` and the placeholders `{kind}` (`telemetry` or
   * `detection`), `{region}` and `{host}`. A file is `<prefix>-<yyyymmddThhmmssZ>-<seq>.<ext>[.gz]`.
   * CSV needs `{kind}` (the kinds have different columns). Default `sluice-{kind}`.
   */
  prefix: z.string().default('sluice-{kind}'),
  /** A file is finalised before a write would take it past this many bytes (on disk). Default 64 MiB. */
  maxBytes: positiveInt(64 * 1024 * 1024),
  /** A file is finalised this long after it was opened, written to or not. Default 5 min. */
  maxAgeMs: durationMs('5m'),
  /** Files open at once (one per rendered prefix); the least recently written is finalised beyond. Default 32. */
  maxOpenFiles: positiveInt(32),
  /**
   * Event ids remembered as written, so a redelivered record is not appended again (see
   * docs of RecentIds); 0 turns it off. Default 100000.
   */
  recentIds: z.coerce.number().int().min(0).default(100_000),
  /** Sink name (metrics label, default durable). Default `file`. */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be lowercase letters, digits, "_" or "-"')
    .default('file'),
});

/** Options of {@link FileSink}, as written in a config file. */
export type FileSinkOptions = z.input<typeof fileSinkOptionsSchema>;

/** Options with defaults applied and the prefix parsed. */
export type ResolvedFileOptions = Omit<z.output<typeof fileSinkOptionsSchema>, 'prefix'> & {
  prefix: PrefixTemplate;
  /** `jsonl`, `csv`, `jsonl.gz` or `csv.gz`. */
  extension: string;
};

/** Applies defaults and validates; throws a ConfigError naming each bad option. */
export function resolveFileOptions(
  options: FileSinkOptions,
  setting?: string,
): ResolvedFileOptions {
  const o = parseSinkOptions(fileSinkOptionsSchema, options, setting);
  const at = (name: string) => (setting ? `${setting}.${name}` : name);
  const prefix = parsePrefixTemplate(o.prefix, at('prefix'));
  if (o.format === 'csv' && !prefix.fields.includes('kind'))
    throw prefix.error(
      `"${o.prefix}" needs {kind} for CSV: telemetry and detections have different columns`,
    );
  return { ...o, prefix, extension: o.gzip ? `${o.format}.gz` : o.format };
}

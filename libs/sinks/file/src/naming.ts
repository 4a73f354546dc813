import { ConfigError } from '@sluice/errors';

/** Placeholders of a file name prefix. */
export const PREFIX_FIELDS = ['kind', 'region', 'host'] as const;
export type PrefixField = (typeof PREFIX_FIELDS)[number];

const LITERAL = /^[A-Za-z0-9_.-]*$/;
const UNSAFE = /[^A-Za-z0-9_.-]/g;

/** A parsed `sluice-{kind}-{region}` prefix. */
export interface PrefixTemplate {
  readonly source: string;
  readonly fields: readonly PrefixField[];
  /**
   * The prefix for these values. A value's characters other than letters, digits, `_`, `.` and `-`
   * become `_`, so data never adds a folder or a hidden file; a name too long for the file system is
   * refused by it when the file is created (the records go to the DLQ).
   */
  render(values: Readonly<Record<PrefixField, string>>): string;
  /** A ConfigError about this prefix. */
  error(reason: string): ConfigError;
}

export function parsePrefixTemplate(source: string, setting: string): PrefixTemplate {
  const error = (reason: string) => new ConfigError(setting, reason);
  const parts: Array<{ literal: string } | { field: PrefixField }> = [];
  const re = /\{([^{}]*)\}/g;
  let last = 0;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    parts.push({ literal: source.slice(last, m.index) });
    const field = m[1]!;
    if (!(PREFIX_FIELDS as readonly string[]).includes(field))
      throw error(
        `unknown placeholder {${field}} in "${source}"; use ${PREFIX_FIELDS.map((f) => `{${f}}`).join(', ')}`,
      );
    parts.push({ field: field as PrefixField });
    last = m.index + m[0].length;
  }
  parts.push({ literal: source.slice(last) });
  for (const p of parts)
    if ('literal' in p && !LITERAL.test(p.literal))
      throw error(`"${source}" may contain only letters, digits, "_", "-", "." and placeholders`);
  if (!/^[A-Za-z0-9_]/.test(source))
    throw error(`"${source}" must start with a letter, a digit or "_" (not a placeholder)`);
  return {
    source,
    fields: parts.flatMap((p) => ('field' in p ? [p.field] : [])),
    render: (values) =>
      parts
        .map((p) => ('literal' in p ? p.literal : values[p.field].replace(UNSAFE, '_') || '_'))
        .join(''),
    error,
  };
}

/** `yyyymmddThhmmssZ` of `t` (UTC). */
export function fileStamp(t: Date): string {
  return t
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

/**
 * `<prefix>-<yyyymmddThhmmssZ>-<seq>.<ext>`: the time the file was opened (UTC) and a sequence number
 * per prefix (6 digits or more), so names sort in the order the files were written.
 */
export function fileName(prefix: string, opened: Date, seq: number, extension: string): string {
  return `${prefix}-${fileStamp(opened)}-${String(seq).padStart(6, '0')}.${extension}`;
}

/** Suffix of a file being written: readers skip it; renamed away when the file is finalised. */
export const TEMP_SUFFIX = '.tmp';

const NAME = /^(.+)-(\d{8}T\d{6}Z)-(\d{6,})\.(jsonl|csv)(\.gz)?(\.tmp)?$/;

/** The parts of a name this sink wrote (finalised or not), or undefined for any other file. */
export function parseFileName(name: string):
  | {
      prefix: string;
      stamp: string;
      seq: number;
      format: 'jsonl' | 'csv';
      gzip: boolean;
      temp: boolean;
    }
  | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  return {
    prefix: m[1]!,
    stamp: m[2]!,
    seq: Number(m[3]),
    format: m[4] as 'jsonl' | 'csv',
    gzip: m[5] !== undefined,
    temp: m[6] !== undefined,
  };
}

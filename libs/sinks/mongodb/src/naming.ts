import { ConfigError } from '@sluice/errors';
import { RecordRejectedError } from '@sluice/sinks-core';

/** Placeholders a collection template may use, per event kind. */
export const TEMPLATE_FIELDS = {
  telemetry: ['region', 'sensor_type'],
  detection: ['region', 'stream_id'],
} as const;

export type TemplateKind = keyof typeof TEMPLATE_FIELDS;

/** Characters of a literal template part and of every substituted value. */
const SAFE = /^[A-Za-z0-9_-]*$/;
/** A substituted value: 1..64 safe characters. */
const SAFE_VALUE = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_COLLECTION = 120;

/** A collection name could not be built from an event: the event is rejected (DLQ). */
export class InvalidCollectionNameError extends RecordRejectedError {
  override readonly name = 'InvalidCollectionNameError';
  override readonly code = 'collection_name_invalid';
}

/** A parsed template: literal parts and placeholders, alternating. */
export interface CollectionTemplate {
  readonly source: string;
  readonly kind: TemplateKind;
  render(values: Record<string, string>): string;
  /** True when the name never varies (no placeholder). */
  readonly constant: boolean;
}

/**
 * Parses `telemetry_{region}`-style templates. Literal parts may use letters, digits, `_` and `-`
 * only, so every rendered name is a safe MongoDB collection name; `setting` names the option in errors.
 */
export function parseCollectionTemplate(
  source: string,
  kind: TemplateKind,
  setting: string,
): CollectionTemplate {
  const allowed: readonly string[] = TEMPLATE_FIELDS[kind];
  const parts: Array<{ literal: string } | { field: string }> = [];
  const re = /\{([^{}]*)\}/g;
  let last = 0;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    parts.push({ literal: source.slice(last, m.index) });
    const field = m[1]!;
    if (!allowed.includes(field)) {
      throw new ConfigError(
        setting,
        `unknown placeholder {${field}} in "${source}"; use ${allowed.map((f) => `{${f}}`).join(' or ')}`,
      );
    }
    parts.push({ field });
    last = m.index + m[0].length;
  }
  parts.push({ literal: source.slice(last) });
  for (const p of parts) {
    if ('literal' in p && !SAFE.test(p.literal)) {
      throw new ConfigError(
        setting,
        `"${source}" may contain only letters, digits, "_", "-" and placeholders`,
      );
    }
  }
  const literal = parts.map((p) => ('literal' in p ? p.literal : 'x')).join('');
  // A fixed first letter keeps every rendered name predictable and clear of reserved prefixes.
  if (!/^[A-Za-z_]/.test(source)) {
    throw new ConfigError(
      setting,
      `"${source}" must start with a letter or "_" (not a placeholder)`,
    );
  }
  if (/^system/i.test(literal))
    throw new ConfigError(
      setting,
      `"${source}" must not start with "system" (reserved by MongoDB)`,
    );
  const constant = parts.every((p) => 'literal' in p);
  return {
    source,
    kind,
    constant,
    render(values) {
      const name = parts
        .map((p) => {
          if ('literal' in p) return p.literal;
          const v = values[p.field] ?? '';
          if (!SAFE_VALUE.test(v)) {
            throw new InvalidCollectionNameError(
              `${p.field} ${JSON.stringify(v)} cannot be used in collection name template "${source}": it must be 1-64 letters, digits, "_" or "-"`,
            );
          }
          return v;
        })
        .join('');
      if (name.length > MAX_COLLECTION) {
        throw new InvalidCollectionNameError(
          `collection name "${name.slice(0, 40)}…" from template "${source}" is longer than ${MAX_COLLECTION} characters`,
        );
      }
      return name;
    },
  };
}

/** MongoDB database names: 1..63 of letters, digits, `_` and `-`. */
export function assertDatabaseName(name: string, setting: string): void {
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(name)) {
    throw new ConfigError(setting, `"${name}" must be 1-63 letters, digits, "_" or "-"`);
  }
}

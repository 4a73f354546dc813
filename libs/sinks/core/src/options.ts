import { ConfigError } from '@sluice/errors';
import type { z } from '@sluice/config';

/**
 * Parses a sink's options against its zod schema (defaults applied) and fails with one
 * {@link ConfigError} naming every bad option by its path, prefixed with `setting` when given (the
 * destination's place in a config file, e.g. `destinations[2].options`).
 */
export function parseSinkOptions<S extends z.ZodType>(
  schema: S,
  input: unknown,
  setting?: string,
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw ConfigError.of(
    result.error.issues.map((issue) => {
      const path = issue.path.map(String).join('.');
      return {
        variable: [setting, path].filter((s) => s).join('.') || '(options)',
        reason: issue.message,
      };
    }),
  );
}

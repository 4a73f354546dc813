import { z } from 'zod';
import { ConfigError } from './errors';

/** The process environment, or a plain object of the same shape in tests. */
export type Env = Record<string, string | undefined>;

/**
 * Parses `env` once against a zod object whose keys are environment variable names and fails fast
 * with every offending variable named. Empty strings count as unset so defaults apply.
 */
export function loadConfig<S extends z.ZodObject>(schema: S, env: Env = process.env): z.infer<S> {
  const cleaned: Env = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') cleaned[key] = value.trim();
  }
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  throw ConfigError.of(
    result.error.issues.map((issue) => ({
      variable: String(issue.path[0] ?? '(environment)'),
      reason:
        issue.code === 'invalid_type' && cleaned[String(issue.path[0])] === undefined
          ? 'is required but not set'
          : issue.message,
    })),
  );
}

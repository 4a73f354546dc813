import { randomBytes } from 'node:crypto';

/** `prefix-<time>-<random>` in lower case: safe as a subject token, key prefix or database name. */
export function uniqueId(prefix = 't'): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`.toLowerCase();
}

/** Upper-case variant for JetStream stream and consumer names (no `.`, `*`, `>`). */
export function uniqueStreamName(prefix = 'T'): string {
  return uniqueId(prefix).toUpperCase().replace(/-/g, '_');
}

import { BadParameterError } from './errors';

/** ISO 8601 with a time zone, or epoch milliseconds. */
export function parseTime(name: string, raw: string): number {
  let ms: number;
  if (/^\d{1,15}$/.test(raw)) ms = Number(raw);
  else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(raw))
    ms = Date.parse(raw);
  else
    throw new BadParameterError(
      name,
      `${name} must be an ISO 8601 time with a zone (2026-01-01T00:00:00Z) or epoch milliseconds`,
    );
  if (!Number.isFinite(ms) || ms < 0 || ms > 8.64e15)
    throw new BadParameterError(name, `${name} is not a valid time`);
  return ms;
}

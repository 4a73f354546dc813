import type { Event } from '../gen/sluice/telemetry/v1/telemetry';

/** One problem with one field of a wire event. */
export interface FieldError {
  /**
   * Where, in the event's own JSON: `reading.value`, `detections.objects[0].bbox.left`,
   * `attributes["rack.slot"]`; `""` means the event as a whole.
   */
  path: string;
  /** What is wrong and what is expected, for example `must be a finite number, got "NaN"`. */
  message: string;
}

/** Outcome of parsing one wire event. */
export type WireResult =
  | { ok: true; event: Event }
  | {
      ok: false;
      errors: FieldError[];
      /** The event's id when it was itself valid, so a rejection can name the event. */
      eventId?: string;
    };

/** A {@link WireResult} with the event's position in the request body, from 0. */
export type IndexedWireResult = WireResult & { index: number };

/** Outcome of parsing a request body; one result per event, in body order. */
export interface WireBodyResult {
  events: IndexedWireResult[];
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `["a", "b", 0, "c.d"]` → `a.b[0]["c.d"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (typeof part === 'string' && IDENTIFIER.test(part))
      out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(String(part))}]`;
  }
  return out;
}

const MAX_SHOWN = 40;

/** A short rendering of a rejected input for error messages: `"NaN"`, `12`, `null`, `an array`. */
export function describeInput(input: unknown): string {
  if (typeof input === 'string') {
    return JSON.stringify(input.length > MAX_SHOWN ? `${input.slice(0, MAX_SHOWN)}…` : input);
  }
  if (typeof input === 'number' || typeof input === 'boolean' || typeof input === 'bigint') {
    return String(input);
  }
  if (input === null) return 'null';
  if (input === undefined) return 'nothing';
  if (Array.isArray(input)) return 'an array';
  return typeof input === 'object' ? 'an object' : `a ${typeof input}`;
}

/** Zod issues as field errors; an unknown-keys issue becomes one error per key. */
export function fieldErrors(
  issues: readonly { code?: string; path: PropertyKey[]; message: string; keys?: string[] }[],
): FieldError[] {
  const errors: FieldError[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys' && issue.keys) {
      for (const key of issue.keys) {
        errors.push({ path: formatPath([...issue.path, key]), message: issue.message });
      }
    } else {
      errors.push({ path: formatPath(issue.path), message: issue.message });
    }
  }
  return errors;
}

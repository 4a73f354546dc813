import { ConfigError } from '@sluice/errors';
import { RecordRejectedError } from './errors';
import type { ExportKind, ExportRecord } from './formats';

/** Placeholders a topic or routing-key template may use, per event kind. */
export const ROUTE_FIELDS = {
  telemetry: ['region', 'device_id', 'sensor_type'],
  detection: ['region', 'device_id', 'stream_id', 'label', 'class_id'],
} as const satisfies Record<ExportKind, readonly string[]>;

/** A route (topic, routing key) could not be built from a record: the record goes to the DLQ. */
export class InvalidRouteError extends RecordRejectedError {
  override readonly name = 'InvalidRouteError';
  override readonly code = 'route_invalid';
}

/** How one destination's routes are spelled. */
export interface RouteSyntax {
  /** What a route is called in messages: `topic`, `routing key`. */
  noun: string;
  /** Characters a template's literal text may hold (besides placeholders). */
  literal: RegExp;
  /** Why a literal was refused, for the ConfigError. */
  literalRule: string;
  /** Characters of a substituted value that are replaced by `_` (so data never adds a level or a wildcard). */
  unsafe: RegExp;
  /** Longest route in UTF-8 bytes. */
  maxBytes: number;
  /** Extra checks of the whole template source; returns a reason to refuse it. */
  check?: (source: string) => string | undefined;
}

/** A parsed `detections/{stream_id}/{label}`-style template. */
export interface RouteTemplate {
  readonly source: string;
  readonly kind: ExportKind;
  readonly fields: readonly string[];
  /**
   * The routes of a record, most often one. `{label}` and `{class_id}` take each distinct value of the
   * frame's detections (`none` when it has none), so a frame with a person and a car has two routes
   * and a subscriber of either sees it.
   */
  render(record: ExportRecord): string[];
}

/** Used for `{label}` and `{class_id}` of a frame without detections. */
export const NO_DETECTION = 'none';

export function parseRouteTemplate(
  source: string,
  kind: ExportKind,
  setting: string,
  syntax: RouteSyntax,
): RouteTemplate {
  const allowed: readonly string[] = ROUTE_FIELDS[kind];
  const parts: Array<{ literal: string } | { field: string }> = [];
  const re = /\{([^{}]*)\}/g;
  let last = 0;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    parts.push({ literal: source.slice(last, m.index) });
    const field = m[1]!;
    if (!allowed.includes(field))
      throw new ConfigError(
        setting,
        `unknown placeholder {${field}} in "${source}" for ${kind} events; use ${allowed.map((f) => `{${f}}`).join(', ')}`,
      );
    parts.push({ field });
    last = m.index + m[0].length;
  }
  parts.push({ literal: source.slice(last) });
  if (source === '') throw new ConfigError(setting, `the ${syntax.noun} template is empty`);
  for (const p of parts)
    if ('literal' in p && !syntax.literal.test(p.literal))
      throw new ConfigError(setting, `"${source}": ${syntax.literalRule}`);
  const problem = syntax.check?.(source);
  if (problem) throw new ConfigError(setting, `"${source}": ${problem}`);
  const fields = parts.flatMap((p) => ('field' in p ? [p.field] : []));
  const fanOut = fields.includes('label') || fields.includes('class_id');
  const token = (v: string) => v.replace(syntax.unsafe, '_') || '_';
  const one = (values: Record<string, string>) => {
    const route = parts.map((p) => ('literal' in p ? p.literal : token(values[p.field]!))).join('');
    const bytes = Buffer.byteLength(route, 'utf8');
    if (bytes > syntax.maxBytes)
      throw new InvalidRouteError(
        `${syntax.noun} of ${bytes} bytes from template "${source}" is longer than ${syntax.maxBytes} bytes`,
      );
    return route;
  };
  return {
    source,
    kind,
    fields,
    render(record) {
      const base: Record<string, string> = { region: record.region, device_id: record.device_id };
      if (record.kind === 'telemetry') return [one({ ...base, sensor_type: record.sensor_type })];
      base['stream_id'] = record.stream_id;
      if (!fanOut) return [one(base)];
      const pairs = record.detections.length
        ? record.detections.map((d) => ({ label: d.label, class_id: String(d.class_id) }))
        : [{ label: NO_DETECTION, class_id: NO_DETECTION }];
      return [...new Set(pairs.map((p) => one({ ...base, ...p })))];
    },
  };
}

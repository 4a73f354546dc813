// The exporter's configuration: a few environment variables (`config`, documented in docs/CONFIG.md)
// and the destinations file they point at (EXPORTER_CONFIG, YAML or JSON, docs/services/exporter.md),
// read at start and again at every reload.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { assertSubjectToken } from '@sluice/contracts';
import {
  bool,
  ConfigError,
  defineConfig,
  durationMs,
  positiveInt,
  z,
  type Env,
} from '@sluice/config';
import { parseDocument } from 'yaml';
import { DestinationsConfigError, type FileIssue } from './errors';
import { formatPath, interpolate, type Path } from './interpolate';
import { DESTINATION_TYPES, SINK_TYPES } from './sink-types';

/** exporter settings (plus the common NATS/ops/logging variables). */
export const config = defineConfig({
  /**
   * Path of the destinations file (YAML, or JSON when it ends in `.json`); `${VAR}` and
   * `${VAR:-default}` in its values are read from the environment. Required.
   */
  EXPORTER_CONFIG: z.string().min(1, 'must be the path of the destinations file'),
  /**
   * How often the destinations file is checked for a change (stat: modification time, size, inode),
   * which reloads it; `0` turns the watch off (SIGHUP still reloads). Default `2s`.
   */
  EXPORTER_RELOAD_POLL: durationMs('2s').refine(
    (ms) => ms === 0 || ms >= 100,
    'must be 0 (off) or at least 100ms',
  ),
  /**
   * Bound on draining one destination when it is removed, changed or at shutdown: the batch in hand
   * is finished and settled; what is still unsettled then is redelivered. Default `20s`.
   */
  EXPORTER_DRAIN_TIMEOUT: durationMs('20s'),
  /** Bound on starting one destination (its sink's first connect, its consumers). Default `30s`. */
  EXPORTER_START_TIMEOUT: durationMs('30s'),
});

export type Config = z.infer<typeof config>;

/**
 * The environment `${VAR}` references in the destinations file are read from, at every load (a reload
 * sees the process's environment, which does not change while it runs).
 */
export function interpolationEnv(): Env {
  // eslint-disable-next-line no-restricted-properties -- configuration read here, in config.ts, like loadConfig does
  return process.env;
}

// ---------------------------------------------------------------------------------------------------
// The destinations file

/** Most destinations one exporter runs (each has its consumers, connections and buffers). */
export const MAX_DESTINATIONS = 64;
/** Largest destinations file read. */
const MAX_FILE_BYTES = 1024 * 1024;

const NAME = /^[a-z0-9][a-z0-9_-]{0,47}$/;

const region = z.string().superRefine((v, ctx) => {
  try {
    assertSubjectToken(v, 'region');
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

const list = <T extends z.ZodType>(item: T) =>
  z.array(item).min(1, 'must list at least one value (or leave the filter out)').max(1_000);

/** Which records a destination receives; every filter set must match (an unset one matches all). */
const filtersSchema = z.strictObject({
  /** `telemetry`, `detection` or both. Default both. */
  kinds: list(z.enum(['telemetry', 'detection'])).optional(),
  /** Detections with one of these labels are kept in a frame; a frame left with none is dropped. */
  labels: list(z.string().min(1)).optional(),
  /** Detections below this confidence (0..1) are removed from a frame; a frame left empty is dropped. */
  min_confidence: z.coerce.number().min(0).max(1).optional(),
  /** Regions: the subject filters of the destination's consumer (`telemetry.clean.<region>`). */
  regions: list(region).optional(),
  /** Detections of these `stream_id`s only (telemetry has no stream: `kinds` selects it). */
  streams: list(z.string().min(1)).optional(),
});

const batchSchema = z.strictObject({
  /** Most clean batches (messages) per write. Default 64. */
  max_messages: positiveInt(64),
  /** Most payload bytes per write. Default 4194304 (4 MiB). */
  max_bytes: positiveInt(4 * 1024 * 1024),
  /** Wait this long for more messages after the first. Default `20ms`. */
  linger: durationMs('20ms'),
});

const bufferSchema = z.strictObject({
  /** Bytes pulled ahead of the writer: the destination's buffer bound. Default 8388608 (8 MiB). */
  max_bytes: positiveInt(8 * 1024 * 1024),
});

const retrySchema = z.strictObject({
  /** In-process retry budget of one failed write; past it the destination counts as down. Default `2s`. */
  budget: durationMs('2s'),
  /** First in-process retry delay (doubling). Default `100ms`. */
  initial: durationMs('100ms'),
  /** Largest in-process retry delay. Default `5s`. */
  max: durationMs('5s'),
  /** Redelivery delays once the in-process budget is spent. Default `[250ms, 1s, 5s, 15s, 60s]`. */
  backoff: z.array(durationMs(0)).min(1).max(32).optional(),
  /** Deliveries of a message before it is dead-lettered whole. Default 50. */
  max_deliver: positiveInt(50),
  /** Server redelivery after this long without ack. Default `30s`. */
  ack_wait: durationMs('30s'),
  /** Bound on one write; a timeout is retried. Default `60s`. */
  write_timeout: durationMs('60s'),
  /** Longest a batch is held through an outage before it is nak'ed with backoff. Default `10m`. */
  hold_on_outage: durationMs('10m'),
});

const defaultsSchema = z.strictObject({
  batch: z.record(z.string(), z.unknown()).optional(),
  buffer: z.record(z.string(), z.unknown()).optional(),
  retry: z.record(z.string(), z.unknown()).optional(),
});

const destinationSchema = z.strictObject({
  name: z
    .string()
    .regex(
      NAME,
      'must be 1-48 lowercase letters, digits, "_" or "-", starting with a letter or digit',
    ),
  type: z.string(),
  enabled: bool(true),
  format: z.string().optional(),
  filters: filtersSchema.default({}),
  batch: batchSchema.default(batchSchema.parse({})),
  buffer: bufferSchema.default(bufferSchema.parse({})),
  retry: retrySchema.default(retrySchema.parse({})),
  /** Also consume `replay.exporter-<name>.>` (sluice replay, DLQ redrives). Default true. */
  replay: bool(true),
  options: z.record(z.string(), z.unknown()).default({}),
});

const fileSchema = z.strictObject({
  /** Layout version of this file. Default 1. */
  version: z.literal(1).default(1),
  defaults: defaultsSchema.optional(),
  destinations: z.array(z.unknown()).max(MAX_DESTINATIONS),
});

export type RecordKind = 'telemetry' | 'detection';

/** Which records a destination receives. */
export interface DestinationFilters {
  kinds?: RecordKind[];
  labels?: string[];
  minConfidence?: number;
  regions?: string[];
  streams?: string[];
}

/** One destination, validated, defaults applied, environment interpolated. */
export interface DestinationSpec {
  name: string;
  type: string;
  enabled: boolean;
  /** The destination's `format`, when its type has formats. */
  format: string | undefined;
  filters: DestinationFilters;
  batch: { maxMessages: number; maxBytes: number; lingerMs: number };
  bufferBytes: number;
  retry: {
    budgetMs: number;
    initialMs: number;
    maxMs: number;
    backoffMs: number[] | undefined;
    maxDeliver: number;
    ackWaitMs: number;
    writeTimeoutMs: number;
    holdOnOutageMs: number;
  };
  replay: boolean;
  /** The sink's options, with `name` (the destination's) and `format` filled in. */
  options: Record<string, unknown>;
  /** Identity of everything above: a destination whose fingerprint changed is restarted on reload. */
  fingerprint: string;
}

/** The destinations file as loaded. */
export interface DestinationsFile {
  file: string;
  /** sha256 of the file's bytes. */
  hash: string;
  destinations: DestinationSpec[];
}

/** JSON with object keys sorted: the same content always gives the same text. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** zod issues as file issues: an unknown key is named in the path, a missing value is "required". */
function zodIssues(
  error: z.ZodError,
  base: Path,
  unknownKey = 'is not a known setting',
): FileIssue[] {
  return error.issues.flatMap((i) => {
    const at = [...base, ...(i.path as Array<string | number>)];
    if (i.code === 'unrecognized_keys')
      return i.keys.map((k) => ({ path: formatPath([...at, k]), reason: unknownKey }));
    const reason =
      i.code === 'invalid_type' && /received undefined$/.test(i.message)
        ? 'is required'
        : i.message;
    return [{ path: formatPath(at), reason }];
  });
}

function syntax(text: string, file: string): { value: unknown; issues: FileIssue[] } {
  if (extname(file).toLowerCase() === '.json') {
    try {
      return { value: JSON.parse(text), issues: [] };
    } catch (err) {
      return { value: undefined, issues: [{ path: '(JSON)', reason: (err as Error).message }] };
    }
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0)
    return {
      value: undefined,
      issues: doc.errors.slice(0, 10).map((e) => {
        const at = e.linePos?.[0];
        return {
          path: at ? `line ${at.line}, column ${at.col}` : '(YAML)',
          reason: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
        };
      }),
    };
  return { value: doc.toJS({ maxAliasCount: 100 }), issues: [] };
}

/** `{...defaults, ...own}` for one section, both raw (validated afterwards). */
function merged(defaults: unknown, own: unknown): unknown {
  if (own === undefined) return defaults ?? {};
  if (defaults === undefined || own === null || typeof own !== 'object' || Array.isArray(own))
    return own;
  return { ...(defaults as object), ...(own as object) };
}

function destination(
  raw: unknown,
  i: number,
  defaults: z.infer<typeof defaultsSchema> | undefined,
  issues: FileIssue[],
): DestinationSpec | undefined {
  const at: Path = ['destinations', i];
  const input =
    raw !== null && typeof raw === 'object' && !Array.isArray(raw)
      ? {
          ...(raw as Record<string, unknown>),
          batch: merged(defaults?.batch, (raw as Record<string, unknown>)['batch']),
          buffer: merged(defaults?.buffer, (raw as Record<string, unknown>)['buffer']),
          retry: merged(defaults?.retry, (raw as Record<string, unknown>)['retry']),
        }
      : raw;
  const r = destinationSchema.safeParse(input);
  if (!r.success) {
    issues.push(...zodIssues(r.error, at));
    return undefined;
  }
  const d = r.data;
  const type = SINK_TYPES[d.type];
  if (!type) {
    issues.push({
      path: formatPath([...at, 'type']),
      reason: `"${d.type}" is not a destination type; one of ${DESTINATION_TYPES.join(', ')}`,
    });
    return undefined;
  }
  const before = issues.length;
  const options: Record<string, unknown> = { ...d.options };
  if ('name' in options)
    issues.push({
      path: formatPath([...at, 'options', 'name']),
      reason: 'is set by the exporter to the destination name: remove it',
    });
  options['name'] = d.name;
  let format: string | undefined;
  if (d.format !== undefined) {
    const formats = type.formats;
    if (!formats)
      issues.push({
        path: formatPath([...at, 'format']),
        reason: `a ${d.type} destination stores typed rows or documents: it has no format`,
      });
    else if (!(d.format in formats))
      issues.push({
        path: formatPath([...at, 'format']),
        reason: `"${d.format}" is not a ${d.type} format; one of ${Object.keys(formats).join(', ')}`,
      });
    else if ('format' in d.options)
      issues.push({
        path: formatPath([...at, 'options', 'format']),
        reason: 'set the format once: either the destination format or options.format',
      });
    else {
      format = d.format;
      options['format'] = formats[d.format];
    }
  }
  if (
    d.filters.kinds?.length === 1 &&
    d.filters.kinds[0] === 'telemetry' &&
    (d.filters.labels || d.filters.min_confidence !== undefined || d.filters.streams)
  )
    issues.push({
      path: formatPath([...at, 'filters']),
      reason:
        'labels, min_confidence and streams select detections, but kinds keeps telemetry only',
    });
  if (issues.length > before) return undefined;
  const checked = type.schema.safeParse(options);
  if (!checked.success) {
    issues.push(
      ...zodIssues(
        checked.error,
        [...at, 'options'],
        `is not an option of a ${d.type} destination`,
      ),
    );
    return undefined;
  }
  try {
    type.validate(options, formatPath([...at, 'options']));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    issues.push(...err.issues.map((x) => ({ path: x.variable, reason: x.reason })));
    return undefined;
  }
  const filters: DestinationFilters = {};
  if (d.filters.kinds) filters.kinds = [...new Set(d.filters.kinds)];
  if (d.filters.labels) filters.labels = [...new Set(d.filters.labels)];
  if (d.filters.min_confidence !== undefined) filters.minConfidence = d.filters.min_confidence;
  if (d.filters.regions) filters.regions = [...new Set(d.filters.regions)];
  if (d.filters.streams) filters.streams = [...new Set(d.filters.streams)];
  const spec: Omit<DestinationSpec, 'fingerprint'> = {
    name: d.name,
    type: d.type,
    enabled: d.enabled,
    format,
    filters,
    batch: {
      maxMessages: d.batch.max_messages,
      maxBytes: d.batch.max_bytes,
      lingerMs: d.batch.linger,
    },
    bufferBytes: d.buffer.max_bytes,
    retry: {
      budgetMs: d.retry.budget,
      initialMs: d.retry.initial,
      maxMs: d.retry.max,
      backoffMs: d.retry.backoff,
      maxDeliver: d.retry.max_deliver,
      ackWaitMs: d.retry.ack_wait,
      writeTimeoutMs: d.retry.write_timeout,
      holdOnOutageMs: d.retry.hold_on_outage,
    },
    replay: d.replay,
    options,
  };
  return { ...spec, fingerprint: canonical(spec) };
}

/**
 * Parses the text of a destinations file. Every problem is collected (not just the first) and thrown
 * as one {@link DestinationsConfigError} naming `file`, the path inside it and the reason.
 */
export function parseDestinations(text: string, file: string, env: Env): DestinationsFile {
  const fail = (issues: FileIssue[]) => new DestinationsConfigError(file, issues);
  const parsed = syntax(text, file);
  if (parsed.issues.length > 0) throw fail(parsed.issues);
  if (parsed.value === null || parsed.value === undefined)
    throw fail([{ path: '(file)', reason: 'is empty; it needs a list of destinations' }]);
  if (typeof parsed.value !== 'object' || Array.isArray(parsed.value))
    throw fail([{ path: '(file)', reason: 'must be a mapping with a list of destinations' }]);
  const issues: FileIssue[] = [];
  const value = interpolate(parsed.value, env, issues);
  if (issues.length > 0) throw fail(issues);
  const top = fileSchema.safeParse(value);
  if (!top.success) throw fail(zodIssues(top.error, []));
  const defaults = top.data.defaults;
  if (defaults) {
    for (const [section, schema] of [
      ['batch', batchSchema],
      ['buffer', bufferSchema],
      ['retry', retrySchema],
    ] as const) {
      const r = (schema as z.ZodType).safeParse(defaults[section] ?? {});
      if (!r.success) issues.push(...zodIssues(r.error, ['defaults', section]));
    }
    if (issues.length > 0) throw fail(issues);
  }
  const out: DestinationSpec[] = [];
  const seen = new Map<string, number>();
  top.data.destinations.forEach((raw, i) => {
    const name = (raw as { name?: unknown } | null)?.name;
    if (typeof name === 'string') {
      const first = seen.get(name);
      if (first !== undefined)
        issues.push({
          path: formatPath(['destinations', i, 'name']),
          reason: `"${name}" is also the name of destinations[${first}]; names are unique`,
        });
      else seen.set(name, i);
    }
    const spec = destination(raw, i, defaults, issues);
    if (spec) out.push(spec);
  });
  if (issues.length > 0) throw fail(issues);
  return {
    file,
    hash: createHash('sha256').update(text).digest('hex'),
    destinations: out,
  };
}

/** Reads and parses the destinations file; a file that cannot be read is a {@link DestinationsConfigError} too. */
export async function loadDestinations(file: string, env: Env): Promise<DestinationsFile> {
  let text: string;
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_FILE_BYTES)
      throw new Error(`is ${bytes.length} bytes; at most ${MAX_FILE_BYTES} are read`);
    text = bytes.toString('utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new DestinationsConfigError(file, [
      {
        path: '(file)',
        reason:
          e.code === 'ENOENT'
            ? 'does not exist (EXPORTER_CONFIG names it)'
            : `cannot be read: ${e.message}`,
      },
    ]);
  }
  return parseDestinations(text, file, env);
}

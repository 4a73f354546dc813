// The query API dashboards and the SDK call: roll-up series, device and region listings, latest
// values. Routes, parameters and response bodies are declared once with zod; the OpenAPI document
// at /openapi.json is generated from them. Every `/v1` route needs a bearer token whose regions
// cover what it reads.
import type { ServerTls } from '@sluice/config';
import {
  badParameter,
  configuredTokens,
  defineEventStream,
  defineRoute,
  forbidden,
  notFound,
  scopeAllows,
  startHttpApi,
  unavailable,
  type HashedToken,
  type HttpApiDefinition,
  type Principal,
  type TokenScope,
} from '@sluice/http';
import type { Logger } from '@sluice/observability';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { BadParameterError, isTransientStoreError } from './errors';
import { SCOPE_DEVICE, SCOPE_REGION, type Scope } from './partial';
import {
  decodeCursor,
  encodeCursor,
  pickResolution,
  type RollupQueries,
  type SeriesQuery,
} from './query';
import type { Resolution } from './resolutions';
import { pipelineAdmin, type PipelineAdminOptions } from './pipeline-admin';
import type { RollupStream, StreamFilter } from './stream';
import { parseTime } from './time';

export { parseTime };

export interface ApiOptions {
  port: number;
  /** Default `127.0.0.1`. */
  host?: string;
  queries: RollupQueries;
  /** The resolutions served; a function for a configuration that changes live. */
  resolutions: readonly Resolution[] | (() => readonly Resolution[]);
  /** `points` for `resolution=auto` when not given. */
  defaultPoints: number;
  /** Most windows a series query may span. */
  maxRangePoints: number;
  /** Largest `limit`. */
  maxPage: number;
  /** Accepted bearer tokens (hashed), each with the regions it may read; see {@link apiTokens}. */
  tokens: readonly HashedToken[];
  /** Deadline of one request. Default 30 s. */
  requestTimeoutMs?: number;
  log: Logger;
  /** Request metrics (`sluice_http_*`, `api="aggregator"`) are registered here. */
  registry: Registry;
  /** HTTPS (and mTLS with a client CA): `listenerTls(config, 'AGGREGATOR_API')`. Default plain HTTP. */
  tls?: ServerTls | undefined;
  /** Serves `GET /v1/stream` from it. Default none (the route answers 503). */
  stream?: RollupStream | undefined;
  /** Its subscriber limit, added to the connection limit. Default 2,000. */
  maxStreamClients?: number;
  /**
   * Serves the pipeline admin routes (`/v1/pipeline/...`) to these operator tokens
   * ({@link adminTokens}). Default none (the routes are not served).
   */
  admin?: (PipelineAdminOptions & { operators: readonly HashedToken[] }) | undefined;
}

export interface ApiServer {
  readonly port: number;
  close(): Promise<void>;
}

const MAX_TEXT = 128;

/**
 * The query API's tokens: `AGGREGATOR_API_TOKENS` plus `AGGREGATOR_API_TOKENS_FILE`. With none, a
 * production service refuses to start (`ConfigError`); elsewhere one development token for every
 * region is generated and logged once, so the API is never served unauthenticated.
 */
export function apiTokens(
  config: {
    AGGREGATOR_API_TOKENS: string;
    AGGREGATOR_API_TOKENS_FILE?: string | undefined;
    SLUICE_ENV: string;
  },
  log: Logger,
): HashedToken[] {
  return configuredTokens({
    inline: config.AGGREGATOR_API_TOKENS,
    file: config.AGGREGATOR_API_TOKENS_FILE,
    variable: 'AGGREGATOR_API_TOKENS',
    fileVariable: 'AGGREGATOR_API_TOKENS_FILE',
    field: 'regions',
    production: config.SLUICE_ENV === 'production',
    what: 'the query API',
    warn: (obj, msg) => log.warn(obj, msg),
  });
}

const iso = z.iso.datetime();
const text = (name: string) =>
  z
    .string()
    .min(1, `${name} must not be empty`)
    .max(MAX_TEXT, `${name} must be at most ${MAX_TEXT} characters`);
const timeParam = (description: string) =>
  z
    .string()
    .max(40)
    .describe(`${description} ISO 8601 (\`2026-01-01T00:00:00Z\`) or epoch milliseconds.`);
const cursorParam = z
  .string()
  .max(1024)
  .optional()
  .describe('Opaque `next_cursor` of the previous page, with otherwise identical parameters.');
const countParam = (name: string, max: number, dflt: number) =>
  z.coerce
    .number()
    .int(`${name} must be a whole number`)
    .min(1, `${name} must be between 1 and ${max}`)
    .max(max, `${name} must be between 1 and ${max}`)
    .default(dflt);

const pointSchema = z.object({
  time: iso.describe('Window start'),
  count: z.number().int(),
  sum: z.number(),
  min: z.number(),
  max: z.number(),
  avg: z.number(),
  first: z.number(),
  last: z.number(),
  first_time: iso,
  last_time: iso,
  revision: z
    .number()
    .int()
    .describe('0 while the window is open; 1 once closed; +1 per late update published'),
  late_count: z.number().int(),
});
const seriesPageSchema = z.object({
  scope: z.enum(['device', 'region']),
  device: z.string().optional(),
  region: z.string().optional(),
  sensor: z.string(),
  resolution: z.string(),
  from: iso,
  to: iso,
  points: z.array(pointSchema),
  next_cursor: z.string().nullable(),
});
const keyPageSchema = z.object({
  items: z.array(z.object({ id: z.string(), region: z.string(), sensors: z.array(z.string()) })),
  next_cursor: z.string().nullable(),
});
const rollupEventSchema = z.object({
  scope: z.enum(['device', 'region']),
  device: z.string().optional().describe('For scope `device`'),
  region: z.string(),
  sensor: z.string(),
  resolution: z.string(),
  time: iso.describe('Window start'),
  end: iso.describe('Window end (exclusive)'),
  count: z.number().int(),
  sum: z.number(),
  min: z.number(),
  max: z.number(),
  avg: z.number(),
  first: z.number(),
  last: z.number(),
  first_time: iso,
  last_time: iso,
  revision: z.number().int().describe('1 when the window closed; +1 per late update'),
  late_count: z.number().int(),
});
const MAX_LIST = 1000;
const listParam = (name: string) =>
  z
    .string()
    .min(1, `${name} must not be empty`)
    .max(64 * 1024)
    .transform((raw, ctx) => {
      const items = [...new Set(raw.split(',').map((x) => x.trim()))].filter((x) => x !== '');
      if (items.length === 0 || items.length > MAX_LIST || items.some((x) => x.length > MAX_TEXT)) {
        ctx.addIssue({
          code: 'custom',
          message: `${name} must list 1 to ${MAX_LIST} comma-separated values of at most ${MAX_TEXT} characters`,
        });
        return z.NEVER;
      }
      return items;
    })
    .optional();
const latestSchema = z.object({
  device: z.string(),
  sensors: z.array(
    z.object({
      sensor: z.string(),
      region: z.string(),
      value: z.number(),
      time: iso,
      derived: z.boolean(),
    }),
  ),
});

/** The regions a principal may read, `undefined` for all. */
function allowedRegions(p: Principal | undefined): readonly string[] | undefined {
  const claims: TokenScope = p?.claims ?? '*';
  return claims === '*' ? undefined : [...claims];
}

/** The query API as routes, for an HTTP API the runtime serves (see {@link startApi}). */
export function queryApi(
  opts: Omit<ApiOptions, 'port' | 'host' | 'log' | 'registry' | 'requestTimeoutMs'>,
): HttpApiDefinition {
  const given = opts.resolutions;
  const resolutions = typeof given === 'function' ? given : () => given;
  /** The resolution named, else a 400 listing the configured ones. */
  const resolutionNamed = (parameter: string, name: string, auto: boolean): Resolution => {
    const found = resolutions().find((r) => r.name === name);
    if (found) return found;
    const names = resolutions().map((r) => r.name);
    throw new BadParameterError(
      parameter,
      `${parameter} must be ${auto ? 'auto or ' : ''}one of ${names.join(', ')}`,
    );
  };
  const { queries } = opts;

  /** 403 unless every region the device has data in is one the token may read. */
  const requireDevice = async (p: Principal | undefined, device: string) => {
    const allowed = allowedRegions(p);
    if (!allowed) return;
    const regions = await queries.regionsOf(SCOPE_DEVICE, device);
    if (regions.length === 0 || regions.some((r) => !allowed.includes(r)))
      throw forbidden(
        `token "${p!.name}" may not read device ${device}: it is not in the token's regions`,
      );
  };
  const requireRegion = (p: Principal | undefined, region: string) => {
    if (p && !scopeAllows(p.claims, region))
      throw forbidden(`token "${p.name}" may not read region ${region}`);
  };

  const series = defineRoute({
    method: 'GET',
    path: '/v1/series',
    operationId: 'getSeries',
    summary: 'Roll-up points of one device or region sensor over a time range',
    description:
      'Exactly one of `device` or `region`. Windows whose start lies in [from, to). `resolution=auto` picks the coarsest resolution giving at least `points` windows over the range (the finest when none does). The range divided by the resolution may not exceed the configured maximum. A token reads only the devices and regions of its regions (403 otherwise).',
    query: z.object({
      device: text('device').optional(),
      region: text('region').max(64, 'region must be at most 64 characters').optional(),
      sensor: text('sensor'),
      from: timeParam('Range start (inclusive).'),
      to: timeParam('Range end (exclusive).'),
      resolution: z
        .string()
        .max(16, 'resolution must be auto or a configured resolution')
        .default('auto')
        .describe('`auto`, or a configured resolution (`1s`, `5s`, `1m`, `1h` by default).'),
      points: countParam('points', opts.maxRangePoints, opts.defaultPoints).describe(
        'Target number of points for `resolution=auto`.',
      ),
      limit: countParam('limit', opts.maxPage, Math.min(1000, opts.maxPage)).describe(
        `Items per page, 1..${opts.maxPage}.`,
      ),
      cursor: cursorParam,
    }),
    response: seriesPageSchema,
    responseDescription: 'One page of points',
    problems: [403],
    handler: async ({ query: q, principal }) => {
      const { device, region, sensor } = q;
      if ((device === undefined) === (region === undefined))
        throw new BadParameterError(
          device === undefined ? 'device' : 'region',
          'give exactly one of device or region',
        );
      const scope: Scope = device !== undefined ? SCOPE_DEVICE : SCOPE_REGION;
      const from = parseTime('from', q.from);
      const to = parseTime('to', q.to);
      if (to <= from) throw new BadParameterError('to', 'to must be later than from');
      const resolution =
        q.resolution === 'auto'
          ? pickResolution(resolutions(), from, to, q.points)
          : resolutionNamed('resolution', q.resolution, true);
      const windows = Math.ceil((to - from) / resolution.ms);
      if (windows > opts.maxRangePoints) {
        throw new BadParameterError(
          q.resolution === 'auto' ? 'from' : 'resolution',
          `the range spans ${windows} windows of ${resolution.name}; at most ${opts.maxRangePoints}: ${q.resolution === 'auto' ? 'shorten the range' : 'choose a coarser resolution or a shorter range'}`,
        );
      }
      const base = { scope, key: (device ?? region)!, sensor, resolution, from, to };
      const sq: SeriesQuery = {
        ...base,
        limit: q.limit,
        ...(q.cursor !== undefined ? { after: decodeCursor(base, q.cursor) } : {}),
      };
      if (device !== undefined) await requireDevice(principal, device);
      else requireRegion(principal, region!);
      const page = await queries.series(sq);
      return {
        scope: scope === SCOPE_DEVICE ? ('device' as const) : ('region' as const),
        ...(device !== undefined ? { device } : { region: region! }),
        sensor,
        resolution: resolution.name,
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        points: page.points,
        next_cursor: page.next !== undefined ? encodeCursor(sq, page.next) : null,
      };
    },
  });

  const listing = (scope: Scope, path: string, operationId: string, summary: string) =>
    defineRoute({
      method: 'GET',
      path,
      operationId,
      summary,
      description: 'Only the keys within the token’s regions are listed.',
      query: z.object({
        limit: countParam('limit', opts.maxPage, Math.min(100, opts.maxPage)).describe(
          `Items per page, 1..${opts.maxPage}.`,
        ),
        cursor: cursorParam,
      }),
      response: keyPageSchema,
      responseDescription: `One page of ${scope === SCOPE_DEVICE ? 'devices' : 'regions'}`,
      handler: async ({ query: q, principal }) => {
        let after: string | undefined;
        if (q.cursor !== undefined) {
          try {
            const c = JSON.parse(Buffer.from(q.cursor, 'base64url').toString('utf8')) as {
              k?: unknown;
              s?: unknown;
            };
            if (typeof c.k !== 'string' || c.s !== scope) throw new Error('bad');
            after = c.k;
          } catch {
            throw new BadParameterError('cursor', 'cursor is not one this API returned');
          }
        }
        const page = await queries.keys(scope, q.limit, after, allowedRegions(principal));
        return {
          items: page.items.map((i) => ({ id: i.key, region: i.region, sensors: i.sensors })),
          next_cursor:
            page.next !== undefined
              ? Buffer.from(JSON.stringify({ k: page.next, s: scope })).toString('base64url')
              : null,
        };
      },
    });

  const latest = defineRoute({
    method: 'GET',
    path: '/v1/devices/{device}/latest',
    operationId: 'getLatest',
    summary: 'Latest value of every sensor of a device',
    params: z.object({ device: text('device') }),
    response: latestSchema,
    responseDescription: 'Latest values',
    problems: [403, 404],
    handler: async ({ params: { device }, principal }) => {
      await requireDevice(principal, device);
      const sensors = await queries.latest(SCOPE_DEVICE, device);
      if (sensors.length === 0) throw notFound('no data for this device');
      return { device, sensors };
    },
  });

  const stream = opts.stream;
  const streamRoute = defineEventStream({
    path: '/v1/stream',
    operationId: 'streamRollups',
    summary: 'Roll-ups pushed as their windows close (server-sent events)',
    description:
      'A `text/event-stream` of `rollup` events (`data`: one window, as a point of `/v1/series` plus its series), each with `id` = its sequence in the ROLLUPS stream, for the roll-ups of one resolution and scope matching every given filter (comma-separated lists; absent = all). Revisions of closed windows come as further events. Reconnect with `Last-Event-ID` (or `last_event_id`) to receive everything after that event without a gap. A `: heartbeat` comment comes every few seconds. A client that does not keep up is sent an `overflow` event (`data.last_event_id` to resume from) and disconnected; a server shutting down sends `shutdown`. A token sees only its regions (403 for a region outside them).',
    query: z.object({
      resolution: z
        .string()
        .min(1, 'resolution must be a configured resolution')
        .max(16, 'resolution must be a configured resolution')
        .describe('A configured resolution (`1s`, `5s`, `1m`, `1h` by default).'),
      scope: z
        .enum(['device', 'region'], { error: 'scope must be device or region' })
        .default('device')
        .describe('Roll-ups per device (default) or per region.'),
      device: listParam('device').describe('Devices, comma-separated.'),
      region: listParam('region').describe('Regions, comma-separated.'),
      sensor: listParam('sensor').describe('Sensors, comma-separated.'),
      last_event_id: z
        .string()
        .regex(/^\d{1,19}$/, 'last_event_id must be an event id this stream sent')
        .optional()
        .describe('Resume after this event (the `Last-Event-ID` header takes precedence).'),
    }),
    event: rollupEventSchema,
    responseDescription: 'Server-sent `rollup` events',
    problems: [403],
    handler: async ({ query: q, principal, headers, open }) => {
      if (!stream) throw unavailable('the roll-up stream is not served by this replica');
      const header = headers['last-event-id'];
      const rawId = typeof header === 'string' && header !== '' ? header : q.last_event_id;
      if (rawId !== undefined && !/^\d{1,19}$/.test(rawId))
        throw new BadParameterError(
          'Last-Event-ID',
          'Last-Event-ID must be an event id this stream sent',
        );
      const resumeAfter = rawId !== undefined ? Number(rawId) : undefined;
      const allowed = allowedRegions(principal);
      let regions: ReadonlySet<string> | undefined = q.region ? new Set(q.region) : undefined;
      if (allowed) {
        const outside = q.region?.find((r) => !allowed.includes(r));
        if (outside !== undefined) requireRegion(principal, outside);
        regions ??= new Set(allowed);
      }
      if (stream.full)
        throw unavailable('this replica serves its maximum of stream subscribers; retry later', 5);
      const filter: StreamFilter = {
        resolution: resolutionNamed('resolution', q.resolution, false).name,
        scope: q.scope,
        ...(q.device ? { devices: new Set(q.device) } : {}),
        ...(regions ? { regions } : {}),
        ...(q.sensor ? { sensors: new Set(q.sensor) } : {}),
      };
      await stream.subscribe(filter, open(), resumeAfter);
    },
  });

  const admin = opts.admin ? pipelineAdmin(opts.admin) : undefined;
  return {
    title: 'Sluice aggregator query API',
    version: '1.0.0',
    description:
      'Event-time roll-ups (count, sum, min, max, avg, first, last) per device or region and sensor. Every `/v1` route needs `Authorization: Bearer <token>`; a token reads only its regions. Errors are `application/problem+json`.',
    routes: [
      series,
      listing(
        SCOPE_DEVICE,
        '/v1/devices',
        'listDevices',
        'Devices with their sensors, ordered by device id',
      ),
      listing(SCOPE_REGION, '/v1/regions', 'listRegions', 'Regions with their sensors'),
      latest,
      streamRoute,
      ...(admin?.routes ?? []),
    ],
    auth: { tokens: [...opts.tokens, ...(opts.admin?.operators ?? [])] },
    schemas: {
      Point: pointSchema,
      SeriesPage: seriesPageSchema,
      KeyPage: keyPageSchema,
      Latest: latestSchema,
      RollupEvent: rollupEventSchema,
      ...admin?.schemas,
    },
    mapError: (err) => {
      const mapped = admin?.mapError(err);
      if (mapped) return mapped;
      if (err instanceof BadParameterError) return badParameter(err.parameter, err.message);
      if (isTransientStoreError(err))
        return unavailable('the roll-up store is unreachable; retry later');
      return undefined;
    },
  };
}

/** Starts the query API on its own port. */
export async function startApi(opts: ApiOptions): Promise<ApiServer> {
  const api = await startHttpApi({
    ...queryApi(opts),
    service: 'aggregator',
    port: opts.port,
    host: opts.host ?? '127.0.0.1',
    requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
    bodyLimitBytes: 16 * 1024,
    log: opts.log,
    registry: opts.registry,
    tls: opts.tls,
    // Stream subscribers hold a connection each.
    maxConnections: 1024 + (opts.stream ? (opts.maxStreamClients ?? 2_000) : 0),
  });
  return { port: api.port, close: () => api.close() };
}

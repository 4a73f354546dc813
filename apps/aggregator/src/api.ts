import { listenHttp } from '@sluice/runtime';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '@sluice/observability';
import { BadParameterError, isTransientStoreError } from './errors';
import type { AggregatorMetrics } from './metrics';
import { openApiDocument } from './openapi';
import { SCOPE_DEVICE, SCOPE_REGION, type Scope } from './partial';
import {
  decodeCursor,
  encodeCursor,
  pickResolution,
  type RollupQueries,
  type SeriesQuery,
} from './query';
import type { Resolution } from './resolutions';

export interface ApiOptions {
  port: number;
  /** Default `0.0.0.0`. */
  host?: string;
  queries: RollupQueries;
  resolutions: readonly Resolution[];
  /** `points` for `resolution=auto` when not given. */
  defaultPoints: number;
  /** Most windows a series query may span. */
  maxRangePoints: number;
  /** Largest `limit`. */
  maxPage: number;
  log: Logger;
  metrics: AggregatorMetrics;
}

export interface ApiServer {
  readonly port: number;
  close(): Promise<void>;
}

const MAX_TEXT = 128;

function text(q: URLSearchParams, name: string, required: true): string;
function text(q: URLSearchParams, name: string, required: false): string | undefined;
function text(q: URLSearchParams, name: string, required: boolean): string | undefined {
  const all = q.getAll(name);
  if (all.length > 1) throw new BadParameterError(name, `${name} must be given once`);
  const v = all[0];
  if (v === undefined || v === '') {
    if (required) throw new BadParameterError(name, `${name} is required`);
    return undefined;
  }
  if (v.length > MAX_TEXT)
    throw new BadParameterError(name, `${name} must be at most ${MAX_TEXT} characters`);
  return v;
}

function integer(q: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const raw = text(q, name, false);
  if (raw === undefined) return dflt;
  if (!/^\d+$/.test(raw))
    throw new BadParameterError(name, `${name} must be a whole number between ${min} and ${max}`);
  const n = Number(raw);
  if (n < min || n > max)
    throw new BadParameterError(name, `${name} must be between ${min} and ${max}, got ${raw}`);
  return n;
}

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

function send(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
  });
  res.end(json);
}

/** The HTTP query API dashboards and the SDK call. */
export async function startApi(opts: ApiOptions): Promise<ApiServer> {
  const names = opts.resolutions.map((r) => r.name);
  const doc = JSON.stringify(
    openApiDocument(names, {
      defaultPoints: opts.defaultPoints,
      maxRangePoints: opts.maxRangePoints,
      maxPage: opts.maxPage,
    }),
  );

  const series = async (q: URLSearchParams) => {
    const device = text(q, 'device', false);
    const region = text(q, 'region', false);
    if ((device === undefined) === (region === undefined))
      throw new BadParameterError(
        device === undefined ? 'device' : 'region',
        'give exactly one of device or region',
      );
    const scope: Scope = device !== undefined ? SCOPE_DEVICE : SCOPE_REGION;
    const sensor = text(q, 'sensor', true);
    const from = parseTime('from', text(q, 'from', true));
    const to = parseTime('to', text(q, 'to', true));
    if (to <= from) throw new BadParameterError('to', 'to must be later than from');
    const points = integer(q, 'points', opts.defaultPoints, 1, opts.maxRangePoints);
    const limit = integer(q, 'limit', Math.min(1000, opts.maxPage), 1, opts.maxPage);
    const resName = text(q, 'resolution', false) ?? 'auto';
    let resolution: Resolution;
    if (resName === 'auto') {
      resolution = pickResolution(opts.resolutions, from, to, points);
    } else {
      const r = opts.resolutions.find((x) => x.name === resName);
      if (!r)
        throw new BadParameterError(
          'resolution',
          `resolution must be auto or one of ${names.join(', ')}`,
        );
      resolution = r;
    }
    const windows = Math.ceil((to - from) / resolution.ms);
    if (windows > opts.maxRangePoints) {
      throw new BadParameterError(
        resName === 'auto' ? 'from' : 'resolution',
        `the range spans ${windows} windows of ${resolution.name}; at most ${opts.maxRangePoints}: ${resName === 'auto' ? 'shorten the range' : 'choose a coarser resolution or a shorter range'}`,
      );
    }
    const base = { scope, key: (device ?? region)!, sensor, resolution, from, to };
    const cursor = text(q, 'cursor', false);
    const sq: SeriesQuery = {
      ...base,
      limit,
      ...(cursor !== undefined ? { after: decodeCursor(base, cursor) } : {}),
    };
    const page = await opts.queries.series(sq);
    return {
      scope: scope === SCOPE_DEVICE ? 'device' : 'region',
      ...(device !== undefined ? { device } : { region }),
      sensor,
      resolution: resolution.name,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      points: page.points,
      next_cursor: page.next !== undefined ? encodeCursor(sq, page.next) : null,
    };
  };

  const keys = async (scope: Scope, q: URLSearchParams) => {
    const limit = integer(q, 'limit', Math.min(100, opts.maxPage), 1, opts.maxPage);
    const cursor = text(q, 'cursor', false);
    let after: string | undefined;
    if (cursor !== undefined) {
      try {
        const c = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as {
          k?: unknown;
          s?: unknown;
        };
        if (typeof c.k !== 'string' || c.s !== scope) throw new Error('bad');
        after = c.k;
      } catch {
        throw new BadParameterError('cursor', 'cursor is not one this API returned');
      }
    }
    const page = await opts.queries.keys(scope, limit, after);
    return {
      items: page.items.map((i) => ({ id: i.key, region: i.region, sensors: i.sensors })),
      next_cursor:
        page.next !== undefined
          ? Buffer.from(JSON.stringify({ k: page.next, s: scope })).toString('base64url')
          : null,
    };
  };

  const route = async (
    req: IncomingMessage,
  ): Promise<{ route: string; status: number; body: unknown }> => {
    if (req.method !== 'GET')
      return {
        route: 'other',
        status: 405,
        body: { error: { code: 'method_not_allowed', message: 'only GET is supported' } },
      };
    const url = new URL(req.url ?? '/', 'http://api');
    const q = url.searchParams;
    if (url.pathname === '/openapi.json') return { route: 'openapi', status: 200, body: undefined };
    if (url.pathname === '/v1/series')
      return { route: 'series', status: 200, body: await series(q) };
    if (url.pathname === '/v1/devices')
      return { route: 'devices', status: 200, body: await keys(SCOPE_DEVICE, q) };
    if (url.pathname === '/v1/regions')
      return { route: 'regions', status: 200, body: await keys(SCOPE_REGION, q) };
    const m = /^\/v1\/devices\/([^/]+)\/latest$/.exec(url.pathname);
    if (m) {
      let device: string;
      try {
        device = decodeURIComponent(m[1]!);
      } catch {
        throw new BadParameterError('device', 'device is not valid percent-encoding');
      }
      if (device.length > MAX_TEXT)
        throw new BadParameterError('device', `device must be at most ${MAX_TEXT} characters`);
      const sensors = await opts.queries.latest(SCOPE_DEVICE, device);
      if (sensors.length === 0)
        return {
          route: 'latest',
          status: 404,
          body: { error: { code: 'not_found', message: 'no data for this device' } },
        };
      return { route: 'latest', status: 200, body: { device, sensors } };
    }
    return {
      route: 'other',
      status: 404,
      body: { error: { code: 'not_found', message: `no route ${url.pathname}` } },
    };
  };

  const server: Server = createServer((req, res) => {
    const end = Date.now();
    route(req)
      .then(
        (r) => r,
        (err: unknown) => {
          if (err instanceof BadParameterError)
            return {
              route: 'bad',
              status: 400,
              body: {
                error: {
                  code: 'invalid_parameter',
                  parameter: err.parameter,
                  message: err.message,
                },
              },
            };
          if (isTransientStoreError(err))
            return {
              route: 'error',
              status: 503,
              body: {
                error: {
                  code: 'unavailable',
                  message: 'the roll-up store is unreachable; retry later',
                },
              },
            };
          opts.log.error({ err }, 'query API request failed');
          return {
            route: 'error',
            status: 500,
            body: { error: { code: 'internal', message: 'internal error' } },
          };
        },
      )
      .then((r) => {
        if (r.route === 'openapi') {
          res.writeHead(200, {
            'content-type': 'application/json; charset=utf-8',
            'content-length': Buffer.byteLength(doc),
          });
          res.end(doc);
        } else {
          send(res, r.status, r.body);
        }
        opts.metrics.apiRequests.inc({ route: r.route, status: String(r.status) });
        opts.metrics.apiDuration.observe({ route: r.route }, (Date.now() - end) / 1000);
      });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  return listenHttp(server, opts.port, opts.host ?? '0.0.0.0');
}

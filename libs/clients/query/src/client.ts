// The aggregator's query API for dashboards and other teams: roll-up series, device and region
// listings, latest values. Types come from src/gen/schema.ts (generated from the API's OpenAPI
// document by `npm run clients`); this file only names the operations and follows cursors.
import {
  call,
  createApiClient,
  paginate,
  type ApiClientOptions,
  type Problem,
} from '@sluice/client-core';
import type { Client, ClientPathsWithMethod, MethodResponse } from 'openapi-fetch';
import type { components, operations, paths } from './gen/schema';

// Answers as openapi-fetch types them.
type Answer<P extends ClientPathsWithMethod<Client<paths>, 'get'>> = MethodResponse<
  Client<paths>,
  'get',
  P
>;

export type SeriesPage = Answer<'/v1/series'>;
export type Point = SeriesPage['points'][number];
export type KeyPage = Answer<'/v1/devices'>;
export type KeyItem = KeyPage['items'][number];
export type Latest = Answer<'/v1/devices/{device}/latest'>;
/** Parameters of {@link QueryClient.series}: exactly one of `device` or `region`. */
export type SeriesQuery = operations['getSeries']['parameters']['query'];
export type ListQuery = NonNullable<operations['listDevices']['parameters']['query']>;

type Assert<T extends true> = T;
/** The generated problem type is the one the errors carry (fails to compile if the API changes it). */
export type _ProblemMatches = Assert<
  components['schemas']['Problem'] extends Problem ? true : false
>;

export type QueryClientOptions = ApiClientOptions;

/** Bounds for the iterating methods. */
export interface IterateOptions {
  /** Most pages fetched before an ApiPagingLimitError. Default 1000. */
  maxPages?: number;
}

export interface QueryClient {
  /** One page of roll-up points of a device or region sensor over `[from, to)`. */
  series(query: SeriesQuery): Promise<SeriesPage>;
  /** Every point of the range, page by page (`cursor` is managed here). */
  seriesPoints(query: Omit<SeriesQuery, 'cursor'>, opts?: IterateOptions): AsyncGenerator<Point>;
  /** One page of devices with their sensors (those in the token's regions). */
  devices(query?: ListQuery): Promise<KeyPage>;
  /** Every device, page by page. */
  allDevices(query?: Omit<ListQuery, 'cursor'>, opts?: IterateOptions): AsyncGenerator<KeyItem>;
  /** One page of regions with their sensors. */
  regions(query?: ListQuery): Promise<KeyPage>;
  /** Every region, page by page. */
  allRegions(query?: Omit<ListQuery, 'cursor'>, opts?: IterateOptions): AsyncGenerator<KeyItem>;
  /** The latest value of every sensor of a device (404 `not_found` when it has none). */
  latest(device: string): Promise<Latest>;
  /** The generated openapi-fetch client, for what the methods above do not cover. */
  readonly raw: Client<paths>;
}

/**
 * A client of the aggregator's query API (`AGGREGATOR_API_PORT`, default 9480). Every method
 * resolves to the answer's body or throws an `ApiProblemError` (problem+json: `code`, `status`,
 * `problem.detail`, `problem.parameter`) or an `ApiTransportError` (no answer).
 */
export function createQueryClient(opts: QueryClientOptions): QueryClient {
  const raw = createApiClient<paths>({
    ...opts,
    headers: { 'user-agent': 'sluice-query-client', ...opts.headers },
  });
  const series = (query: SeriesQuery) =>
    call('GET /v1/series', raw.GET('/v1/series', { params: { query } }));
  const devices = (query: ListQuery = {}) =>
    call('GET /v1/devices', raw.GET('/v1/devices', { params: { query } }));
  const regions = (query: ListQuery = {}) =>
    call('GET /v1/regions', raw.GET('/v1/regions', { params: { query } }));
  return {
    raw,
    series,
    async *seriesPoints(query, opts = {}) {
      const pages = paginate(
        'GET /v1/series',
        async (cursor) => {
          const page = await series({ ...query, ...(cursor !== undefined ? { cursor } : {}) });
          return { items: page.points, next_cursor: page.next_cursor };
        },
        opts.maxPages,
      );
      yield* pages;
    },
    devices,
    allDevices: (query = {}, o = {}) =>
      paginate(
        'GET /v1/devices',
        (cursor) => devices({ ...query, ...(cursor ? { cursor } : {}) }),
        o.maxPages,
      ),
    regions,
    allRegions: (query = {}, o = {}) =>
      paginate(
        'GET /v1/regions',
        (cursor) => regions({ ...query, ...(cursor ? { cursor } : {}) }),
        o.maxPages,
      ),
    latest: (device) =>
      call(
        'GET /v1/devices/{device}/latest',
        raw.GET('/v1/devices/{device}/latest', { params: { path: { device } } }),
      ),
  };
}

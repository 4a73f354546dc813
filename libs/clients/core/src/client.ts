// The runtime every generated Sluice client shares: an openapi-fetch client typed by the API's
// generated `paths`, that sends the bearer token and a deadline with every request, and turns an
// error answer into an ApiProblemError and no answer into an ApiTransportError.
import createClient, { type Client } from 'openapi-fetch';
import {
  ApiPagingLimitError,
  ApiProblemError,
  ApiTransportError,
  problemOf,
  retryAfterMs,
} from './errors';

/** Where an API is and how to call it. */
export interface ApiClientOptions {
  /** The API's base URL, e.g. `http://aggregator:9480` (a path prefix is kept). */
  baseUrl: string;
  /**
   * The bearer token, or a function giving the current one (called before every request, so a
   * rotated token is picked up without a new client).
   */
  token: string | (() => string | Promise<string>);
  /** Deadline of one request, from sending it to the end of the answer's headers. Default 30 s. */
  timeoutMs?: number;
  /** Headers sent with every request (a `user-agent`, say). Default none. */
  headers?: Record<string, string>;
  /** The fetch to use. Default `globalThis.fetch`. */
  fetch?: (request: Request) => Promise<Response>;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function normalizeBaseUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TypeError(`baseUrl must be an absolute http(s) URL, got "${raw}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new TypeError(`baseUrl must be http or https, got "${raw}"`);
  return u.toString().replace(/\/+$/, '');
}

/** `GET /v1/series` of a request, for messages. */
function operationOf(request: Request, base: string): string {
  const url = new URL(request.url);
  const prefix = new URL(base).pathname.replace(/\/+$/, '');
  const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname;
  return `${request.method} ${path || '/'}`;
}

/**
 * An openapi-fetch client for `Paths` (the generated `paths` of one API). Prefer the wrappers
 * (`createQueryClient`, `createAdminClient`); this is what they build on, and their `raw`.
 */
export function createApiClient<Paths extends object>(opts: ApiClientOptions): Client<Paths> {
  const baseUrl = normalizeBaseUrl(opts.baseUrl);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new TypeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
  const tokenOf = typeof opts.token === 'function' ? opts.token : () => opts.token as string;
  const send = opts.fetch ?? ((request: Request) => globalThis.fetch(request));

  const fetchWithAuth = async (request: Request): Promise<Response> => {
    const operation = operationOf(request, baseUrl);
    const token = await tokenOf();
    if (typeof token !== 'string' || token === '')
      throw new TypeError(`${operation}: the token is empty`);
    const headers = new Headers(request.headers);
    for (const [k, v] of Object.entries(opts.headers ?? {})) headers.set(k, v);
    headers.set('authorization', `Bearer ${token}`);
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([request.signal, deadline]);
    try {
      return await send(new Request(request, { headers, signal }));
    } catch (err) {
      if (deadline.aborted) throw new ApiTransportError(operation, 'api_timeout', err);
      // The caller's own abort is theirs to handle.
      if (request.signal.aborted) throw err;
      throw new ApiTransportError(operation, 'api_unreachable', err);
    }
  };

  return createClient<Paths>({ baseUrl, fetch: fetchWithAuth });
}

/** What an openapi-fetch call resolves to. */
export interface FetchResult<D> {
  data?: D;
  error?: unknown;
  response: Response;
}

/**
 * The data of a successful call; an {@link ApiProblemError} for an error answer. Transport failures
 * are already {@link ApiTransportError}s. `operation` names the call in errors (`GET /v1/series`).
 */
export async function call<D>(operation: string, pending: Promise<FetchResult<D>>): Promise<D> {
  const { data, error, response } = await pending;
  if (response.ok) return data as D;
  throw new ApiProblemError(
    operation,
    problemOf(response.status, response.statusText, error),
    retryAfterMs(response.headers.get('retry-after')),
  );
}

/** A page of a listing: its items and the cursor of the next page (`null` on the last). */
export interface Page<T> {
  items: readonly T[];
  next_cursor: string | null;
}

/**
 * Every item of a paged listing, following `next_cursor` from the first page. Stops with an
 * {@link ApiPagingLimitError} rather than silently after `maxPages` pages (default 1000).
 */
export async function* paginate<T>(
  operation: string,
  fetchPage: (cursor: string | undefined) => Promise<Page<T>>,
  maxPages = 1000,
): AsyncGenerator<T, void, undefined> {
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const p = await fetchPage(cursor);
    yield* p.items;
    if (p.next_cursor === null) return;
    cursor = p.next_cursor;
  }
  throw new ApiPagingLimitError(operation, maxPages);
}

import { SluiceError } from '@sluice/errors';

/** One offending input of a 400: where it is (`limit`, `filter.value.gt`) and what is wrong with it. */
export interface ProblemIssue {
  path: string;
  message: string;
}

/**
 * The error body of every Sluice API (RFC 9457 `application/problem+json`): `code` is the stable
 * machine-readable reason, `detail` the sentence a caller can act on.
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** `invalid_parameter`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `unavailable`, ... */
  code: string;
  /** The first offending parameter of a 400. */
  parameter?: string;
  errors?: ProblemIssue[];
}

/** Statuses after which the same request may succeed unchanged. */
const RETRIABLE_STATUSES = new Set([408, 425, 429, 502, 503, 504]);

const STATUS_CODES: Record<number, string> = {
  400: 'invalid_parameter',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'timeout',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'unprocessable',
  429: 'too_many_requests',
  500: 'internal',
  502: 'bad_gateway',
  503: 'unavailable',
  504: 'gateway_timeout',
};

const MAX_DETAIL = 500;

function isProblem(body: unknown): body is Problem {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as Record<string, unknown>;
  return (
    typeof b['status'] === 'number' &&
    typeof b['code'] === 'string' &&
    typeof b['detail'] === 'string' &&
    typeof b['title'] === 'string'
  );
}

/**
 * The problem an error response stands for: its problem+json body, or (from something in front of
 * the API, a proxy answering 502 in HTML, say) one made from the status and the start of the body.
 */
export function problemOf(status: number, statusText: string, body: unknown): Problem {
  if (isProblem(body)) return body;
  const text = typeof body === 'string' ? body : body === undefined ? '' : JSON.stringify(body);
  const title = statusText || `HTTP ${status}`;
  return {
    type: 'about:blank',
    title,
    status,
    detail: text.trim().slice(0, MAX_DETAIL) || title,
    code: STATUS_CODES[status] ?? (status >= 500 ? 'internal' : 'bad_request'),
  };
}

/**
 * The API answered with an error status. `code` is the problem's code (`not_found`, `forbidden`,
 * ...), `problem` the whole body; `retriable` for 408, 425, 429, 502, 503 and 504, where
 * `retryAfterMs` carries the server's `Retry-After` when it sent one.
 */
export class ApiProblemError extends SluiceError {
  override readonly name = 'ApiProblemError';
  readonly code: string;
  readonly status: number;
  /** `GET /v1/series`: the operation that failed. */
  readonly operation: string;
  readonly problem: Problem;
  readonly retryAfterMs: number | undefined;

  constructor(operation: string, problem: Problem, retryAfterMs?: number) {
    super(`${operation}: ${problem.status} ${problem.code}: ${problem.detail}`, {
      retriable: RETRIABLE_STATUSES.has(problem.status),
    });
    this.code = problem.code;
    this.status = problem.status;
    this.operation = operation;
    this.problem = problem;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * No answer: the API could not be reached (`api_unreachable`) or did not answer within the client's
 * deadline (`api_timeout`). Always retriable; the request may or may not have been applied.
 */
export class ApiTransportError extends SluiceError {
  override readonly name = 'ApiTransportError';
  readonly code: 'api_unreachable' | 'api_timeout';
  readonly operation: string;

  constructor(operation: string, code: 'api_unreachable' | 'api_timeout', cause: unknown) {
    const reason = code === 'api_timeout' ? 'no answer within the deadline' : describeCause(cause);
    super(`${operation}: ${reason}`, { retriable: true, cause });
    this.code = code;
    this.operation = operation;
  }
}

interface ErrorLike {
  message: string;
  cause?: unknown;
}

// Duck-typed: fetch's errors come from another realm under some runners, where instanceof fails.
function isErrorLike(e: unknown): e is ErrorLike {
  return typeof e === 'object' && e !== null && typeof (e as ErrorLike).message === 'string';
}

/** The innermost reason of a failed fetch (`connect ECONNREFUSED 127.0.0.1:9480`). */
function describeCause(err: unknown): string {
  let e = err;
  for (let depth = 0; depth < 5 && isErrorLike(e) && isErrorLike(e.cause); depth++) e = e.cause;
  return isErrorLike(e) ? e.message : String(err);
}

/** More pages than the caller allowed: narrow the query or raise `maxPages`. */
export class ApiPagingLimitError extends SluiceError {
  override readonly name = 'ApiPagingLimitError';
  readonly code = 'api_paging_limit';

  constructor(operation: string, maxPages: number) {
    super(`${operation}: more than ${maxPages} pages; narrow the query or raise maxPages`);
  }
}

/** `Retry-After` in milliseconds (seconds or an HTTP date), `undefined` when absent or invalid. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const s = header.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

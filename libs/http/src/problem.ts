// One error envelope for every API: RFC 9457 problem details (`application/problem+json`).
import { STATUS_CODES } from 'node:http';
import { SluiceError } from '@sluice/errors';
import { z } from 'zod';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** One offending input of a 400: where it is (`limit`, `filter.value.gt`) and what is wrong with it. */
export const problemIssueSchema = z.object({
  path: z.string().describe('The parameter name, or the dotted path inside the body'),
  message: z.string(),
});

/**
 * The error body of every API. `type` is `about:blank` and `title` the HTTP status phrase (RFC 9457
 * §4.2.1); `code` is the stable machine-readable reason, `detail` the sentence a caller can act on.
 */
export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int().min(400).max(599),
  detail: z.string(),
  code: z
    .string()
    .describe(
      'invalid_parameter, invalid_body, unauthorized, forbidden, not_found, method_not_allowed, conflict, payload_too_large, unsupported_media_type, unprocessable, timeout, unavailable, internal',
    ),
  parameter: z.string().optional().describe('The first offending parameter of a 400'),
  errors: z.array(problemIssueSchema).optional(),
});

export type Problem = z.infer<typeof problemSchema>;
export type ProblemIssue = z.infer<typeof problemIssueSchema>;

const CODES: Record<number, string> = {
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
  500: 'internal',
  503: 'unavailable',
};

/** The default `code` of a status (`internal` for an unknown 5xx, `bad_request` for an unknown 4xx). */
export function problemCode(status: number): string {
  return CODES[status] ?? (status >= 500 ? 'internal' : 'bad_request');
}

export interface HttpProblemOptions {
  /** Default: {@link problemCode} of the status. */
  code?: string;
  parameter?: string;
  errors?: ProblemIssue[];
  /** Extra response headers (`WWW-Authenticate`, `Retry-After`, `Allow`). */
  headers?: Record<string, string>;
}

/** A request the API refuses; thrown by handlers (or mapped from domain errors) and rendered as a problem. */
export class HttpProblem extends SluiceError {
  override readonly name = 'HttpProblem';
  readonly code: string;
  constructor(
    readonly status: number,
    detail: string,
    readonly options: HttpProblemOptions = {},
  ) {
    super(detail, { httpStatus: status });
    if (!Number.isInteger(status) || status < 400 || status > 599)
      throw new RangeError(`problem status must be 400..599, got ${status}`);
    this.code = options.code ?? problemCode(status);
  }

  toProblem(): Problem {
    return {
      type: 'about:blank',
      title: STATUS_CODES[this.status] ?? 'Error',
      status: this.status,
      detail: this.message,
      code: this.code,
      ...(this.options.parameter !== undefined ? { parameter: this.options.parameter } : {}),
      ...(this.options.errors?.length ? { errors: this.options.errors } : {}),
    };
  }
}

/** 400 naming the parameter; `code` `invalid_parameter`. */
export const badParameter = (parameter: string, detail: string) =>
  new HttpProblem(400, detail, { parameter, errors: [{ path: parameter, message: detail }] });
/** 400 about the request body; `code` `invalid_body`. */
export const badBody = (detail: string, errors?: ProblemIssue[]) =>
  new HttpProblem(400, detail, { code: 'invalid_body', ...(errors ? { errors } : {}) });
export const forbidden = (detail: string) => new HttpProblem(403, detail);
export const notFound = (detail: string) => new HttpProblem(404, detail);
export const conflict = (detail: string) => new HttpProblem(409, detail);
export const unprocessable = (detail: string) => new HttpProblem(422, detail);
/** 503 with `Retry-After` (seconds, default 1). */
export const unavailable = (detail: string, retryAfterS = 1) =>
  new HttpProblem(503, detail, { headers: { 'retry-after': String(retryAfterS) } });

import { ApiProblemError, ApiTransportError, problemOf, retryAfterMs } from './errors';

describe('problemOf', () => {
  it('keeps a problem+json body as it is', () => {
    const body = {
      type: 'about:blank',
      title: 'Bad Request',
      status: 400,
      detail: 'limit: must be between 1 and 5000',
      code: 'invalid_parameter',
      parameter: 'limit',
      errors: [{ path: 'limit', message: 'must be between 1 and 5000' }],
    };
    expect(problemOf(400, 'Bad Request', body)).toBe(body);
  });

  it('makes a problem of another body from the status and the start of the body', () => {
    const html = `<html><body>${'bad gateway '.repeat(100)}</body></html>`;
    const p = problemOf(502, 'Bad Gateway', html);
    expect(p).toMatchObject({ status: 502, code: 'bad_gateway', title: 'Bad Gateway' });
    expect(p.detail.length).toBe(500);
    expect(p.detail.startsWith('<html>')).toBe(true);
    expect(problemOf(418, '', undefined)).toEqual({
      type: 'about:blank',
      title: 'HTTP 418',
      status: 418,
      detail: 'HTTP 418',
      code: 'bad_request',
    });
    expect(problemOf(599, 'Odd', { message: 'x' }).code).toBe('internal');
  });
});

describe('ApiProblemError', () => {
  it('takes code and status from the problem and is retriable only for passing failures', () => {
    const p = (status: number) => problemOf(status, '', 'x');
    const e = new ApiProblemError('GET /v1/regions', p(503), 2000);
    expect([e.code, e.status, e.retriable, e.retryAfterMs]).toEqual([
      'unavailable',
      503,
      true,
      2000,
    ]);
    expect(e.message).toBe('GET /v1/regions: 503 unavailable: x');
    expect(
      [408, 425, 429, 502, 503, 504].every((s) => new ApiProblemError('op', p(s)).retriable),
    ).toBe(true);
    expect(
      [400, 401, 403, 404, 409, 422, 500].some((s) => new ApiProblemError('op', p(s)).retriable),
    ).toBe(false);
  });
});

describe('ApiTransportError', () => {
  it('names the innermost cause of a failed fetch', () => {
    const cause = new TypeError('fetch failed', {
      cause: new Error('connect ECONNREFUSED 127.0.0.1:9'),
    });
    const e = new ApiTransportError('GET /v1/regions', 'api_unreachable', cause);
    expect(e.message).toBe('GET /v1/regions: connect ECONNREFUSED 127.0.0.1:9');
    expect([e.code, e.retriable, e.cause]).toEqual(['api_unreachable', true, cause]);
    expect(new ApiTransportError('op', 'api_timeout', cause).message).toBe(
      'op: no answer within the deadline',
    );
  });
});

describe('retryAfterMs', () => {
  it('reads seconds and HTTP dates, and nothing else', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('3', now)).toBe(3000);
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
    expect(retryAfterMs('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs(null, now)).toBeUndefined();
    expect(retryAfterMs('', now)).toBeUndefined();
    expect(retryAfterMs('soon', now)).toBeUndefined();
  });
});

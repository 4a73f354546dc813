// The shared client runtime against a real HTTP server on loopback: what it sends, how it reads
// error answers, deadlines and unreachable APIs, and bounded pagination.
import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from '@sluice/testing';
import {
  ApiPagingLimitError,
  ApiProblemError,
  ApiTransportError,
  call,
  createApiClient,
  paginate,
} from './index';

type Json<T> = { content: { 'application/json': T } };
type Op<Q, R> = {
  parameters: { query?: Q; header?: never; path?: never; cookie?: never };
  requestBody?: never;
  responses: { 200: { headers: Record<string, unknown> } & Json<R> };
};
interface paths {
  '/v1/echo': { get: Op<{ n?: number }, { path: string; authorization: string; agent: string }> };
  '/v1/items': { get: Op<{ cursor?: string }, { items: number[]; next_cursor: string | null }> };
  '/v1/busy': { get: Op<never, unknown> };
  '/v1/html': { get: Op<never, unknown> };
  '/v1/slow': { get: Op<never, unknown> };
}

describe('createApiClient and call', () => {
  let server: Server;
  let base: string;
  const seen: IncomingHttpHeaders[] = [];
  const held: ServerResponse[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers);
      const url = new URL(req.url ?? '/', 'http://x');
      const json = (status: number, body: unknown, type = 'application/json') =>
        res.writeHead(status, { 'content-type': type }).end(JSON.stringify(body));
      switch (url.pathname) {
        case '/api/v1/echo':
          return json(200, {
            path: `${url.pathname}${url.search}`,
            authorization: req.headers.authorization,
            agent: req.headers['user-agent'],
          });
        case '/api/v1/items': {
          const at = Number(url.searchParams.get('cursor') ?? 0);
          return json(200, { items: [at, at + 1], next_cursor: at < 4 ? String(at + 2) : null });
        }
        case '/api/v1/busy':
          res.setHeader('retry-after', '2');
          return json(
            503,
            {
              type: 'about:blank',
              title: 'Service Unavailable',
              status: 503,
              detail: 'the roll-up store is unreachable; retry later',
              code: 'unavailable',
            },
            'application/problem+json',
          );
        case '/api/v1/html':
          return res
            .writeHead(502, { 'content-type': 'text/html' })
            .end('<h1>502 Bad Gateway</h1>');
        case '/api/v1/slow':
          if (held.length < 10) held.push(res);
          return;
        default:
          return json(404, {});
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/`;
  });

  afterAll(async () => {
    for (const r of held) r.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sends the bearer token of the moment, the headers and the query under the base path', async () => {
    const tokens = ['first-token', 'second-token'];
    let i = 0;
    const client = createApiClient<paths>({
      baseUrl: base,
      token: async () => tokens[Math.min(i++, tokens.length - 1)]!,
      headers: { 'user-agent': 'client-core-test' },
    });
    const a = await call('GET /v1/echo', client.GET('/v1/echo', { params: { query: { n: 3 } } }));
    const b = await call('GET /v1/echo', client.GET('/v1/echo'));
    expect(a).toEqual({
      path: '/api/v1/echo?n=3',
      authorization: 'Bearer first-token',
      agent: 'client-core-test',
    });
    expect(b.authorization).toBe('Bearer second-token');
  });

  it('throws ApiProblemError with the problem, retriable and Retry-After', async () => {
    const client = createApiClient<paths>({ baseUrl: base, token: 't' });
    const busy = (await call('GET /v1/busy', client.GET('/v1/busy')).catch(
      (e: unknown) => e,
    )) as ApiProblemError;
    expect(busy).toBeInstanceOf(ApiProblemError);
    expect([busy.status, busy.code, busy.retriable, busy.retryAfterMs, busy.operation]).toEqual([
      503,
      'unavailable',
      true,
      2000,
      'GET /v1/busy',
    ]);
    expect(busy.problem.detail).toBe('the roll-up store is unreachable; retry later');

    const html = (await call('GET /v1/html', client.GET('/v1/html')).catch(
      (e: unknown) => e,
    )) as ApiProblemError;
    expect(html).toBeInstanceOf(ApiProblemError);
    expect(html.problem).toMatchObject({
      status: 502,
      code: 'bad_gateway',
      detail: '<h1>502 Bad Gateway</h1>',
    });
    expect(html.retriable).toBe(true);
  });

  it('gives up at the deadline, and on an API nobody listens to, with ApiTransportError', async () => {
    const slow = createApiClient<paths>({ baseUrl: base, token: 't', timeoutMs: 200 });
    const late = (await call('GET /v1/slow', slow.GET('/v1/slow')).catch(
      (e: unknown) => e,
    )) as ApiTransportError;
    expect(late).toBeInstanceOf(ApiTransportError);
    expect([late.code, late.retriable, late.operation]).toEqual([
      'api_timeout',
      true,
      'GET /v1/slow',
    ]);

    const gone = createApiClient<paths>({
      baseUrl: `http://127.0.0.1:${await freePort()}/api`,
      token: 't',
    });
    const refused = (await call('GET /v1/echo', gone.GET('/v1/echo')).catch(
      (e: unknown) => e,
    )) as ApiTransportError;
    expect(refused).toBeInstanceOf(ApiTransportError);
    expect(refused.code).toBe('api_unreachable');
    expect(refused.message).toMatch(/^GET \/v1\/echo: .*ECONNREFUSED/);
  });

  it("leaves the caller's own abort to the caller", async () => {
    const client = createApiClient<paths>({ baseUrl: base, token: 't' });
    const ac = new AbortController();
    const pending = client.GET('/v1/slow', { signal: ac.signal });
    ac.abort(new Error('caller gave up'));
    const err = await pending.catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(ApiTransportError);
    expect(String(err)).toMatch(/caller gave up/);
  });

  it('refuses a base URL that is not http(s) and an empty token', async () => {
    expect(() => createApiClient<paths>({ baseUrl: 'ftp://x', token: 't' })).toThrow(
      /http or https/,
    );
    expect(() => createApiClient<paths>({ baseUrl: '127.0.0.1:9480', token: 't' })).toThrow(
      /absolute/,
    );
    const empty = createApiClient<paths>({ baseUrl: base, token: () => '' });
    await expect(empty.GET('/v1/echo')).rejects.toThrow('GET /v1/echo: the token is empty');
  });

  it('follows cursors page by page, and stops with an error past maxPages', async () => {
    const client = createApiClient<paths>({ baseUrl: base, token: 't' });
    const page = (cursor: string | undefined) =>
      call(
        'GET /v1/items',
        client.GET('/v1/items', { params: { query: cursor ? { cursor } : {} } }),
      );
    const all: number[] = [];
    for await (const n of paginate('GET /v1/items', page)) all.push(n);
    expect(all).toEqual([0, 1, 2, 3, 4, 5]);
    const some: number[] = [];
    const bounded = (async () => {
      for await (const n of paginate('GET /v1/items', page, 2)) some.push(n);
    })();
    await expect(bounded).rejects.toBeInstanceOf(ApiPagingLimitError);
    expect(some).toEqual([0, 1, 2, 3]);
  });
});

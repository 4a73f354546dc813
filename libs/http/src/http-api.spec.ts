import { ConfigError, SluiceError } from '@sluice/errors';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { z } from 'zod';
import {
  BearerAuthenticator,
  defineRoute,
  generateToken,
  HttpProblem,
  notFound,
  parseInlineTokens,
  readTokenFile,
  sha256Hex,
  startHttpApi,
  type HttpApi,
} from './index';
import { fetchChecked, openApiChecker, type OpenApiChecker } from './testing';

class DomainMissing extends Error {}
class StoreDown extends SluiceError {
  readonly code = 'store_down';
  constructor() {
    super('pg at 10.0.0.7:5432 refused', { retriable: true, httpStatus: 503 });
  }
}
class Quota extends SluiceError {
  readonly code = 'quota_exceeded';
  constructor() {
    super('quota exceeded for this token', { httpStatus: 429 });
  }
}

const item = z.object({ id: z.string(), n: z.number().int(), tags: z.array(z.string()) });

describe('startHttpApi', () => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino(
    { level: 'info' },
    { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  const registry = new Registry();
  const admin = generateToken();
  const reader = generateToken();
  let api: HttpApi;
  let base: string;
  let checker: OpenApiChecker;
  const aborted: string[] = [];
  let release: (() => void) | undefined;

  beforeAll(async () => {
    api = await startHttpApi({
      service: 'spec',
      title: 'Spec API',
      version: '1.2.3',
      port: 0,
      bodyLimitBytes: 1024,
      requestTimeoutMs: 1_000,
      log,
      registry,
      schemas: { Item: item },
      cors: { origins: ['https://console.example'] },
      auth: {
        tokens: [
          { name: 'admin', sha256: admin.sha256, claims: '*' },
          { name: 'reader', sha256: reader.sha256, claims: new Set(['eu']) },
        ],
      },
      mapError: (err) => (err instanceof DomainMissing ? notFound(err.message) : undefined),
      routes: [
        defineRoute({
          method: 'GET',
          path: '/v1/items/{id}',
          operationId: 'getItem',
          summary: 'One item',
          params: z.object({ id: z.string().max(8) }),
          query: z.object({ n: z.coerce.number().int().min(1).max(10).default(1) }),
          response: item,
          problems: [403, 404, 429],
          handler: async ({ params, query, principal }) => {
            if (params.id === 'missing') throw new DomainMissing(`no item ${params.id}`);
            if (params.id === 'eu-only' && principal?.claims !== '*')
              throw new HttpProblem(403, 'not yours');
            if (params.id === 'boom') throw new Error('password=hunter2 leaked');
            if (params.id === 'badshape') return { id: 'x', n: 1.5, tags: [] };
            if (params.id === 'down') throw new StoreDown();
            if (params.id === 'quota') throw new Quota();
            return { id: params.id, n: query.n, tags: [principal!.name] };
          },
        }),
        defineRoute({
          method: 'POST',
          path: '/v1/items',
          operationId: 'createItem',
          summary: 'Create',
          body: z
            .object({
              n: z.number().int().default(0),
              tags: z.array(z.string()).max(3).default([]),
            })
            .strict(),
          bodyOptional: true,
          status: 201,
          response: item,
          handler: async ({ body }) => ({ id: 'new', n: body.n, tags: body.tags }),
        }),
        defineRoute({
          method: 'DELETE',
          path: '/v1/items/{id}',
          operationId: 'deleteItem',
          summary: 'Delete',
          params: z.object({ id: z.string() }),
          status: 204,
          response: z.undefined(),
          handler: async () => undefined,
        }),
        defineRoute({
          method: 'GET',
          path: '/v1/slow',
          operationId: 'slow',
          summary: 'Never finishes in time',
          response: z.object({}),
          handler: ({ signal }) =>
            new Promise((_, reject) =>
              signal.addEventListener('abort', () => {
                aborted.push(String((signal.reason as Error).message));
                reject(signal.reason as Error);
              }),
            ),
        }),
        defineRoute({
          method: 'GET',
          path: '/v1/held',
          operationId: 'held',
          summary: 'Answers when released',
          public: true,
          response: z.object({ done: z.boolean() }),
          handler: () => new Promise((resolve) => (release = () => resolve({ done: true }))),
        }),
      ],
    });
    base = `http://127.0.0.1:${api.port}`;
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as Record<string, unknown>;
    checker = await openApiChecker(doc);
  });
  afterAll(() => api.close());

  const auth = (t = admin.token) => ({ authorization: `Bearer ${t}` });
  const call = (url: string, init: RequestInit = {}) => fetchChecked(checker, base, url, init);

  it('serves the OpenAPI 3.1 document generated from the route schemas, public', async () => {
    const res = await fetch(`${base}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as any;
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: 'Spec API', version: '1.2.3' });
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/v1/held',
      '/v1/items',
      '/v1/items/{id}',
      '/v1/slow',
    ]);
    expect(
      doc.paths['/v1/items/{id}'].get.responses['200'].content['application/json'].schema,
    ).toEqual({ $ref: '#/components/schemas/Item' });
    expect(
      doc.paths['/v1/items/{id}'].get.responses['404'].content['application/problem+json'].schema,
    ).toEqual({ $ref: '#/components/schemas/Problem' });
    expect(doc.paths['/v1/items'].post.requestBody.required).toBe(false);
    expect(doc.paths['/v1/held'].get.security).toEqual([]);
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(checker.operations).toHaveLength(5);
  });

  it('answers success responses that validate against the document', async () => {
    expect((await call('/v1/items/abc?n=3', { headers: auth() })).body).toEqual({
      id: 'abc',
      n: 3,
      tags: ['admin'],
    });
    expect(
      (
        await call('/v1/items', {
          method: 'POST',
          headers: { ...auth(), 'content-type': 'application/json' },
          body: '{"n":2}',
        })
      ).status,
    ).toBe(201);
    const empty = await call('/v1/items', { method: 'POST', headers: auth() });
    expect(empty).toMatchObject({ status: 201, body: { id: 'new', n: 0, tags: [] } });
    expect((await call('/v1/items/abc', { method: 'DELETE', headers: auth() })).status).toBe(204);
  });

  it('renders every error as application/problem+json', async () => {
    const bad = await call('/v1/items/abc?n=99', { headers: auth() });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({
      type: 'about:blank',
      title: 'Bad Request',
      status: 400,
      code: 'invalid_parameter',
      parameter: 'n',
    });
    const body = await call('/v1/items', {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: '{"n":"x","extra":1}',
    });
    expect(body.body).toMatchObject({ status: 400, code: 'invalid_body' });
    expect(body.body.errors.map((e: { path: string }) => e.path)).toEqual(
      expect.arrayContaining(['n']),
    );
    const notJson = await call('/v1/items', {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: '{',
    });
    expect(notJson.body).toMatchObject({ status: 400, code: 'invalid_body' });
    expect((await call('/v1/items/missing', { headers: auth() })).body).toMatchObject({
      status: 404,
      code: 'not_found',
      detail: 'no item missing',
    });
    expect((await call('/v1/items/eu-only', { headers: auth(reader.token) })).body).toMatchObject({
      status: 403,
      code: 'forbidden',
    });
    const big = await call('/v1/items', {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ tags: ['x'.repeat(2000)] }),
    });
    expect(big.body).toMatchObject({ status: 413, code: 'payload_too_large' });
    const text = await call('/v1/items', {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'text/plain' },
      body: 'hi',
    });
    expect(text.body).toMatchObject({ status: 415 });
  });

  it('answers 500 without internals, logging the error', async () => {
    const r = await call('/v1/items/boom', { headers: auth() });
    expect(r.body).toMatchObject({ status: 500, code: 'internal', detail: 'internal error' });
    expect(JSON.stringify(r.body)).not.toContain('hunter2');
    expect(
      lines.some((l) => l['msg'] === 'request failed' && JSON.stringify(l).includes('hunter2')),
    ).toBe(true);
    const shape = await call('/v1/items/badshape', { headers: auth() });
    expect(shape.body).toMatchObject({ status: 500, code: 'internal' });
  });

  it('renders SluiceErrors by their httpStatus and code, hiding the message of a 503', async () => {
    const down = await call('/v1/items/down', { headers: auth() });
    expect(down.body).toMatchObject({ status: 503, code: 'store_down' });
    expect(down.headers.get('retry-after')).toBe('1');
    expect(JSON.stringify(down.body)).not.toContain('10.0.0.7');
    const quota = await call('/v1/items/quota', { headers: auth() });
    expect(quota.body).toMatchObject({
      status: 429,
      code: 'quota_exceeded',
      detail: 'quota exceeded for this token',
    });
  });

  it('answers 401 without, with a malformed or with an unknown token', async () => {
    for (const headers of [{}, { authorization: 'Basic abc' }, auth('not-a-token')]) {
      const r = await call('/v1/items/abc', { headers });
      expect(r.status).toBe(401);
      expect(r.body.code).toBe('unauthorized');
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer realm="spec"/);
    }
  });

  it('answers 404 and 405 for unknown routes and methods', async () => {
    const nf = await fetch(`${base}/v2/nothing`);
    expect(nf.status).toBe(404);
    expect(nf.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const na = await fetch(`${base}/v1/items/x`, { method: 'PUT', headers: auth() });
    expect(na.status).toBe(405);
    expect(na.headers.get('allow')).toBe('GET, DELETE');
    expect(((await na.json()) as { code: string }).code).toBe('method_not_allowed');
  });

  it('cuts a handler at the request timeout with 503 and aborts its signal', async () => {
    const r = await call('/v1/slow', { headers: auth() });
    expect(r.status).toBe(503);
    expect(r.body.code).toBe('timeout');
    expect(r.headers.get('retry-after')).toBe('1');
    expect(aborted).toHaveLength(1);
  });

  it('answers 408 problem+json when the body does not arrive within the request timeout', async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      const s = connect(api.port, '127.0.0.1', () => {
        s.write(
          `POST /v1/items HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${admin.token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"n":`,
        );
      });
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('close', () => resolve(got));
      s.on('error', reject);
      s.setTimeout(10_000, () => s.destroy(new Error('no answer')));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 408 /);
    expect(raw).toMatch(/content-type: application\/problem\+json/i);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
    expect(body).toMatchObject({ status: 408, code: 'timeout' });
  });

  it('answers CORS preflights for the configured origins only', async () => {
    const pre = (origin: string) =>
      fetch(`${base}/v1/items/abc`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'GET',
          'access-control-request-headers': 'authorization',
        },
      });
    const ok = await pre('https://console.example');
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://console.example');
    const other = await pre('https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('counts requests by route template, never by raw URL', async () => {
    await call('/v1/items/zzz-unique?n=2', { headers: auth() });
    const text = await registry.metrics();
    expect(text).toMatch(
      /sluice_http_requests_total\{api="spec",method="GET",route="\/v1\/items\/:id",status="200"\} \d+/,
    );
    expect(text).toMatch(
      /sluice_http_requests_total\{api="spec",method="GET",route="unmatched",status="404"\}/,
    );
    expect(text).not.toContain('zzz-unique');
    expect(text).toMatch(/sluice_http_client_errors_total\{api="spec",status="408"\} 1/);
  });

  it('logs no line per request', async () => {
    const before = lines.length;
    for (let i = 0; i < 5; i++) await call('/v1/items/abc', { headers: auth() });
    expect(lines.slice(before)).toEqual([]);
  });

  it('checked every documented success and error status of every route it exercised', () => {
    expect([...checker.seen]).toEqual(
      expect.arrayContaining([
        'GET /v1/items/{id} 200',
        'GET /v1/items/{id} 400',
        'GET /v1/items/{id} 401',
        'GET /v1/items/{id} 403',
        'GET /v1/items/{id} 404',
        'GET /v1/items/{id} 500',
        'POST /v1/items 201',
        'POST /v1/items 400',
        'POST /v1/items 413',
        'POST /v1/items 415',
        'DELETE /v1/items/{id} 204',
        'GET /v1/slow 503',
      ]),
    );
  });

  it('the checker refuses responses the document does not describe', () => {
    const seen = {
      method: 'GET',
      url: '/v1/items/a',
      status: 200,
      contentType: 'application/json',
      text: '{"id":"a","n":1,"tags":[]}',
    };
    expect(() => checker.check(seen)).not.toThrow();
    expect(() => checker.check({ ...seen, text: '{"id":1,"n":1,"tags":[]}' })).toThrow(
      /does not match/,
    );
    expect(() => checker.check({ ...seen, contentType: 'text/plain' })).toThrow(/content type/);
    expect(() => checker.check({ ...seen, status: 418 })).toThrow(/not documented/);
    expect(() =>
      checker.check({
        ...seen,
        status: 404,
        contentType: 'application/problem+json',
        text: '{"error":"x"}',
      }),
    ).toThrow(/does not match/);
    expect(() => checker.check({ ...seen, url: '/v9/other' })).toThrow(
      /not a documented operation/,
    );
  });

  it('rejects when the port is taken', async () => {
    await expect(
      startHttpApi({
        service: 'dup',
        title: 't',
        version: '1',
        port: api.port,
        log,
        registry,
        routes: [],
      }),
    ).rejects.toThrow(/EADDRINUSE/);
  });

  it('lets a request in progress finish on close, then refuses new connections', async () => {
    const second = await startHttpApi({
      service: 'close',
      title: 't',
      version: '1',
      port: 0,
      log,
      registry,
      routes: [],
    });
    // reuse the main API's held route: start a request, close while it is in flight
    const held = fetch(`${base}/v1/held`);
    await new Promise((r) => setTimeout(r, 100));
    const closing = api.close(5_000);
    release!();
    const res = await held;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ done: true });
    await closing;
    await expect(fetch(`${base}/openapi.json`)).rejects.toThrow();
    await second.close();
  });
});

describe('hashed bearer tokens', () => {
  const src = { variable: 'X_API_TOKENS', field: 'regions' };

  it('parses the inline format of the gateway family', () => {
    const a = sha256Hex('token-a');
    const b = sha256Hex('token-b');
    const t = parseInlineTokens(` ${a}=eu|us ; ${b.toUpperCase()}=* `, src);
    expect(t).toEqual([
      { name: 'token-1', sha256: a, claims: new Set(['eu', 'us']) },
      { name: 'token-2', sha256: b, claims: '*' },
    ]);
    expect(parseInlineTokens('', src)).toEqual([]);
  });

  it('refuses malformed entries with a ConfigError naming the variable', () => {
    for (const raw of ['token-a=eu', `${sha256Hex('a')}=`, `${sha256Hex('a')}`, 'zz=*']) {
      expect(() => parseInlineTokens(raw, src)).toThrow(ConfigError);
      expect(() => parseInlineTokens(raw, src)).toThrow(/X_API_TOKENS/);
    }
  });

  it('reads a token file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'http-tokens-'));
    try {
      const file = join(dir, 't.json');
      writeFileSync(
        file,
        JSON.stringify([
          { name: 'dash', sha256: sha256Hex('x'), regions: ['eu'] },
          { sha256: sha256Hex('y'), regions: '*' },
        ]),
      );
      expect(readTokenFile(file, src)).toEqual([
        { name: 'dash', sha256: sha256Hex('x'), claims: new Set(['eu']) },
        { name: 'file-1', sha256: sha256Hex('y'), claims: '*' },
      ]);
      writeFileSync(file, JSON.stringify([{ sha256: sha256Hex('x'), regions: [] }]));
      expect(() => readTokenFile(file, src)).toThrow(/regions must be/);
      expect(() => readTokenFile(join(dir, 'none.json'), src)).toThrow(ConfigError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('authenticates only the configured tokens', () => {
    const a = generateToken();
    const auth = new BearerAuthenticator([{ name: 'a', sha256: a.sha256, claims: '*' as const }]);
    expect(auth.authenticate(`Bearer ${a.token}`, 'r')).toEqual({ name: 'a', claims: '*' });
    expect(auth.authenticate(`bearer ${a.token}`, 'r').name).toBe('a');
    expect(() => auth.authenticate(`Bearer ${a.sha256}`, 'r')).toThrow(HttpProblem);
    expect(() => auth.authenticate(undefined, 'r')).toThrow(/missing credentials/);
  });
});

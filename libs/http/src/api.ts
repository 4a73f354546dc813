// One HTTP kit for Sluice's APIs: Fastify 5 routes declared with zod schemas that validate params,
// query, body and responses; the OpenAPI 3.1 document generated from the same schemas at
// /openapi.json; problem+json for every error; bearer tokens; bounded bodies, time and connections.
import fastifyCors from '@fastify/cors';
import fastifySwagger from '@fastify/swagger';
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import {
  createJsonSchemaTransform,
  createJsonSchemaTransformObject,
  hasZodFastifySchemaValidationErrors,
  ResponseSerializationError,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { SluiceError } from '@sluice/errors';
import type { ServerTls } from '@sluice/config';
import { createServer, STATUS_CODES, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { httpMetrics, type HttpMetrics } from './metrics';
import { HttpProblem, PROBLEM_CONTENT_TYPE, problemSchema, type ProblemIssue } from './problem';
import { BearerAuthenticator, type HashedToken, type Principal, type TokenScope } from './tokens';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
/** The one success status a route answers with. */
export type SuccessStatus = 200 | 201 | 202 | 204;

type Out<T> = T extends z.ZodType ? z.output<T> : undefined;

/** What a handler gets: the validated inputs, the caller, and a signal aborted at the deadline. */
export interface RouteContext<P, Q, B, C> {
  params: P;
  query: Q;
  body: B;
  /** The authenticated caller; `undefined` on public routes and APIs without auth. */
  principal: Principal<C> | undefined;
  /** Aborted when the request timeout passes or the client goes away. */
  signal: AbortSignal;
  headers: IncomingHttpHeaders;
}

/** One route: its OpenAPI identity, its zod schemas, and its handler. */
export interface HttpRoute<
  P extends z.ZodObject | undefined = z.ZodObject | undefined,
  Q extends z.ZodObject | undefined = z.ZodObject | undefined,
  B extends z.ZodType | undefined = z.ZodType | undefined,
  R extends z.ZodType = z.ZodType,
  C = TokenScope,
> {
  /** Absent: a JSON route (see {@link HttpEventStreamRoute} for the other kind). */
  kind?: undefined;
  method: HttpMethod;
  /** OpenAPI path template, e.g. `/v1/devices/{device}/latest`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags?: string[];
  /** No authentication even when the API has tokens. Default `false`. */
  public?: boolean;
  params?: P;
  query?: Q;
  body?: B;
  /** An absent body is validated as `{}`. Default `false` (a body route requires one). */
  bodyOptional?: boolean;
  /** Default 200. */
  status?: SuccessStatus;
  /** Schema of the success body (`z.undefined()` for none); responses are validated against it. */
  response: R;
  /** Default `OK`. */
  responseDescription?: string;
  /**
   * Error statuses this route answers besides those documented for every route (400 when it has
   * inputs, 401 when authenticated, 413/415 with a body, 500, 503), e.g. `[403, 404, 409]`.
   */
  problems?: readonly number[];
  handler(ctx: RouteContext<Out<P>, Out<Q>, Out<B>, C>): Promise<z.output<R>>;
}

/**
 * A server-sent events response (`text/event-stream`) opened by an event-stream route. Frames are
 * written as given; the route bounds what it buffers per client by {@link EventStream.bufferedBytes}.
 */
export interface EventStream {
  /** Writes SSE text: `id:`, `event:`, `data:` lines ending with a blank line, or `: comment` lines. */
  write(frame: string | Uint8Array): void;
  /** Bytes written and not yet taken by the client's socket. */
  readonly bufferedBytes: number;
  /** True once the connection closed or {@link end} was called. */
  readonly closed: boolean;
  /**
   * Ends the response after what was written; the socket is destroyed if the client has not taken
   * it within `graceMs` (default 5 s), so a stalled client holds no memory for long.
   */
  end(graceMs?: number): void;
  /** Runs once when the connection closes, from either side. */
  onClose(fn: () => void): void;
}

/** What an event-stream handler gets: the validated inputs, the caller, and `open()`. */
export interface EventStreamContext<P, Q, C> extends RouteContext<P, Q, undefined, C> {
  /**
   * Answers 200 `text/event-stream` and returns the stream. Before it is called, a thrown error
   * answers problem+json as on any route; the request deadline does not apply to the stream.
   */
  open(): EventStream;
}

/** A GET route answering a stream of server-sent events instead of one JSON body. */
export interface HttpEventStreamRoute<
  P extends z.ZodObject | undefined = z.ZodObject | undefined,
  Q extends z.ZodObject | undefined = z.ZodObject | undefined,
  C = TokenScope,
> {
  kind: 'event-stream';
  method: 'GET';
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags?: string[];
  /** No authentication even when the API has tokens. Default `false`. */
  public?: boolean;
  params?: P;
  query?: Q;
  /** Schema of each event's `data` (JSON), documented under `text/event-stream`. */
  event: z.ZodType;
  /** Default `OK`. */
  responseDescription?: string;
  /** Error statuses besides those of every route (as {@link HttpRoute.problems}). */
  problems?: readonly number[];
  /** Validates and authorizes, then calls `ctx.open()`; resolves once the stream is set up. */
  handler(ctx: EventStreamContext<Out<P>, Out<Q>, C>): Promise<void>;
}

/** Declares an event-stream route with its handler's input types inferred from its schemas. */
export function defineEventStream<
  P extends z.ZodObject | undefined = undefined,
  Q extends z.ZodObject | undefined = undefined,
  C = TokenScope,
>(route: Omit<HttpEventStreamRoute<P, Q, C>, 'kind' | 'method'>): HttpEventStreamRoute<P, Q, C> {
  return { ...route, kind: 'event-stream', method: 'GET' };
}

/** A route with its schema types erased, as APIs hold them. */
/* eslint-disable @typescript-eslint/no-explicit-any */
export type AnyHttpRoute<C = TokenScope> = HttpRoute<any, any, any, any, C>;
/** An event-stream route with its schema types erased. */
export type AnyEventStreamRoute<C = TokenScope> = HttpEventStreamRoute<any, any, C>;
/* eslint-enable @typescript-eslint/no-explicit-any */
/** Any route of an API: JSON (`kind` absent) or event stream. */
export type AnyRoute<C = TokenScope> = AnyHttpRoute<C> | AnyEventStreamRoute<C>;

/** Declares a route with its handler's input and output types inferred from its schemas. */
export function defineRoute<
  P extends z.ZodObject | undefined = undefined,
  Q extends z.ZodObject | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
  R extends z.ZodType = z.ZodType,
  C = TokenScope,
>(route: HttpRoute<P, Q, B, R, C>): HttpRoute<P, Q, B, R, C> {
  return route;
}

export interface HttpCorsOptions {
  /** Allowed origins, exact (`https://console.example.com`). */
  origins: readonly string[];
  /** Preflight cache, seconds. Default 600. */
  maxAgeS?: number;
}

/** What a service contributes to an API: its description, routes, tokens and error mapping. */
export interface HttpApiDefinition<C = TokenScope> {
  /** OpenAPI `info.title`. */
  title: string;
  /** OpenAPI `info.version`. */
  version: string;
  /** OpenAPI `info.description`. */
  description?: string;
  routes: readonly AnyRoute<C>[];
  /** Bearer tokens (hashed). Absent: every route is public. */
  auth?: { tokens: readonly HashedToken<C>[] };
  /** Named zod schemas emitted as `components.schemas` and referenced by `$ref`. */
  schemas?: Record<string, z.ZodType>;
  /** Maps a domain error a handler threw to a problem; `undefined` leaves it a 500. */
  mapError?: (err: unknown) => HttpProblem | undefined;
}

/** Where and how the runtime serves an API. */
export interface HttpServeOptions {
  /** Names the API in metrics (`api` label), logs and the `WWW-Authenticate` realm. */
  service: string;
  /** Bind address. Default `127.0.0.1`. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** Largest request body. Default 1 MiB. */
  bodyLimitBytes?: number;
  /**
   * Deadline of one request: receiving it (408 past it) and handling it (503 `timeout` past it,
   * the handler's signal aborted). Default 30 s.
   */
  requestTimeoutMs?: number;
  /** Deadline for the request headers. Default 10 s. */
  headersTimeoutMs?: number;
  /** Idle keep-alive connections are closed after this. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** Most open connections; further ones are closed at once. Default 1024. */
  maxConnections?: number;
  /** Cross-origin access from these origins. Default none. */
  cors?: HttpCorsOptions;
  /**
   * Serve HTTPS with this certificate and key (`readServerTls` of @sluice/config); with `ca`, only
   * to clients presenting a certificate it signed (mTLS, before any bearer token is looked at).
   * Default none: plain HTTP.
   */
  tls?: ServerTls | undefined;
  /** The service's logger; the API logs failures only (no per-request lines). */
  log: Logger;
  /** Request metrics are registered here. */
  registry: Registry;
}

export type HttpApiOptions<C = TokenScope> = HttpApiDefinition<C> & HttpServeOptions;

/** A listening API. */
export interface HttpApi {
  readonly port: number;
  /** The OpenAPI 3.1 document served at `/openapi.json`. */
  readonly openapi: Record<string, unknown>;
  /** Stops accepting, lets requests in progress finish for up to `deadlineMs` (default 5 s), then cuts the rest. */
  close(deadlineMs?: number): Promise<void>;
}

const METHODS_WITH_BODY = new Set<HttpMethod>(['POST', 'PUT', 'PATCH']);
const PARAM_MAX = 256;

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'A parameter or the body is invalid; `parameter` and `errors` name it',
  401: 'Missing or unknown bearer token',
  403: 'The token does not grant this',
  404: 'Not found',
  408: 'The request was not received in time',
  409: 'Conflict with the current state',
  413: 'The body is larger than the limit',
  415: 'The body is not application/json',
  422: 'Refused',
  500: 'Internal error (no details are given)',
  503: 'A dependency is unavailable or the request timed out; retry later',
};

/** `/a/{b}/c` → `/a/:b/c`. */
function fastifyPath(path: string): string {
  return path.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1');
}

function pathPattern(path: string): RegExp {
  const escaped = path
    .split(/\{[A-Za-z0-9_]+\}/)
    .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]+');
  return new RegExp(`^${escaped}$`);
}

function issuesOf(err: {
  validation: Array<{ instancePath: string; message?: string }>;
}): ProblemIssue[] {
  return err.validation.slice(0, 20).map((v) => ({
    path: v.instancePath.replace(/^\//, '').replace(/\//g, '.'),
    message: v.message ?? 'is invalid',
  }));
}

/** Creates and starts an API: routes are registered, the document generated, then it listens. */
export async function startHttpApi<C = TokenScope>(opts: HttpApiOptions<C>): Promise<HttpApi> {
  const bodyLimit = opts.bodyLimitBytes ?? 1024 * 1024;
  const timeoutMs = opts.requestTimeoutMs ?? 30_000;
  const realm = opts.service;
  const authn = opts.auth ? new BearerAuthenticator<C>(opts.auth.tokens) : undefined;
  const metrics: HttpMetrics = httpMetrics(opts.registry);
  const principals = new WeakMap<FastifyRequest, Principal<C>>();

  const seen = new Set<string>();
  for (const r of opts.routes) {
    const key = `${r.method} ${r.path}`;
    if (seen.has(key)) throw new Error(`route ${key} is declared twice`);
    seen.add(key);
  }
  const patterns = opts.routes.map((r) => ({ method: r.method, re: pathPattern(r.path) }));

  let server!: Server;
  const app = Fastify({
    loggerInstance: opts.log.child({ api: opts.service }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    routerOptions: { maxParamLength: PARAM_MAX, ignoreTrailingSlash: false },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    serverFactory: (handler) => {
      const options = {
        requestTimeout: timeoutMs,
        headersTimeout: Math.min(opts.headersTimeoutMs ?? 10_000, timeoutMs),
        keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000,
        // Deadlines are checked at this interval; the default (30 s) would let them overrun.
        connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(timeoutMs / 4))),
        maxHeaderSize: 16 * 1024,
      };
      // An https.Server is an http.Server that speaks TLS first: the rest is unchanged.
      server = opts.tls
        ? (createHttpsServer({ ...options, ...opts.tls }, handler) as unknown as Server)
        : createServer(options, handler);
      server.maxConnections = opts.maxConnections ?? 1024;
      return server;
    },
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const status =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 408
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? 431
            : 400;
      metrics.clientErrors.inc({ api: opts.service, status: String(status) });
      const detail =
        status === 408
          ? `the request was not received within ${timeoutMs} ms`
          : status === 431
            ? 'request headers are too large'
            : 'malformed HTTP request';
      const body = JSON.stringify(new HttpProblem(status, detail).toProblem());
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // An empty JSON body is an absent body (optional bodies), not a parse error.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, raw, done) => {
    const text = raw as string;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(
        new HttpProblem(400, `body is not JSON: ${(err as Error).message}`, {
          code: 'invalid_body',
        }),
        undefined,
      );
    }
  });

  const toProblem = (err: unknown, req: FastifyRequest): HttpProblem => {
    if (err instanceof HttpProblem) return err;
    const mapped = opts.mapError?.(err);
    if (mapped) return mapped;
    if (err instanceof SluiceError && err.httpStatus !== undefined) {
      if (err.httpStatus >= 400 && err.httpStatus < 500)
        return new HttpProblem(err.httpStatus, err.message, { code: err.code });
      // A retriable dependency outage: its message may name internals, so only the code is passed on.
      if (err.httpStatus === 503) {
        req.log.warn(
          { err, route: req.routeOptions.url },
          'request failed: dependency unavailable',
        );
        return new HttpProblem(503, 'a dependency is unavailable; retry later', {
          code: err.code,
          headers: { 'retry-after': '1' },
        });
      }
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = (err as { validationContext?: string }).validationContext;
      const errors = issuesOf(err);
      const first = errors[0]!;
      if (where === 'body')
        return new HttpProblem(
          400,
          `invalid request body: ${first.path ? `${first.path}: ` : ''}${first.message}`,
          {
            code: 'invalid_body',
            errors,
          },
        );
      const parameter = first.path.split('.')[0] || (where ?? 'request');
      return new HttpProblem(400, `${parameter}: ${first.message}`, { parameter, errors });
    }
    if (err instanceof ResponseSerializationError) {
      req.log.error(
        { err, issues: err.cause.issues.slice(0, 10) },
        'response does not match its schema',
      );
      return new HttpProblem(500, 'internal error');
    }
    const fe = err as Partial<FastifyError>;
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return new HttpProblem(413, `body larger than ${bodyLimit} bytes`);
    if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return new HttpProblem(415, 'send the body as application/json');
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500)
      return new HttpProblem(fe.statusCode, fe.message ?? 'bad request');
    req.log.error({ err, route: req.routeOptions.url }, 'request failed');
    return new HttpProblem(500, 'internal error');
  };

  const sendProblem = (reply: FastifyReply, p: HttpProblem) => {
    for (const [k, v] of Object.entries(p.options.headers ?? {})) reply.header(k, v);
    return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(p.toProblem()));
  };

  app.setErrorHandler((err, req, reply) => sendProblem(reply, toProblem(err, req)));
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    const allowed = patterns.filter((p) => p.re.test(path)).map((p) => p.method);
    if (path === '/openapi.json') allowed.push('GET');
    if (allowed.length > 0)
      return sendProblem(
        reply,
        new HttpProblem(405, `${req.method} is not allowed on ${path}; use ${allowed.join(', ')}`, {
          headers: { allow: allowed.join(', ') },
        }),
      );
    return sendProblem(reply, new HttpProblem(404, `no route ${req.method} ${path}`));
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const method = req.method.length <= 7 ? req.method : 'OTHER';
    metrics.requests.inc({ api: opts.service, method, route, status: String(reply.statusCode) });
    metrics.duration.observe({ api: opts.service, method, route }, reply.elapsedTime / 1000);
  });

  if (opts.cors)
    await app.register(fastifyCors, {
      origin: [...opts.cors.origins],
      maxAge: opts.cors.maxAgeS ?? 600,
      methods: [...new Set(opts.routes.map((r) => r.method))],
      allowedHeaders: ['authorization', 'content-type'],
    });

  const zreg = z.registry<{ id?: string }>();
  zreg.add(problemSchema, { id: 'Problem' });
  for (const [id, schema] of Object.entries(opts.schemas ?? {})) zreg.add(schema, { id });
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: opts.title,
        version: opts.version,
        ...(opts.description ? { description: opts.description } : {}),
      },
      ...(authn
        ? {
            components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
            security: [{ bearer: [] }],
          }
        : {}),
    },
    transform: createJsonSchemaTransform({ schemaRegistry: zreg, skipList: [] }),
    transformObject: createJsonSchemaTransformObject({ schemaRegistry: zreg }),
  });

  const problemResponse = (status: number) => ({
    description: PROBLEM_DESCRIPTIONS[status] ?? STATUS_CODES[status] ?? 'Error',
    content: { [PROBLEM_CONTENT_TYPE]: { schema: problemSchema } },
  });

  const typed = app.withTypeProvider<ZodTypeProvider>();
  for (const r of opts.routes) {
    if (r.kind === 'event-stream') {
      registerEventStream(r);
      continue;
    }
    const status = r.status ?? 200;
    const authenticated = !!authn && !r.public;
    const hasBody = r.body !== undefined;
    if (hasBody && !METHODS_WITH_BODY.has(r.method))
      throw new Error(`${r.method} ${r.path}: a ${r.method} route has no body`);
    const problems = new Set<number>([500, 503, ...(r.problems ?? [])]);
    if (r.params || r.query || hasBody) problems.add(400);
    if (authenticated) problems.add(401);
    if (hasBody) [408, 413, 415].forEach((s) => problems.add(s));
    const description = r.responseDescription ?? STATUS_CODES[status] ?? 'OK';
    const response: Record<number, unknown> = {
      [status]:
        status === 204
          ? r.response
          : { description, content: { 'application/json': { schema: r.response } } },
    };
    for (const s of [...problems].sort()) response[s] = problemResponse(s);

    typed.route({
      method: r.method,
      url: fastifyPath(r.path),
      schema: {
        operationId: r.operationId,
        summary: r.summary,
        ...(r.description ? { description: r.description } : {}),
        ...(r.tags ? { tags: r.tags } : {}),
        ...(authn && r.public ? { security: [] } : {}),
        ...(r.params ? { params: r.params } : {}),
        ...(r.query ? { querystring: r.query } : {}),
        ...(hasBody ? { body: r.bodyOptional ? r.body!.optional() : r.body } : {}),
        response,
      },
      ...(authenticated
        ? {
            onRequest: async (req: FastifyRequest) => {
              principals.set(req, authn.authenticate(req.headers.authorization, realm));
            },
          }
        : {}),
      ...(hasBody && r.bodyOptional
        ? {
            preValidation: async (req: FastifyRequest) => {
              if (req.body === undefined || req.body === null) req.body = {};
            },
          }
        : {}),
      handler: async (req, reply) => {
        const ac = new AbortController();
        const onClose = () => {
          if (!reply.raw.writableFinished) ac.abort(new Error('client closed the connection'));
        };
        reply.raw.once('close', onClose);
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const p = new HttpProblem(
              503,
              `the request took longer than ${timeoutMs} ms; retry later`,
              {
                code: 'timeout',
                headers: { 'retry-after': '1' },
              },
            );
            ac.abort(p);
            reject(p);
          }, timeoutMs);
        });
        try {
          const work = r.handler({
            params: req.params,
            query: req.query,
            body: req.body,
            principal: principals.get(req),
            signal: ac.signal,
            headers: req.headers,
          });
          // A handler still running past the deadline must not surface as an unhandled rejection.
          work.catch(() => undefined);
          const result = await Promise.race([work, deadline]);
          reply.code(status);
          if (status === 204 || result === undefined) return reply.send();
          return reply.type('application/json; charset=utf-8').send(result);
        } finally {
          clearTimeout(timer);
          reply.raw.off('close', onClose);
        }
      },
    });
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  function registerEventStream(r: HttpEventStreamRoute<any, any, C>) {
    const authenticated = !!authn && !r.public;
    const problems = new Set<number>([500, 503, ...(r.problems ?? [])]);
    if (r.params || r.query) problems.add(400);
    if (authenticated) problems.add(401);
    const response: Record<number, unknown> = {
      200: {
        description: r.responseDescription ?? 'OK',
        content: { 'text/event-stream': { schema: r.event } },
      },
    };
    for (const s of [...problems].sort()) response[s] = problemResponse(s);
    typed.route({
      method: 'GET',
      url: fastifyPath(r.path),
      schema: {
        operationId: r.operationId,
        summary: r.summary,
        ...(r.description ? { description: r.description } : {}),
        ...(r.tags ? { tags: r.tags } : {}),
        ...(authn && r.public ? { security: [] } : {}),
        ...(r.params ? { params: r.params } : {}),
        ...(r.query ? { querystring: r.query } : {}),
        response,
      },
      ...(authenticated
        ? {
            onRequest: async (req: FastifyRequest) => {
              principals.set(req, authn.authenticate(req.headers.authorization, realm));
            },
          }
        : {}),
      handler: async (req, reply) => {
        const ac = new AbortController();
        const res = reply.raw;
        let stream: EventStream | undefined;
        const open = (): EventStream => {
          if (stream) return stream;
          reply.hijack();
          // Headers set on the reply (CORS) go out with the stream's own.
          const headers: Record<string, string | string[] | number> = {};
          for (const [k, v] of Object.entries(reply.getHeaders()))
            if (v !== undefined) headers[k] = v;
          res.writeHead(200, {
            ...headers,
            'content-type': 'text/event-stream; charset=utf-8',
            'cache-control': 'no-store',
            'x-accel-buffering': 'no',
          });
          res.flushHeaders();
          req.socket.setNoDelay(true);
          const started = performance.now();
          const route = req.routeOptions.url ?? r.path;
          const closers: Array<() => void> = [];
          let closed = false;
          let cut: NodeJS.Timeout | undefined;
          res.once('close', () => {
            closed = true;
            clearTimeout(cut);
            ac.abort(new Error('the stream closed'));
            metrics.requests.inc({ api: opts.service, method: 'GET', route, status: '200' });
            metrics.duration.observe(
              { api: opts.service, method: 'GET', route },
              (performance.now() - started) / 1000,
            );
            for (const fn of closers.splice(0)) fn();
          });
          stream = {
            write: (frame) => {
              if (!closed && !res.writableEnded) res.write(frame);
            },
            get bufferedBytes() {
              return res.writableLength;
            },
            get closed() {
              return closed || res.writableEnded;
            },
            end: (graceMs = 5_000) => {
              if (res.writableEnded) return;
              res.end();
              cut = setTimeout(() => res.destroy(), graceMs);
              cut.unref();
            },
            onClose: (fn) => {
              if (closed) fn();
              else closers.push(fn);
            },
          };
          return stream;
        };
        await r.handler({
          params: req.params,
          query: req.query,
          body: undefined,
          principal: principals.get(req),
          signal: ac.signal,
          headers: req.headers,
          open,
        });
        if (!stream) throw new Error(`${r.path}: the handler returned without opening its stream`);
      },
    });
  }

  let document = '';
  app.get('/openapi.json', { schema: { hide: true } }, async (_req, reply) =>
    reply
      .type('application/json; charset=utf-8')
      .header('cache-control', 'public, max-age=60')
      .send(document),
  );

  await app.ready();
  const openapi = app.swagger() as unknown as {
    paths?: Record<
      string,
      Record<
        string,
        {
          responses?: Record<string, { description?: string }>;
          requestBody?: { required?: boolean };
        }
      >
    >;
  };
  // Generated documents say "Default Response" for bodiless responses and require every body.
  for (const r of opts.routes) {
    if (r.kind === 'event-stream') {
      const res = openapi.paths?.[r.path]?.get?.responses?.['200'];
      if (res) res.description = r.responseDescription ?? 'OK';
      continue;
    }
    const status = String(r.status ?? 200);
    const op = openapi.paths?.[r.path]?.[r.method.toLowerCase()];
    const res = op?.responses?.[status];
    if (res) res.description = r.responseDescription ?? STATUS_CODES[status] ?? 'OK';
    if (r.bodyOptional && op?.requestBody) op.requestBody.required = false;
  }
  document = JSON.stringify(openapi);
  try {
    await app.listen({
      port: opts.port,
      host: opts.host ?? '127.0.0.1',
      listenTextResolver: (address) =>
        `HTTP API ${opts.service} bound to ${opts.tls ? address.replace(/^http:/, 'https:') : address}`,
    });
  } catch (err) {
    await app.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    port,
    openapi: openapi as Record<string, unknown>,
    close(deadlineMs = 5_000) {
      closing ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const cut = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            server.closeAllConnections();
            resolve();
          }, deadlineMs);
        });
        try {
          await Promise.race([app.close(), cut]);
        } finally {
          clearTimeout(timer);
        }
      })();
      return closing;
    },
  };
}

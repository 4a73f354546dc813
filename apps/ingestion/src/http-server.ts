import { createHash } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import {
  ingestStatusToJSON,
  wirePath,
  type Event,
  type EventRejection,
  type IngestAck,
  type SamplingAdvice,
  type WireParser,
} from '@sluice/contracts';
import {
  ATTR,
  extractRequestTraceContext,
  markSelfTraced,
  tracer,
  type Logger,
} from '@sluice/observability';
import type { Authenticator, Principal } from './auth';
import {
  AuthenticationError,
  BatchIdConflictError,
  BatchRejectedError,
  RetryableError,
} from './errors';
import type { IngestMetrics } from './metrics';
import type { IngestPipeline } from './pipeline';
import type { TlsFiles } from './tls';

/** Options of {@link HttpGateway}. */
export interface HttpGatewayOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  pipeline: IngestPipeline;
  parser: WireParser;
  auth: Authenticator;
  metrics: IngestMetrics;
  log: Logger;
  /** Largest JSON body. */
  maxBodyBytes: number;
  /**
   * Bytes of an oversized body read and discarded after `maxBodyBytes` so the client, still sending,
   * can read the 413 (closing with unread data would reset the connection); past it the connection
   * is closed anyway. Default 64 MiB.
   */
  maxDiscardBytes?: number;
  /** Back-off advised while draining. */
  retryAfterMs: number;
  tls?: TlsFiles | undefined;
  /** The sampling advice to put on every answer to a batch (adaptive sampling). Default none. */
  advice?: (() => SamplingAdvice | undefined) | undefined;
}

/** JSON rendering of a sampling advice (snake_case like the rest of the answer). */
function adviceJson(advice: SamplingAdvice | undefined) {
  return advice
    ? { tiers: advice.tiers.map((t) => ({ tier: t.tier, keep: t.keep, sensors: t.sensors })) }
    : undefined;
}

const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,120}$/;

const DEFAULT_MAX_DISCARD_BYTES = 64 * 1024 * 1024;

/** The body is over the limit; `drained`: the rest was read (discarded) to its end. */
class BodyTooLarge extends Error {
  override readonly name = 'BodyTooLarge';
  constructor(readonly drained: boolean) {
    super('request body too large');
  }
}

/** Declared `Content-Length`, or undefined (chunked or absent). */
function declaredLength(req: IncomingMessage): number | undefined {
  const raw = req.headers['content-length'];
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

/**
 * Reads the body up to `max` bytes. A larger one is not kept: its rest is read and discarded up to
 * `discardMax` bytes (then {@link BodyTooLarge} with `drained`), or reading stops past that.
 */
function readBody(req: IncomingMessage, max: number, discardMax: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = (declaredLength(req) ?? 0) > max;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (!over && size > max) {
        over = true;
        chunks.length = 0;
      }
      if (!over) chunks.push(c);
      else if (size - max > discardMax) {
        req.pause();
        reject(new BodyTooLarge(false));
      }
    });
    req.on('end', () =>
      over ? reject(new BodyTooLarge(true)) : resolve(Buffer.concat(chunks, size)),
    );
    req.on('error', reject);
  });
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(JSON.stringify(body));
}

/** `413` as `application/problem+json` (RFC 9457), then the connection is closed. */
function sendTooLarge(res: ServerResponse, max: number): void {
  const problem = {
    type: 'https://sluice.dev/problems/body-too-large',
    title: 'Request body too large',
    status: 413,
    detail: `the body is larger than ${max} bytes; nothing was stored. Send smaller batches (split the array).`,
    max_body_bytes: max,
  };
  send(res, 413, problem, { 'content-type': 'application/problem+json', connection: 'close' });
}

/** JSON rendering of an ack: snake_case like the wire schema. */
function ackJson(ack: IngestAck) {
  return {
    batch_id: ack.batchId,
    status: ingestStatusToJSON(ack.status).replace('INGEST_STATUS_', ''),
    accepted: ack.accepted,
    duplicate: ack.duplicate,
    rejections: ack.rejections.map((r) => ({
      index: r.index,
      event_id: r.eventId,
      field: r.field,
      reason: r.reason,
    })),
    sampling: adviceJson(ack.sampling),
  };
}

/**
 * `POST /v1/events`: one JSON wire event (schema version 1 or 2) or an array of them. The batch id
 * is the `Idempotency-Key` header, or `h-` + sha256(caller, body) so a resent body is the same batch.
 */
export class HttpGateway {
  private readonly server: Server;
  private readonly tracer: Tracer = tracer('sluice-ingestion');
  private draining = false;
  private boundPort = 0;

  constructor(private readonly opts: HttpGatewayOptions) {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((err) => {
        opts.log.error({ err }, 'http handler failed');
        send(res, 500, { error: 'internal error; nothing was stored, resend' });
      });
    };
    const { tls } = opts;
    // handle() opens the request's SERVER span itself: the HTTP instrumentation opens none.
    this.server = markSelfTraced(
      tls
        ? createHttpsServer(
            {
              cert: tls.cert,
              key: tls.key,
              ca: tls.ca,
              requestCert: Boolean(tls.ca),
              rejectUnauthorized: Boolean(tls.ca) && tls.requireClientCert,
            },
            handler,
          )
        : createHttpServer(handler),
    );
    // `Expect: 100-continue`: a body declared too large is refused before the client sends it.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      if ((declaredLength(req) ?? 0) > opts.maxBodyBytes)
        return sendTooLarge(res, opts.maxBodyBytes);
      res.writeContinue();
      handler(req, res);
    });
    this.server.requestTimeout = 30_000;
    this.server.headersTimeout = 10_000;
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    return this.boundPort;
  }

  /** Refuse new requests (503), let in-flight ones finish, then close. */
  async drain(deadlineMs = 20_000): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), deadlineMs).unref());
    if ((await Promise.race([closed, timer])) === 'timeout') this.server.closeAllConnections();
  }

  private principal(req: IncomingMessage): Principal {
    const socket = req.socket as TLSSocket;
    const cert = socket.encrypted && socket.authorized ? socket.getPeerCertificate() : undefined;
    return this.opts.auth.authenticate(req.headers.authorization, cert);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/v1/events') return send(res, 404, { error: 'not found; POST /v1/events' });
    if (req.method !== 'POST') return send(res, 405, { error: 'use POST' }, { allow: 'POST' });
    // One SERVER span per request, child of the device's `traceparent` (a new trace when it is
    // absent or malformed); active while the batch is published, so the raw message carries it.
    const parent = extractRequestTraceContext(req.headers);
    const span = this.tracer.startSpan(
      'POST /v1/events',
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR.httpRequestMethod]: 'POST',
          [ATTR.httpRoute]: '/v1/events',
          [ATTR.urlPath]: '/v1/events',
          [ATTR.urlScheme]: this.opts.tls ? 'https' : 'http',
          [ATTR.serverPort]: this.boundPort,
          [ATTR.networkProtocolVersion]: req.httpVersion,
        },
      },
      parent,
    );
    // A throw is answered 500 by the caller.
    let status = 500;
    try {
      await context.with(trace.setSpan(parent, span), () =>
        this.ingestRequest(req, res, started, span),
      );
      status = res.statusCode;
    } catch (err) {
      span.recordException(err as Error);
      throw err;
    } finally {
      span.setAttribute(ATTR.httpResponseStatusCode, status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
  }

  private async ingestRequest(
    req: IncomingMessage,
    res: ServerResponse,
    started: number,
    span: Span,
  ): Promise<void> {
    const retryAfterS = String(Math.max(1, Math.ceil(this.opts.retryAfterMs / 1000)));
    if (this.draining) {
      res.setHeader('connection', 'close');
      return send(
        res,
        503,
        { error: 'the gateway is shutting down; resend', retry_after_ms: this.opts.retryAfterMs },
        { 'retry-after': retryAfterS },
      );
    }
    let principal: Principal;
    try {
      principal = this.principal(req);
    } catch (err) {
      this.opts.metrics.authFailures.inc({ transport: 'http' });
      return send(
        res,
        401,
        { error: (err as AuthenticationError).message },
        { 'www-authenticate': 'Bearer' },
      );
    }
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\b/i.test(type))
      return send(res, 415, { error: `content-type must be application/json, got "${type}"` });
    const key = req.headers['idempotency-key'];
    if (key !== undefined && (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key))) {
      return send(res, 400, { error: 'Idempotency-Key must be 1..120 of A-Z a-z 0-9 . _ : -' });
    }
    let body: Buffer;
    try {
      body = await readBody(
        req,
        this.opts.maxBodyBytes,
        this.opts.maxDiscardBytes ?? DEFAULT_MAX_DISCARD_BYTES,
      );
    } catch (err) {
      if (!(err instanceof BodyTooLarge)) throw err;
      this.opts.metrics.batches.inc({ transport: 'http', status: 'BODY_TOO_LARGE' });
      if (!err.drained)
        this.opts.log.warn(
          {
            principal: principal.name,
            maxDiscardBytes: this.opts.maxDiscardBytes ?? DEFAULT_MAX_DISCARD_BYTES,
          },
          'oversized body still arriving past the discard bound; closing the connection after the 413',
        );
      return sendTooLarge(res, this.opts.maxBodyBytes);
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return send(res, 400, { error: `body is not valid JSON: ${(err as Error).message}` });
    }
    const batchId =
      key ??
      `h-${createHash('sha256').update(principal.scope).update('\n').update(body).digest('hex').slice(0, 48)}`;
    const parsed = this.opts.parser.parseBody(json);
    const events: Event[] = [];
    const indices: number[] = [];
    const rejected: EventRejection[] = [];
    for (const r of parsed.events) {
      if (r.ok) {
        events.push(r.event);
        indices.push(r.index);
      } else {
        const first = r.errors[0];
        const reason = r.errors
          .map((e) => (e.path ? `${e.path}: ${e.message}` : e.message))
          .join('; ');
        rejected.push({
          index: r.index,
          eventId: r.eventId ?? '',
          field: first?.path ?? '',
          reason,
        });
      }
    }
    let status = 200;
    let out: unknown;
    let headers: Record<string, string> = {};
    let statusLabel: string;
    try {
      // Validator rejections name the JSON field the client sent, like the wire parser's.
      const fieldPath = (event: Event, index: number, field: string) => {
        const item: unknown = Array.isArray(json) ? json[index] : json;
        const alias =
          event.kind?.value.schemaVersion === 1 &&
          typeof item === 'object' &&
          item !== null &&
          Object.hasOwn(item, 'timestamp');
        return wirePath(
          field,
          event.kind?.value.schemaVersion === 2 ? 2 : 1,
          alias ? 'timestamp' : 'event_time',
        );
      };
      // A derived batch id is the body's own hash: only a client-chosen key needs a content record.
      const content = key === undefined ? false : body;
      const ack = await this.opts.pipeline.ingest(principal, {
        batch: { batchId, events },
        indices,
        rejected,
        totalEvents: parsed.events.length,
        fieldPath,
        content,
        transport: 'http',
      });
      out = ackJson(ack);
      if (ack.duplicate) headers = { 'idempotent-replayed': 'true' };
      statusLabel = ingestStatusToJSON(ack.status);
      if (ack.accepted === 0) status = 422;
    } catch (err) {
      if (err instanceof BatchIdConflictError) {
        status = 409;
        out = {
          type: 'https://sluice.dev/problems/idempotency-key-reused',
          title: 'Idempotency-Key already used for other content',
          status,
          detail: err.message,
          batch_id: batchId,
        };
        headers = { 'content-type': 'application/problem+json' };
        statusLabel = 'INGEST_STATUS_REJECTED';
      } else if (err instanceof BatchRejectedError) {
        status = err.httpStatus;
        out = {
          batch_id: batchId,
          status: 'REJECTED',
          accepted: 0,
          error: err.message,
          field: err.field,
        };
        statusLabel = 'INGEST_STATUS_REJECTED';
      } else if (err instanceof RetryableError) {
        status = err.kind === 'overloaded' ? 429 : 503;
        out = {
          batch_id: batchId,
          status: 'RETRY',
          accepted: 0,
          error: err.message,
          retry_after_ms: err.retryAfterMs,
          sampling: adviceJson(this.opts.advice?.()),
        };
        headers = { 'retry-after': String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))) };
        statusLabel = 'INGEST_STATUS_RETRY';
      } else throw err;
    }
    span.setAttribute(ATTR.outcome, statusLabel.replace('INGEST_STATUS_', ''));
    this.opts.metrics.batches.inc({ transport: 'http', status: statusLabel });
    this.opts.metrics.ackDuration.observe(
      { transport: 'http', status: statusLabel },
      (performance.now() - started) / 1000,
    );
    send(res, status, out, headers);
  }
}

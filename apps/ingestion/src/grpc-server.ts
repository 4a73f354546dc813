import { BinaryReader } from '@bufbuild/protobuf/wire';
import {
  Metadata,
  Server,
  ServerCredentials,
  status as GrpcStatus,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer, loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Tracer,
} from '@opentelemetry/api';
import {
  decodeBatch,
  FILE_DESCRIPTOR_SET_BASE64,
  IngestServiceService,
  IngestStatus,
  ingestStatusToJSON,
  type EventBatch,
  type IngestAck,
  type SamplingAdvice,
} from '@sluice/contracts';
import { ATTR, extractRequestTraceContext, tracer, type Logger } from '@sluice/observability';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { Authenticator, Principal } from './auth';
import { AuthenticationError, BatchRejectedError, RetryableError } from './errors';
import type { IngestMetrics } from './metrics';
import { rejectedAck, retryAck, type IngestPipeline } from './pipeline';
import type { TlsFiles } from './tls';
import { hasReplacementChar, invalidUtf8Field } from './utf8';

/** What the custom deserializer hands the handlers: the decoded batch and its exact bytes. */
interface DecodedRequest {
  batch?: EventBatch;
  /** The EventBatch bytes as received, when the request carried exactly one `batch` field. */
  raw?: Uint8Array;
  error?: string;
}

/** Options of {@link GrpcGateway}. */
export interface GrpcGatewayOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  pipeline: IngestPipeline;
  auth: Authenticator;
  metrics: IngestMetrics;
  log: Logger;
  /** Largest accepted EventBatch; gRPC messages up to twice this get a clean REJECTED ack. */
  maxBatchBytes: number;
  /** Batches one stream may have read and not yet answered and flushed before reading pauses. */
  streamMaxPending: number;
  /** Bytes of acks one stream may hold unsent; past it the stream ends with RESOURCE_EXHAUSTED. */
  streamMaxUnsentAckBytes: number;
  /** Open Ingest streams per credential; one more is refused with RESOURCE_EXHAUSTED. Default 8. */
  maxStreamsPerCredential?: number;
  /** Open Ingest streams in all. Default 4096. */
  maxStreams?: number;
  /** A stream with unsent acks and none flushed for this long is ended with RESOURCE_EXHAUSTED. Default 30 s. */
  streamStallTimeoutMs?: number;
  /** Back-off advised while draining. */
  retryAfterMs: number;
  /** The sampling advice to put on every ack (adaptive sampling). Default none. */
  advice?: (() => SamplingAdvice | undefined) | undefined;
  tls?: TlsFiles | undefined;
  /** Serve gRPC reflection (from the FileDescriptorSet generated into @sluice/contracts). Default true. */
  reflection?: boolean;
}

const SERVICE_NAME = 'sluice.gateway.v1.IngestService';
type RpcMethod = 'Ingest' | 'IngestBatch';
const BATCH_FIELD_TAG = (1 << 3) | 2;

/** Decodes an IngestRequest once, keeping the EventBatch bytes for publishing as is. Never throws. */
export function decodeRequest(buf: Buffer): DecodedRequest {
  try {
    const reader = new BinaryReader(buf);
    let raw: Uint8Array | undefined;
    let batchFields = 0;
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if (tag === BATCH_FIELD_TAG) {
        raw = reader.bytes();
        batchFields++;
      } else if (tag === 0) {
        throw new Error('zero tag');
      } else {
        reader.skip(tag & 7, tag >>> 3);
      }
    }
    if (raw === undefined) return { error: 'the request has no batch' };
    if (batchFields > 1) return { error: 'the request carries the batch field more than once' };
    const batch = decodeBatch(raw);
    // Protobuf strings must be UTF-8, and the raw bytes are what gets stored: refuse, never repair.
    if (hasReplacementChar(batch)) {
      const field = invalidUtf8Field(raw);
      if (field !== undefined)
        return { error: `${field} is not valid UTF-8 (protobuf strings must be UTF-8)` };
    }
    return { batch, raw };
  } catch (err) {
    return { error: `cannot decode the request: ${(err as Error).message}` };
  }
}

/** Flow-control counters of the gRPC streams (for tests and diagnostics). */
export interface GrpcFlowStats {
  /** Bytes of acks written and not yet flushed to HTTP/2, all streams. */
  unsentAckBytes: number;
  /** Largest `unsentAckBytes` one stream ever reached. */
  peakStreamUnsentAckBytes: number;
  /** Streams ended with RESOURCE_EXHAUSTED for not reading their acks. */
  exhaustedStreams: number;
}

/**
 * Encoded size of an ack, to within a few bytes of field tags and lengths: what an unsent ack holds
 * in memory.
 */
export function ackBytes(ack: IngestAck): number {
  let n = 16 + Buffer.byteLength(ack.batchId);
  for (const r of ack.rejections)
    n +=
      16 + Buffer.byteLength(r.eventId) + Buffer.byteLength(r.field) + Buffer.byteLength(r.reason);
  for (const t of ack.sampling?.tiers ?? []) {
    n += 24 + t.tier.length;
    for (const p of t.sensors) n += 2 + Buffer.byteLength(p);
  }
  return n;
}

interface OpenStream {
  /** Resolves when every received batch has been answered. */
  settled: () => Promise<void>;
  end: () => void;
}

/** The device's trace context from the call's metadata; the root context when absent or malformed. */
function callTraceContext(md: Metadata): Context {
  return extractRequestTraceContext({
    traceparent: md.get('traceparent'),
    tracestate: md.get('tracestate'),
  });
}

/** The status a unary call answers a RETRY ack with. */
function retryCode(ack: IngestAck): GrpcStatus {
  const reason = ack.rejections[0]?.reason ?? 'retry';
  return /rate limit|in-flight limit/.test(reason)
    ? GrpcStatus.RESOURCE_EXHAUSTED
    : GrpcStatus.UNAVAILABLE;
}

function retryMetadata(ms: number): Metadata {
  const md = new Metadata();
  md.set('retry-after-ms', String(ms));
  return md;
}

/** gRPC front of the gateway: IngestService, health and reflection, with graceful drain. */
export class GrpcGateway {
  private readonly server: Server;
  private readonly tracer: Tracer = tracer('sluice-ingestion');
  private readonly health = new HealthImplementation({
    '': 'NOT_SERVING',
    [SERVICE_NAME]: 'NOT_SERVING',
  });
  private readonly streams = new Set<OpenStream>();
  /** Open Ingest streams per credential scope. */
  private readonly streamsByScope = new Map<string, number>();
  private draining = false;
  private boundPort = 0;
  private readonly flow: GrpcFlowStats = {
    unsentAckBytes: 0,
    peakStreamUnsentAckBytes: 0,
    exhaustedStreams: 0,
  };

  constructor(private readonly opts: GrpcGatewayOptions) {
    this.server = new Server({
      'grpc.max_receive_message_length': opts.maxBatchBytes * 2 + 1024,
      'grpc.keepalive_permit_without_calls': 1,
    });
    const definition = {
      ingest: { ...IngestServiceService.ingest, requestDeserialize: decodeRequest },
      ingestBatch: { ...IngestServiceService.ingestBatch, requestDeserialize: decodeRequest },
    } as unknown as ServiceDefinition<UntypedServiceImplementation>;
    this.server.addService(definition, {
      ingest: (call: ServerDuplexStream<DecodedRequest, IngestAck>) => this.onStream(call),
      ingestBatch: (
        call: ServerUnaryCall<DecodedRequest, IngestAck>,
        cb: sendUnaryData<IngestAck>,
      ) => void this.onUnary(call, cb),
    });
    this.health.addToServer(this.server);
    if (opts.reflection ?? true) this.addReflection();
  }

  get port(): number {
    return this.boundPort;
  }

  get flowStats(): GrpcFlowStats {
    return { ...this.flow };
  }

  private addUnsent(bytes: number): void {
    this.flow.unsentAckBytes += bytes;
    this.opts.metrics.unsentAckBytes.set(this.flow.unsentAckBytes);
  }

  async start(): Promise<number> {
    const { tls } = this.opts;
    const creds = tls
      ? ServerCredentials.createSsl(
          tls.ca ?? null,
          [{ cert_chain: tls.cert, private_key: tls.key }],
          Boolean(tls.ca) && tls.requireClientCert,
        )
      : ServerCredentials.createInsecure();
    this.boundPort = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${this.opts.host}:${this.opts.port}`, creds, (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
    this.health.setStatus('', 'SERVING');
    this.health.setStatus(SERVICE_NAME, 'SERVING');
    return this.boundPort;
  }

  /**
   * Graceful stop: refuse new calls, answer batches arriving on open streams with RETRY for
   * `graceMs`, finish (ack) every batch already received, end the streams, then shut down.
   */
  async drain(graceMs: number, deadlineMs = 20_000): Promise<void> {
    this.draining = true;
    this.health.setStatus('', 'NOT_SERVING');
    this.health.setStatus(SERVICE_NAME, 'NOT_SERVING');
    this.opts.log.info({ streams: this.streams.size }, 'grpc draining');
    const shutdown = new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    await Promise.all([
      ...[...this.streams].map((s) => s.settled()),
      new Promise((r) => setTimeout(r, graceMs)),
    ]);
    for (const s of [...this.streams]) {
      await s.settled();
      s.end();
    }
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), deadlineMs).unref());
    if ((await Promise.race([shutdown, timer])) === 'timeout') {
      this.opts.log.warn('grpc drain deadline passed; forcing shutdown');
      this.server.forceShutdown();
    }
  }

  private authenticate(
    metadata: Metadata,
    cert: ReturnType<ServerUnaryCall<unknown, unknown>['getAuthContext']>,
  ): Principal {
    const value = metadata.get('authorization')[0];
    return this.opts.auth.authenticate(
      typeof value === 'string' ? value : undefined,
      cert.sslPeerCertificate,
    );
  }

  /**
   * Answer for one received batch; never rejects (RETRY when in doubt: nothing unconfirmed is acked).
   * Runs in a SERVER span of its own (one per batch, also on a stream), child of the call's trace
   * context `parent`; the span is active while the batch is published, so the raw message carries it.
   */
  private async answer(
    principal: Principal,
    req: DecodedRequest,
    method: RpcMethod,
    parent: Context,
  ): Promise<IngestAck> {
    const span = this.tracer.startSpan(
      `${SERVICE_NAME}/${method}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR.rpcSystem]: 'grpc',
          [ATTR.rpcService]: SERVICE_NAME,
          [ATTR.rpcMethod]: method,
          [ATTR.serverPort]: this.boundPort,
        },
      },
      parent,
    );
    try {
      const ack = await context.with(trace.setSpan(parent, span), () =>
        this.answerBatch(principal, req),
      );
      span.setAttribute(ATTR.outcome, ingestStatusToJSON(ack.status).replace('INGEST_STATUS_', ''));
      const code = ack.status === IngestStatus.RETRY ? retryCode(ack) : GrpcStatus.OK;
      // A stream's status is the stream's, not the batch's: only a unary call has one per batch.
      if (method === 'IngestBatch') span.setAttribute(ATTR.rpcGrpcStatusCode, code);
      if (code === GrpcStatus.UNAVAILABLE)
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: ack.rejections[0]?.reason ?? 'retry',
        });
      return ack;
    } finally {
      span.end();
    }
  }

  private async answerBatch(principal: Principal, req: DecodedRequest): Promise<IngestAck> {
    const started = performance.now();
    const batchId = req.batch?.batchId ?? '';
    let ack: IngestAck;
    if (req.error !== undefined || !req.batch) {
      ack = rejectedAck(
        batchId,
        new BatchRejectedError('batch', req.error ?? 'the request has no batch'),
      );
    } else if (this.draining) {
      ack = retryAck(
        batchId,
        new RetryableError(
          'unavailable',
          'the gateway is shutting down; reconnect and resend this batch',
          this.opts.retryAfterMs,
        ),
      );
    } else if (req.raw && req.raw.byteLength > this.opts.maxBatchBytes) {
      ack = rejectedAck(
        batchId,
        new BatchRejectedError(
          'batch',
          `the batch is ${req.raw.byteLength} bytes; at most ${this.opts.maxBatchBytes} are allowed (send smaller batches)`,
        ),
      );
    } else {
      try {
        ack = await this.opts.pipeline.ingest(principal, { batch: req.batch, raw: req.raw });
      } catch (err) {
        if (err instanceof BatchRejectedError) ack = rejectedAck(batchId, err);
        else if (err instanceof RetryableError) ack = retryAck(batchId, err);
        else {
          trace.getActiveSpan()?.recordException(err as Error);
          this.opts.log.error({ err }, 'unexpected error while ingesting a batch');
          ack = retryAck(
            batchId,
            new RetryableError(
              'unavailable',
              'internal error; nothing was stored, resend this batch',
              this.opts.retryAfterMs,
            ),
          );
        }
      }
    }
    // RETRY and REJECTED answers carry the advice too: a device told to back off should also thin.
    ack.sampling ??= this.opts.advice?.();
    const statusName = ingestStatusToJSON(ack.status);
    this.opts.metrics.batches.inc({ transport: 'grpc', status: statusName });
    this.opts.metrics.ackDuration.observe(
      { transport: 'grpc', status: statusName },
      (performance.now() - started) / 1000,
    );
    return ack;
  }

  private onStream(call: ServerDuplexStream<DecodedRequest, IngestAck>): void {
    let principal: Principal;
    try {
      principal = this.authenticate(call.metadata, call.getAuthContext());
    } catch (err) {
      this.opts.metrics.authFailures.inc({ transport: 'grpc' });
      call.emit('error', { code: GrpcStatus.UNAUTHENTICATED, details: (err as Error).message });
      return;
    }
    if (this.draining) {
      call.emit('error', {
        code: GrpcStatus.UNAVAILABLE,
        details: 'the gateway is shutting down; reconnect',
        metadata: retryMetadata(this.opts.retryAfterMs),
      });
      return;
    }
    // Bounded: streams per credential and in all (each holds up to maxPending batches read ahead).
    const perScope = this.streamsByScope.get(principal.scope) ?? 0;
    const maxPerScope = this.opts.maxStreamsPerCredential ?? 8;
    if (perScope >= maxPerScope || this.streams.size >= (this.opts.maxStreams ?? 4096)) {
      this.opts.metrics.streamsRefused.inc();
      call.emit('error', {
        code: GrpcStatus.RESOURCE_EXHAUSTED,
        details:
          perScope >= maxPerScope
            ? `this credential already has ${perScope} open Ingest streams (limit ${maxPerScope}); send over the open ones or close one first`
            : 'the gateway has as many open Ingest streams as it serves; retry later or use IngestBatch',
        metadata: retryMetadata(this.opts.retryAfterMs),
      });
      return;
    }
    this.streamsByScope.set(principal.scope, perScope + 1);
    // Flow control. `pending` counts batches read whose ack is not yet flushed to HTTP/2 (the write
    // callback), so a device that does not read its acks stops the gateway reading its requests:
    // reading pauses at `maxPending` such batches, or while write() reports a full buffer (until
    // 'drain'). Unsent ack bytes are bounded per stream: an ack that would pass the bound ends the
    // stream with RESOURCE_EXHAUSTED instead (after the acks already queued, as HTTP/2 orders them).
    const parent = callTraceContext(call.metadata);
    const maxPending = this.opts.streamMaxPending;
    const maxUnsent = this.opts.streamMaxUnsentAckBytes;
    let pending = 0;
    let unsent = 0;
    let blocked = false;
    let paused = false;
    let exhausted = false;
    let closed = false;
    let ended = false;
    // Acks are written in request order: each answer waits for the previous one.
    let chain: Promise<void> = Promise.resolve();
    const flowControl = () => {
      if (closed) return;
      const stop = exhausted || blocked || pending >= maxPending;
      if (stop && !paused) {
        paused = true;
        call.pause();
      } else if (!stop && paused && pending <= maxPending / 2) {
        paused = false;
        call.resume();
      }
    };
    const finish = () => {
      if (ended || closed) return;
      ended = true;
      call.end();
    };
    const stream: OpenStream = { settled: () => chain, end: finish };
    this.streams.add(stream);
    this.opts.metrics.openStreams.inc();
    const close = () => {
      if (!this.streams.delete(stream)) return;
      closed = true;
      clearInterval(stallTimer);
      const n = (this.streamsByScope.get(principal.scope) ?? 1) - 1;
      if (n > 0) this.streamsByScope.set(principal.scope, n);
      else this.streamsByScope.delete(principal.scope);
      this.opts.metrics.openStreams.dec();
      // Write callbacks of a cancelled call never run: forget its unsent bytes here.
      this.addUnsent(-unsent);
      unsent = 0;
    };
    const exhaust = (why: string) => {
      if (exhausted || closed) return;
      exhausted = true;
      ended = true;
      this.flow.exhaustedStreams++;
      this.opts.metrics.streamsExhausted.inc();
      this.opts.log.warn(
        { principal: principal.name, unsentAckBytes: unsent },
        'grpc stream ended: the device does not read its acks',
      );
      flowControl();
      call.emit('error', {
        code: GrpcStatus.RESOURCE_EXHAUSTED,
        details: `the client is not reading its acks: ${why}; read acks while sending. Batches without an ack were maybe stored: resend them with the same batch id`,
      });
    };
    // A device that stopped reading its acks is ended after the stall timeout, whatever it holds.
    const stallMs = this.opts.streamStallTimeoutMs ?? 30_000;
    let lastFlush = Date.now();
    const stallTimer = setInterval(
      () => {
        if (unsent > 0 && Date.now() - lastFlush >= stallMs)
          exhaust(`${unsent} bytes of acks unsent and none read for ${stallMs} ms`);
      },
      Math.max(100, Math.min(5_000, Math.floor(stallMs / 4))),
    );
    stallTimer.unref();
    call.on('drain', () => {
      blocked = false;
      flowControl();
    });
    call.on('data', (req: DecodedRequest) => {
      // Requests already buffered when the stream was ended are not answered (the device resends).
      if (exhausted || ended) return;
      const answer = this.answer(principal, req, 'Ingest', parent);
      pending++;
      flowControl();
      chain = chain.then(async () => {
        const ack = await answer;
        if (closed || ended) {
          pending--;
          return;
        }
        const bytes = ackBytes(ack);
        if (unsent > 0 && unsent + bytes > maxUnsent) {
          pending--;
          return exhaust(
            `${unsent} bytes of acks are unsent and the next one needs ${bytes} more (limit ${maxUnsent})`,
          );
        }
        unsent += bytes;
        this.addUnsent(bytes);
        if (unsent > this.flow.peakStreamUnsentAckBytes)
          this.flow.peakStreamUnsentAckBytes = unsent;
        const flushed = () => {
          pending--;
          lastFlush = Date.now();
          if (!closed) {
            unsent -= bytes;
            this.addUnsent(-bytes);
          }
          flowControl();
        };
        if (!call.write(ack, flushed)) blocked = true;
        flowControl();
      });
    });
    call.on('end', () => {
      chain.then(
        () => {
          finish();
          close();
        },
        (err: unknown) => {
          // Answers never reject by design; should one, end the stream rather than crash the gateway.
          this.opts.log.error({ err }, 'grpc stream failed while answering its batches');
          call.emit('error', {
            code: GrpcStatus.INTERNAL,
            details: 'internal error; resend the batches that got no ack',
          });
          close();
        },
      );
    });
    call.on('cancelled', close);
    call.on('error', close);
    call.on('close', close);
  }

  private async onUnary(
    call: ServerUnaryCall<DecodedRequest, IngestAck>,
    cb: sendUnaryData<IngestAck>,
  ): Promise<void> {
    let principal: Principal;
    try {
      principal = this.authenticate(call.metadata, call.getAuthContext());
    } catch (err) {
      this.opts.metrics.authFailures.inc({ transport: 'grpc' });
      return cb({
        code: GrpcStatus.UNAUTHENTICATED,
        details: (err as AuthenticationError).message,
      });
    }
    const ack = await this.answer(
      principal,
      call.request,
      'IngestBatch',
      callTraceContext(call.metadata),
    );
    if (ack.status === IngestStatus.RETRY) {
      const reason = ack.rejections[0]?.reason ?? 'retry';
      return cb({
        code: retryCode(ack),
        details: `${reason} (retry after ${ack.retryAfterMs} ms)`,
        metadata: retryMetadata(ack.retryAfterMs),
      });
    }
    cb(null, ack);
  }

  /**
   * Reflection from the descriptor set compiled into the bundle (`npm run generate`), not from .proto
   * files: the container image has no proto/ folder. The health service's own .proto ships with its
   * package.
   */
  private addReflection(): void {
    const pkg = loadFileDescriptorSetFromBuffer(Buffer.from(FILE_DESCRIPTOR_SET_BASE64, 'base64'));
    const health = loadSync(healthProtoPath);
    new ReflectionService({ ...pkg, ...health }).addToServer(this.server);
  }
}

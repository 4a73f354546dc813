import { randomBytes } from 'node:crypto';
import { Metadata, type ClientDuplexStream } from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import {
  HEADERS,
  IngestStatus,
  type EventBatch,
  type IngestAck,
  type IngestRequest,
  type IngestServiceClient,
} from '@sluice/contracts';
import { startMemoryTracing, type MemoryTracing } from '@sluice/observability';
import { natsFixture, uniqueId, waitFor, type NatsFixture } from '@sluice/testing';
import { sha256Hex } from './auth';
import { type Gateway } from './gateway';
import { telemetry } from './test-fixtures/client';
import { startTestGateway } from './test-fixtures/gateway';

const DEVICE = 'boat-trace-17';
const TOKEN = 'device-token-trace-17';

/** A device-side trace: a fresh trace id and the id of the device's own span. */
function deviceTrace() {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

/** `[trace id, parent span id]` of a `traceparent` value. */
function parse(traceparent: string | undefined): [string, string] {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(traceparent ?? '');
  if (!m) throw new Error(`not a traceparent: ${traceparent}`);
  return [m[1]!, m[2]!];
}

function metadata(extra: Record<string, string>): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${TOKEN}`);
  for (const [k, v] of Object.entries(extra)) md.set(k, v);
  return md;
}

describe('ingestion tracing: a device traceparent is honoured with a SERVER span', () => {
  let tracing: MemoryTracing;
  let nats: NatsFixture;
  let gw: Gateway;
  let c: IngestServiceClient;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    tracing = startMemoryTracing();
    nats = await natsFixture();
    const g = await startTestGateway(nats, `${sha256Hex(TOKEN)}=${DEVICE}`, {
      INGEST_REGIONS: 'eu-west',
      INGEST_DRAIN_GRACE: '100ms',
    });
    gw = g.gw;
    c = g.c;
    stop = g.stop;
  });

  afterAll(async () => {
    await stop?.();
    await nats?.cleanup();
    await tracing?.shutdown();
  });

  beforeEach(() => tracing.exporter.reset());

  /** The finished SERVER span of the batch (by `messaging.message.id`), once it has ended. */
  function serverSpan(batchId: string) {
    return waitFor('the SERVER span', () =>
      tracing.exporter
        .getFinishedSpans()
        .find(
          (s) =>
            s.kind === SpanKind.SERVER &&
            String(s.attributes['messaging.message.id'] ?? '').endsWith(`:${batchId}`),
        ),
    );
  }

  /** `traceparent` of the raw message stored for `batchId`. */
  async function rawTraceparent(batchId: string): Promise<string | undefined> {
    const msgs = await nats.readAll(gw.routes.get('eu-west')!.stream);
    const m = msgs.find((x) => x.headers?.get(HEADERS.MSG_ID).endsWith(`:${batchId}`));
    expect(m).toBeDefined();
    return m!.headers?.get(HEADERS.TRACEPARENT);
  }

  function postEvents(batchId: string, headers: Record<string, string>) {
    const body = JSON.stringify({
      event_id: uniqueId('h'),
      device_id: DEVICE,
      timestamp: new Date().toISOString(),
      sensor_type: 'engine_temp',
      value: 80,
      unit: 'celsius',
      region: 'eu-west',
    });
    return fetch(`http://127.0.0.1:${gw.httpPort}/v1/events`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${TOKEN}`,
        'idempotency-key': batchId,
        ...headers,
      },
      body,
    });
  }

  function batch(): EventBatch {
    return { batchId: uniqueId('b'), events: [telemetry(uniqueId('e'), DEVICE, 'eu-west')] };
  }

  it('HTTP POST /v1/events: the SERVER span continues the device trace and the raw message carries it', async () => {
    const dev = deviceTrace();
    const batchId = uniqueId('k');
    const res = await postEvents(batchId, {
      traceparent: dev.traceparent,
      tracestate: 'fleet=boat',
    });
    expect(res.status).toBe(200);

    const span = await serverSpan(batchId);
    expect(span.name).toBe('POST /v1/events');
    expect(span.spanContext().traceId).toBe(dev.traceId);
    expect(span.parentSpanContext?.spanId).toBe(dev.spanId);
    expect(span.parentSpanContext?.isRemote).toBe(true);
    expect(span.spanContext().traceState?.get('fleet')).toBe('boat');
    expect(span.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/v1/events',
      'http.response.status_code': 200,
      'server.port': gw.httpPort,
      'sluice.outcome': 'OK',
      'sluice.event.count': 1,
    });
    expect(span.status.code).not.toBe(SpanStatusCode.ERROR);
    // Device ids are sensitive: never an attribute value.
    expect(JSON.stringify(span.attributes)).not.toContain(DEVICE);
    // One span per request: no other span of this trace in the gateway.
    expect(
      tracing.exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === dev.traceId),
    ).toHaveLength(1);

    expect(parse(await rawTraceparent(batchId))).toEqual([dev.traceId, span.spanContext().spanId]);
  });

  it('gRPC IngestBatch: the traceparent metadata is the SERVER span parent, carried to NATS', async () => {
    const dev = deviceTrace();
    const b = batch();
    const ack = await new Promise<IngestAck>((resolve, reject) =>
      c.ingestBatch({ batch: b }, metadata({ traceparent: dev.traceparent }), (err, a) =>
        err ? reject(err) : resolve(a!),
      ),
    );
    expect(ack.status).toBe(IngestStatus.OK);

    const span = await serverSpan(b.batchId);
    expect(span.name).toBe('sluice.gateway.v1.IngestService/IngestBatch');
    expect(span.kind).toBe(SpanKind.SERVER);
    expect(span.spanContext().traceId).toBe(dev.traceId);
    expect(span.parentSpanContext?.spanId).toBe(dev.spanId);
    expect(span.attributes).toMatchObject({
      'rpc.system': 'grpc',
      'rpc.service': 'sluice.gateway.v1.IngestService',
      'rpc.method': 'IngestBatch',
      'rpc.grpc.status_code': 0,
      'sluice.outcome': 'OK',
    });
    expect(JSON.stringify(span.attributes)).not.toContain(DEVICE);
    expect(parse(await rawTraceparent(b.batchId))).toEqual([
      dev.traceId,
      span.spanContext().spanId,
    ]);
  });

  it('gRPC Ingest stream: one SERVER span per batch, each a child of the stream metadata traceparent', async () => {
    const dev = deviceTrace();
    const call: ClientDuplexStream<IngestRequest, IngestAck> = c.ingest(
      metadata({ traceparent: dev.traceparent }),
    );
    const acks: IngestAck[] = [];
    call.on('data', (a: IngestAck) => acks.push(a));
    const batches = [batch(), batch()];
    for (const b of batches) call.write({ batch: b });
    await waitFor('2 acks', () => acks.length === 2);
    call.end();
    expect(acks.map((a) => a.status)).toEqual([IngestStatus.OK, IngestStatus.OK]);

    const ids = new Set<string>();
    for (const b of batches) {
      const span = await serverSpan(b.batchId);
      expect(span.name).toBe('sluice.gateway.v1.IngestService/Ingest');
      expect(span.spanContext().traceId).toBe(dev.traceId);
      expect(span.parentSpanContext?.spanId).toBe(dev.spanId);
      expect(span.attributes['rpc.grpc.status_code']).toBeUndefined();
      expect(parse(await rawTraceparent(b.batchId))).toEqual([
        dev.traceId,
        span.spanContext().spanId,
      ]);
      ids.add(span.spanContext().spanId);
    }
    expect(ids.size).toBe(2);
  });

  it('a malformed traceparent is ignored: a fresh trace, and the batch is stored (2xx / OK)', async () => {
    for (const bad of [
      'not-a-traceparent',
      `00-${'0'.repeat(32)}-${'1'.repeat(16)}-01`,
      `ff-${'a'.repeat(32)}-${'b'.repeat(16)}-01`,
    ]) {
      const batchId = uniqueId('k');
      const res = await postEvents(batchId, { traceparent: bad, tracestate: 'x=y' });
      expect(res.status).toBe(200);
      const span = await serverSpan(batchId);
      expect(span.parentSpanContext).toBeUndefined();
      expect(span.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(span.spanContext().traceId).not.toBe('0'.repeat(32));
      expect(bad).not.toContain(span.spanContext().traceId);
      expect(parse(await rawTraceparent(batchId))).toEqual([
        span.spanContext().traceId,
        span.spanContext().spanId,
      ]);
    }
    const b = batch();
    const ack = await new Promise<IngestAck>((resolve, reject) =>
      c.ingestBatch({ batch: b }, metadata({ traceparent: '00-xyz' }), (err, a) =>
        err ? reject(err) : resolve(a!),
      ),
    );
    expect(ack.status).toBe(IngestStatus.OK);
    const span = await serverSpan(b.batchId);
    expect(span.parentSpanContext).toBeUndefined();
    expect(parse(await rawTraceparent(b.batchId))[0]).toBe(span.spanContext().traceId);
  });

  it('a request without traceparent starts a new trace; a 4xx answer is not a span error', async () => {
    const res = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: '{"event_id":',
    });
    expect(res.status).toBe(400);
    const span = await waitFor('the SERVER span', () =>
      tracing.exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER),
    );
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.attributes['http.response.status_code']).toBe(400);
    expect(span.status.code).not.toBe(SpanStatusCode.ERROR);
  });
});

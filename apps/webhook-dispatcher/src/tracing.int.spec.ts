import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { publishDurable } from '@sluice/jetstream';
import { encodeBatch, TelemetryEvent, topology } from '@sluice/contracts';
import { startMemoryTracing, tracer, type MemoryTracing } from '@sluice/observability';
import {
  createTestDatabase,
  natsFixture,
  uniqueId,
  waitFor,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { startTestDispatcher, TEST_ADMIN_TOKEN } from './test-fixtures/dispatcher';
import { startReceiver, type Receiver } from './test-fixtures/receiver';

const TOKEN = TEST_ADMIN_TOKEN;

/** `[trace id, parent span id]` of a `traceparent` value. */
function parse(traceparent: string | undefined): [string, string] {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(traceparent ?? '');
  if (!m) throw new Error(`not a traceparent: ${traceparent}`);
  return [m[1]!, m[2]!];
}

describe('webhook dispatcher tracing: each POST is a CLIENT span carrying traceparent', () => {
  let tracing: MemoryTracing;
  let nats: NatsFixture;
  let db: PgDatabase;
  let base: string;
  let stopDispatcher: (() => Promise<void>) | undefined;
  let receiver: Receiver;
  /** `traceparent` of each request the receiver got, in order. */
  const seen: string[] = [];
  const ns = uniqueId('whtr');
  const topo = topology(ns);

  beforeAll(async () => {
    tracing = startMemoryTracing();
    nats = await natsFixture();
    db = await createTestDatabase('webhook');
    ({ base, stop: stopDispatcher } = await startTestDispatcher(nats, db, ns, {
      WEBHOOK_RETRY_SCHEDULE: '200ms,200ms',
    }));
    // The first attempt of each delivery fails (500), the second succeeds.
    const perId = new Map<string, number>();
    receiver = await startReceiver((req) => {
      seen.push(String(req.headers['traceparent'] ?? ''));
      const id = String(req.headers['webhook-id']);
      const n = (perId.get(id) ?? 0) + 1;
      perId.set(id, n);
      return { status: n === 1 ? 500 : 204 };
    });
  });

  afterAll(async () => {
    await stopDispatcher?.();
    await receiver?.close();
    await nats?.cleanup();
    await db?.drop();
    await tracing?.shutdown();
  });

  it('the receiver sees the trace of the event that triggered the delivery, on every attempt', async () => {
    const sensor = uniqueId('temp');
    const res = await fetch(`${base}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        url: receiver.url,
        filter: { type: 'telemetry', sensorTypes: [sensor], value: { gt: 100 } },
      }),
    });
    expect(res.status).toBe(201);
    const sub = (await res.json()) as { id: string };

    // The clean event is published inside a trace, as dedupe does (its traceparent goes into the headers).
    const event = TelemetryEvent.fromPartial({
      eventId: uniqueId('ev'),
      deviceId: 'dev-trace-1',
      sensorType: sensor,
      value: 150,
      unit: 'celsius',
      region: 'eu',
      eventTime: new Date(),
    });
    const batchId = uniqueId('b');
    const traceId = await tracer('test').startActiveSpan('upstream', async (span) => {
      await publishDurable(
        nats.js,
        topo.clean('eu'),
        encodeBatch({ batchId, events: [{ kind: { $case: 'telemetry', value: event } }] }),
        { msgId: batchId, contentType: 'application/x-protobuf' },
      );
      span.end();
      return span.spanContext().traceId;
    });

    await waitFor(
      'a failed then a successful attempt',
      () => receiver.requests.filter((q) => q.status === 204).length === 1,
      { timeoutMs: 20_000 },
    );
    expect(receiver.requests.map((q) => q.status)).toEqual([500, 204]);
    expect(seen.map((t) => parse(t)[0])).toEqual([traceId, traceId]);

    const clients = await waitFor('two CLIENT spans', () => {
      const s = tracing.exporter
        .getFinishedSpans()
        .filter(
          (x) => x.kind === SpanKind.CLIENT && x.attributes['sluice.subscription.id'] === sub.id,
        );
      return s.length === 2 ? s : undefined;
    });
    // Each request's traceparent names its own CLIENT span, in the event's trace.
    const bySpanId = new Map(clients.map((s) => [s.spanContext().spanId, s]));
    const [failed, ok] = seen.map((t) => bySpanId.get(parse(t)[1]));
    expect(failed).toBeDefined();
    expect(ok).toBeDefined();
    if (!failed || !ok) return;
    expect(failed.name).toBe('POST');
    expect(failed.attributes).toMatchObject({
      'http.request.method': 'POST',
      'server.address': '127.0.0.1',
      'server.port': receiver.port,
      'http.response.status_code': 500,
      'error.type': '500',
    });
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed.attributes['http.request.resend_count']).toBeUndefined();
    expect(ok.attributes).toMatchObject({
      'http.response.status_code': 204,
      'http.request.resend_count': 1,
    });
    expect(ok.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(JSON.stringify([failed.attributes, ok.attributes])).not.toContain('dev-trace-1');
    // Both continue the matcher's span of the clean message (itself a child of the upstream trace).
    const matcher = tracing.exporter
      .getFinishedSpans()
      .find((s) => s.spanContext().spanId === failed.parentSpanContext?.spanId);
    expect(matcher?.kind).toBe(SpanKind.CONSUMER);
    expect(ok.parentSpanContext?.spanId).toBe(failed.parentSpanContext?.spanId);
  });
});

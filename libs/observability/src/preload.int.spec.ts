import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { SpanKind } from '@opentelemetry/api';
import {
  attrs,
  decodeTraces,
  otlpReceiverPerTest,
  type OtlpSpan,
} from './test-fixtures/otlp-receiver';

const ROOT = join(__dirname, '..', '..', '..');
const ZERO_TRACE_ID = '0'.repeat(32);

interface FixtureResult {
  traceId: string;
  providerRegistered: boolean;
  logLine: Record<string, unknown>;
  receivedTraceparent?: string;
  pgPatched: boolean;
}

/**
 * Runs the fixture as `npm start` runs a service (`node --import tsx --import <preload> <entry>`),
 * with the test's own OTEL_* variables removed and `env` added.
 */
function runFixture(env: Record<string, string>): Promise<FixtureResult> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')),
  );
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      './libs/observability/src/preload.ts',
      'libs/observability/src/test-fixtures/preload-process.ts',
      'preload-spec',
    ],
    { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
  proc.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')));
  return new Promise((resolve, reject) => {
    proc.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{"traceId"'));
      if (code === 0 && line) resolve(JSON.parse(line) as FixtureResult);
      else reject(new Error(`fixture exited ${code}:\n${out}`));
    });
  });
}

const byScope = (spans: OtlpSpan[], scope: string) =>
  spans.filter((s) => s.scope === `@opentelemetry/instrumentation-${scope}`);
/** The request path of an http span (servers record `url.path`, clients `url.full`). */
const path = (s: OtlpSpan) => {
  const a = attrs(s.attributes);
  return a['url.path'] ?? (a['url.full'] ? new URL(a['url.full']).pathname : undefined);
};

describe('the instrumentation preload (a real process started as npm start starts a service)', () => {
  const otlp = otlpReceiverPerTest();

  it('traces pg, ioredis, mongodb, http and grpc-js inside a trace under the service provider, and stays quiet elsewhere', async () => {
    const child = await runFixture({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.current.url });
    expect(child.pgPatched).toBe(true);
    const { resources, spans } = decodeTraces(otlp.current.received);
    // One provider: the one startTracing registered, named after the service.
    expect(new Set(resources.map((r) => r['service.name']))).toEqual(new Set(['preload-spec']));
    const inTrace = spans.filter((s) => s.traceId === child.traceId);
    const root = inTrace.find((s) => s.name === 'root')!;
    expect(root).toBeDefined();

    // Databases: one span each, inside the trace, children of the root span; values never recorded.
    const pgSpans = byScope(spans, 'pg');
    expect(pgSpans.map((s) => attrs(s.attributes)['db.query.text'])).toEqual([
      'SELECT $1::text AS inside',
    ]);
    expect(pgSpans[0]).toMatchObject({
      traceId: child.traceId,
      parentSpanId: root.spanId,
      kind: SpanKind.CLIENT + 1,
    });
    const redisSpans = byScope(spans, 'ioredis');
    expect(redisSpans.map((s) => s.name)).toEqual(['set']);
    expect(redisSpans[0]).toMatchObject({ traceId: child.traceId, parentSpanId: root.spanId });
    const mongoSpans = byScope(spans, 'mongodb');
    expect(mongoSpans.length).toBeGreaterThan(0);
    for (const s of mongoSpans)
      expect(s).toMatchObject({ traceId: child.traceId, parentSpanId: root.spanId });
    const exported = otlp.current.received.map((r) => r.body.toString('utf8')).join('\n');
    expect(exported).not.toContain('secret-value');

    // http: a CLIENT span per traced request, a SERVER span on the plain server continuing it.
    const http = byScope(spans, 'http');
    const clients = http.filter((s) => s.kind === SpanKind.CLIENT + 1);
    const servers = http.filter((s) => s.kind === SpanKind.SERVER + 1);
    expect(clients.map(path).sort()).toEqual(['/healthz', '/inside', '/self-traced']);
    for (const c of clients)
      expect(c).toMatchObject({ traceId: child.traceId, parentSpanId: root.spanId });
    const insideClient = clients.find((s) => path(s) === '/inside')!;
    expect(child.receivedTraceparent).toBe(`00-${child.traceId}-${insideClient.spanId}-01`);
    // Servers: no span for the ops path, for the self-traced server or the OTLP export requests; a
    // request outside any trace starts one; a request with its own traceparent (not instrumented
    // on the client side, its caller traced it) is continued.
    expect(servers.map(path).sort()).toEqual(['/carries-traceparent', '/inside', '/outside']);
    expect(servers.find((s) => path(s) === '/inside')).toMatchObject({
      traceId: child.traceId,
      parentSpanId: insideClient.spanId,
    });
    expect(servers.find((s) => path(s) === '/carries-traceparent')).toMatchObject({
      traceId: '1'.repeat(32),
      parentSpanId: '2'.repeat(16),
    });
    expect(servers.find((s) => path(s) === '/outside')!.traceId).not.toBe(child.traceId);
    const receiverPort = new URL(otlp.current.url).port;
    expect(http.filter((s) => JSON.stringify(s.attributes).includes(`:${receiverPort}`))).toEqual(
      [],
    );

    // gRPC: Echo traced on both sides; IngestBatch (its server traces itself) on neither.
    const grpc = byScope(spans, 'grpc');
    expect(grpc.map((s) => `${s.kind - 1}:${s.name}`).sort()).toEqual(
      [
        `${SpanKind.SERVER}:grpc.fixture.Echo/Echo`,
        `${SpanKind.CLIENT}:grpc.fixture.Echo/Echo`,
      ].sort(),
    );
    for (const s of grpc) expect(s.traceId).toBe(child.traceId);

    expect(child.logLine).toMatchObject({ msg: 'inside the root span', trace_id: child.traceId });
  });

  it('without any OTEL variable: nothing is exported, yet a provider is registered and log lines in a span carry its trace id', async () => {
    const child = await runFixture({});
    expect(otlp.current.received).toEqual([]);
    expect(child.providerRegistered).toBe(true);
    expect(child.pgPatched).toBe(true);
    expect(child.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(child.traceId).not.toBe(ZERO_TRACE_ID);
    expect(child.logLine).toMatchObject({
      msg: 'inside the root span',
      trace_id: child.traceId,
      span_id: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
  });

  it('OTEL_SDK_DISABLED=true: the preload patches nothing and no provider is registered', async () => {
    const child = await runFixture({
      OTEL_SDK_DISABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.current.url,
    });
    expect(child.pgPatched).toBe(false);
    expect(child.providerRegistered).toBe(false);
    expect(child.traceId).toBe(ZERO_TRACE_ID);
    expect(child.logLine).not.toHaveProperty('trace_id');
    expect(otlp.current.received).toEqual([]);
  });
});

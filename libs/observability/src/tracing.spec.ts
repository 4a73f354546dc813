import { trace } from '@opentelemetry/api';
import { headers } from '@nats-io/nats-core';
import { createDeviceHasher } from './device-hash';
import { captureLogLines } from './test-fixtures/log-capture';
import { createLogger } from './logger';
import { injectTraceHeaders } from './propagation';
import { startTracing, tracer } from './tracing';

const ZERO_TRACE_ID = '0'.repeat(32);

const capture = captureLogLines;

describe('startTracing without an exporter', () => {
  const hash = createDeviceHasher('a-test-key-of-16+chars');

  it('registers a provider: log lines and NATS headers inside a span carry its non-zero trace id', async () => {
    const tracing = startTracing({ service: 'tracing-spec' });
    try {
      const { lines, destination } = capture();
      const log = createLogger({ service: 'svc', hashDeviceId: hash, destination });
      const hdrs = headers();
      const ids = tracer('spec').startActiveSpan('work', (span) => {
        log.info('inside');
        injectTraceHeaders(hdrs);
        span.end();
        return span.spanContext();
      });
      expect(ids.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(ids.traceId).not.toBe(ZERO_TRACE_ID);
      expect(lines[0]).toMatchObject({ msg: 'inside', trace_id: ids.traceId, span_id: ids.spanId });
      expect(hdrs.get('traceparent')).toBe(`00-${ids.traceId}-${ids.spanId}-01`);
    } finally {
      await tracing.shutdown();
    }
  });

  it('unregisters on shutdown, so it can start again; disabled registers nothing', async () => {
    await startTracing({ service: 'tracing-spec' }).shutdown();
    expect(trace.getTracer('t').startSpan('after shutdown').spanContext().traceId).toBe(
      ZERO_TRACE_ID,
    );
    const again = startTracing({ service: 'tracing-spec' });
    try {
      expect(trace.getTracer('t').startSpan('again').spanContext().traceId).not.toBe(ZERO_TRACE_ID);
    } finally {
      await again.shutdown();
    }
    const off = startTracing({ service: 'tracing-spec', disabled: true });
    expect(trace.getTracer('t').startSpan('off').spanContext().traceId).toBe(ZERO_TRACE_ID);
    await off.shutdown();
  });
});

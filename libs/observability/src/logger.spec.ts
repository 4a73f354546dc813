import { context, trace } from '@opentelemetry/api';
import { createDeviceHasher } from './device-hash';
import { captureLogLines } from './test-fixtures/log-capture';
import { createLogger } from './logger';
import { startMemoryTracing } from './tracing';

const capture = captureLogLines;

describe('logger', () => {
  const hash = createDeviceHasher('a-test-key-of-16+chars');

  it('never writes a device id raw: it becomes a keyed hash', () => {
    const { lines, destination } = capture();
    const log = createLogger({ service: 'svc', hashDeviceId: hash, destination });
    log.info({ device_id: 'boat-17' }, 'reading');
    log.warn({ deviceId: 'boat-17', device: 'boat-18' }, 'again');
    expect(JSON.stringify(lines)).not.toMatch(/boat-1[78]/);
    expect(lines[0]).toMatchObject({
      service: 'svc',
      level: 'info',
      device_hash: hash('boat-17'),
      msg: 'reading',
    });
    expect(hash('boat-17')).toMatch(/^[0-9a-f]{16}$/);
    expect(hash('boat-17')).not.toBe(createDeviceHasher('another-key-of-16-chars')('boat-17'));
  });

  it('adds the active trace and span ids', async () => {
    const tracing = startMemoryTracing();
    try {
      const { lines, destination } = capture();
      const log = createLogger({ service: 'svc', hashDeviceId: hash, destination });
      const span = trace.getTracer('t').startSpan('work');
      context.with(trace.setSpan(context.active(), span), () => log.info('inside'));
      log.info('outside');
      span.end();
      expect(lines[0]).toMatchObject({
        trace_id: span.spanContext().traceId,
        span_id: span.spanContext().spanId,
      });
      expect(lines[1]!['trace_id']).toBeUndefined();
    } finally {
      await tracing.shutdown();
    }
  });
});

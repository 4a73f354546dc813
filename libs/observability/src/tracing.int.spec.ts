import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { decodeTraces, otlpReceiverPerTest, type Received } from './test-fixtures/otlp-receiver';
import { SPAN_LINK_LIMIT, type TracingOptions } from './tracing';

const ROOT = join(__dirname, '..', '..', '..');
const ROOT_VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

/**
 * Runs the fixture process with `opts` and the environment `env` (the test's own OTEL_* variables
 * removed first); resolves with what it printed once it exited 0.
 */
function runFixture(
  opts: TracingOptions,
  env: Record<string, string>,
): Promise<{ traceId: string; pid: number }> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')),
  );
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'libs/observability/src/test-fixtures/otlp-process.ts',
      JSON.stringify(opts),
    ],
    {
      cwd: ROOT,
      env: { ...base, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
  proc.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')));
  return new Promise((resolve, reject) => {
    proc.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{"traceId"'));
      if (code === 0 && line) resolve(JSON.parse(line) as { traceId: string; pid: number });
      else reject(new Error(`fixture exited ${code}:\n${out}`));
    });
  });
}

/** Resource attributes and spans of the exports, each request checked to be OTLP/HTTP JSON. */
function decodeJsonTraces(received: Received[]) {
  for (const r of received.filter((x) => x.path === '/v1/traces')) {
    expect(r).toMatchObject({
      method: 'POST',
      contentType: expect.stringMatching(/^application\/json/),
    });
  }
  return decodeTraces(received);
}

describe('startTracing with an OTLP endpoint (a real process exporting to a real receiver)', () => {
  const otlp = otlpReceiverPerTest();

  it('exports spans as OTLP/HTTP JSON with the service, host and process resource, keeping up to SPAN_LINK_LIMIT links', async () => {
    const run = randomUUID();
    // The SDK's own OTLP variable points at the otlp.current too: a metric or log exporter started by
    // default would post there on shutdown.
    const child = await runFixture(
      { service: 'tracing-int-spec', otlpEndpoint: `${otlp.current.url}/`, environment: 'test' },
      {
        OTEL_RESOURCE_ATTRIBUTES: `sluice.test.run=${run}`,
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.current.url,
      },
    );

    expect(new Set(otlp.current.received.map((r) => r.path))).toEqual(new Set(['/v1/traces']));
    const { resources, spans } = decodeJsonTraces(otlp.current.received);
    expect(resources.length).toBeGreaterThan(0);
    for (const attrs of resources) {
      expect(attrs).toMatchObject({
        'service.name': 'tracing-int-spec',
        'service.version': ROOT_VERSION,
        'deployment.environment.name': 'test',
        'sluice.test.run': run,
        'host.name': hostname(),
        'process.pid': String(child.pid),
        'process.runtime.name': 'nodejs',
        'telemetry.sdk.language': 'nodejs',
      });
      expect(attrs['service.instance.id']).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
      expect(attrs['os.type']).toBeTruthy();
    }
    expect(new Set(resources.map((a) => a['service.instance.id'])).size).toBe(1);

    const byName = new Map(spans.map((s) => [s.name, s]));
    expect(child.traceId).toMatch(/^(?!0{32})[0-9a-f]{32}$/);
    expect(byName.get('root')?.traceId).toBe(child.traceId);
    expect(byName.get('batch of 300')?.traceId).toBe(child.traceId);
    expect(byName.get('batch of 300')!.links).toHaveLength(300);
    expect(byName.get('batch of 300')!.droppedLinksCount ?? 0).toBe(0);
    expect(byName.get('batch over the limit')!.links).toHaveLength(SPAN_LINK_LIMIT);
    expect(byName.get('batch over the limit')!.droppedLinksCount).toBe(100);
  });

  it('OTEL_RESOURCE_ATTRIBUTES overrides service.version; OTLP metrics and logs are exported when asked for', async () => {
    await runFixture(
      {
        service: 'tracing-int-spec',
        instanceId: 'pod-7/1',
        otlpEndpoint: otlp.current.url,
        metricsExporter: 'otlp',
        logsExporter: 'otlp',
      },
      {
        OTEL_RESOURCE_ATTRIBUTES: 'service.version=9.9.9-spec',
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.current.url,
        OTEL_METRICS_EXPORTER: 'otlp',
        OTEL_LOGS_EXPORTER: 'otlp',
      },
    );
    expect(new Set(otlp.current.received.map((r) => r.path))).toEqual(
      new Set(['/v1/traces', '/v1/metrics', '/v1/logs']),
    );
    expect(decodeJsonTraces(otlp.current.received).resources[0]).toMatchObject({
      'service.name': 'tracing-int-spec',
      'service.version': '9.9.9-spec',
      'service.instance.id': 'pod-7/1',
    });
  });
});

// The Jaeger `npm start` runs (jaeger.ts) with the real binary scripts/lib.sh builds (CI builds it
// before the tests: .ci/run, build_jaeger): its UI answers where the plan says, a span sent to the
// plan's OTLP endpoint as the services send theirs can be read back, and SIGTERM stops it.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { planJaeger, spawnJaeger, waitJaegerHealthy } from './jaeger';

const ROOT = resolve(__dirname, '..', '..');

/** A loopback port nothing listens on (bound, then released). */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

describe('npm start: Jaeger (real binary)', () => {
  let proc: ChildProcess | undefined;
  let exited: Promise<void> | undefined;

  afterAll(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });

  it('answers on its UI port, takes OTLP/HTTP spans and stops on SIGTERM', async () => {
    const names = ['OTLP_GRPC', 'OTLP_HTTP', 'QUERY_HTTP', 'QUERY_GRPC', 'HEALTH', 'METRICS'];
    const ports: Record<string, string> = {};
    for (const n of names) ports[`JAEGER_${n}_PORT`] = String(await freePort());
    const env: NodeJS.ProcessEnv = { ...process.env, ...ports };
    delete env['OTEL_EXPORTER_OTLP_ENDPOINT'];
    delete env['OTEL_SDK_DISABLED'];

    const plan = await planJaeger({ root: ROOT, env });
    // Not built: the note names the path and how to build it.
    expect(plan).toMatchObject({ kind: 'start' });
    if (plan.kind !== 'start') return;
    expect(plan.uiUrl).toBe(`http://127.0.0.1:${ports['JAEGER_QUERY_HTTP_PORT']}`);

    proc = spawnJaeger(plan, env);
    const output: string[] = [];
    proc.stdout!.on('data', (b: Buffer) => output.push(b.toString()));
    proc.stderr!.on('data', (b: Buffer) => output.push(b.toString()));
    exited = new Promise((done) => proc!.once('exit', () => done()));
    const healthy = await waitJaegerHealthy(plan, proc, Date.now() + 50_000);
    expect({ healthy, output: healthy ? '' : output.join('') }).toEqual({
      healthy: true,
      output: '',
    });

    const ui = await fetch(plan.uiUrl);
    expect(ui.status).toBe(200);
    expect(ui.headers.get('content-type')).toMatch(/text\/html/);

    const traceId = randomBytes(16).toString('hex');
    const now = BigInt(Date.now()) * 1_000_000n;
    const sent = await fetch(`${plan.otlpEndpoint}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        resourceSpans: [
          {
            resource: {
              attributes: [{ key: 'service.name', value: { stringValue: 'dev-jaeger-spec' } }],
            },
            scopeSpans: [
              {
                spans: [
                  {
                    traceId,
                    spanId: randomBytes(8).toString('hex'),
                    name: 'probe',
                    kind: 1,
                    startTimeUnixNano: String(now - 1_000_000n),
                    endTimeUnixNano: String(now),
                  },
                ],
              },
            ],
          },
        ],
      }),
    });
    expect(sent.status).toBe(200);

    // Jaeger batches what it receives: poll its query API (as the UI does) until the trace is there.
    let found: Array<{ spans: Array<{ operationName: string }> }> = [];
    const deadline = Date.now() + 30_000;
    while (found.length === 0 && Date.now() < deadline) {
      const res = await fetch(`${plan.uiUrl}/api/traces/${traceId}`);
      if (res.ok) found = ((await res.json()) as { data: typeof found }).data ?? [];
      if (found.length === 0) await new Promise((r) => setTimeout(r, 200));
    }
    expect(found.map((t) => t.spans.map((s) => s.operationName))).toEqual([['probe']]);

    // Stops on SIGTERM (else the test times out).
    proc.kill('SIGTERM');
    await exited;
  });
});

// The image runs the esbuild bundle, not tsx: `node --require dist/apps/<app>/preload.js
// dist/apps/<app>/main.js`. The instrumentation hooks `require`, so it only works if the bundle
// leaves pg & co. external; this builds the aggregator with the real build script and checks that
// its query API and SQL show up as spans.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { topology } from '@sluice/contracts';
import {
  createTestDatabase,
  natsFixture,
  testUrls,
  uniqueId,
  waitFor,
  type NatsFixture,
  type PgDatabase,
} from '@sluice/testing';
import { KIND, ROOT, spansOf, startReceiver, type Receiver } from './processes';

const PG = '@opentelemetry/instrumentation-pg';
const HTTP = '@opentelemetry/instrumentation-http';
const API_TOKEN = randomBytes(24).toString('hex');

describe('the built aggregator bundle with its preload (as the image starts it)', () => {
  let nats: NatsFixture;
  let db: PgDatabase;
  let receiver: Receiver;
  let proc: ChildProcess | undefined;
  // Inside the repository (tmp/ is git-ignored) so the bundle resolves node_modules as dist/ does.
  const outdir = join('tmp', uniqueId('e2e-bundle'));

  beforeAll(async () => {
    nats = await natsFixture();
    [db, receiver] = await Promise.all([createTestDatabase('e2ebundle'), startReceiver()]);
    await promisify(execFile)(
      process.execPath,
      ['tools/build/build.mjs', 'apps/aggregator', outdir],
      { cwd: ROOT },
    );
  }, 120_000);

  afterAll(async () => {
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc!.on('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    rmSync(join(ROOT, outdir), { recursive: true, force: true });
    await receiver?.close();
    await nats?.cleanup();
    await db?.drop();
  }, 60_000);

  it('exports the query API request as an http SERVER span with its SQL as pg children; no spans for ops probes', async () => {
    expect(existsSync(join(ROOT, outdir, 'preload.js'))).toBe(true);
    const ns = uniqueId('e2ebn');
    for (const s of Object.values(topology(ns).streams)) nats.track(s.name);
    const base = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')),
    );
    proc = spawn(process.execPath, ['--require', `./${outdir}/preload.js`, `${outdir}/main.js`], {
      cwd: ROOT,
      env: {
        ...base,
        SLUICE_NAMESPACE: ns,
        SLUICE_ENV: 'test',
        NATS_URL: testUrls.nats,
        OPS_PORT: '0',
        OPS_HOST: '127.0.0.1',
        PG_URL: db.url,
        AGGREGATOR_API_HOST: '127.0.0.1',
        AGGREGATOR_API_PORT: '0',
        AGGREGATOR_API_TOKENS: `${createHash('sha256').update(API_TOKEN).digest('hex')}=*`,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: '200',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: Array<Record<string, unknown>> = [];
    let out = '';
    const onData = (b: Buffer) => {
      out += b.toString('utf8');
      const parts = out.split('\n');
      out = parts.pop() ?? '';
      for (const l of parts) {
        try {
          lines.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          lines.push({ raw: l });
        }
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    const running = await waitFor(
      'aggregator running',
      () => lines.find((l) => l['msg'] === 'aggregator running'),
      { timeoutMs: 60_000, intervalMs: 100 },
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}\n${lines
          .slice(-20)
          .map((l) => JSON.stringify(l))
          .join('\n')}`,
      );
    });
    const apiPort =
      running['apiPort'] ?? lines.find((l) => l['msg'] === 'query API listening')?.['apiPort'];
    const opsPort = running['opsPort'];

    expect((await fetch(`http://127.0.0.1:${String(opsPort)}/readyz`)).status).toBe(200);
    const api = await fetch(`http://127.0.0.1:${String(apiPort)}/v1/devices`, {
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expect(api.status).toBe(200);

    const spans = await waitFor(
      'the query API span and its SQL',
      () => {
        const all = spansOf(receiver);
        const server = all.find((s) => s.scope === HTTP && s.kind === KIND.SERVER);
        return server && all.some((s) => s.scope === PG && s.parentSpanId === server.spanId)
          ? all
          : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const servers = spans.filter((s) => s.scope === HTTP && s.kind === KIND.SERVER);
    expect(servers).toHaveLength(1);
    expect(servers[0]!).toMatchObject({
      service: 'aggregator',
      attributes: expect.objectContaining({ 'url.path': '/v1/devices' }),
    });
    const sql = spans.filter((s) => s.scope === PG && s.parentSpanId === servers[0]!.spanId);
    expect(
      sql.every(
        (s) =>
          s.traceId === servers[0]!.traceId && (s.attributes['db.query.text'] ?? '').length > 0,
      ),
    ).toBe(true);
    // Start-up SQL (migrations) and closer passes run outside any trace: no spans.
    expect(
      spans.filter((s) => s.scope === PG && !spans.some((p) => p.spanId === s.parentSpanId)),
    ).toEqual([]);
  }, 120_000);
});

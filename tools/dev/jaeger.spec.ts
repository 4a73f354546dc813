import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { jaegerBinPath, planJaeger } from './jaeger';

const ROOT = resolve(__dirname, '..', '..');

/** What scripts/lib.sh's jaeger_bin prints in `env`. */
function libJaegerBin(env: Record<string, string>): string {
  return execFileSync(
    'bash',
    ['-c', 'source "$1" >/dev/null 2>&1 && jaeger_bin', '_', join(ROOT, 'scripts', 'lib.sh')],
    { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', ...env } },
  ).trim();
}

function listen(): Promise<Server> {
  return new Promise((done, fail) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => done(server));
  });
}
const portOf = (server: Server) => (server.address() as { port: number }).port;
/** A loopback port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = await listen();
  const port = portOf(s);
  await new Promise((done) => s.close(done));
  return port;
}

describe('npm start: Jaeger', () => {
  let cache: string;
  let servers: Server[] = [];
  /** Ports nothing listens on, so a Jaeger already running on this machine does not count. */
  let freePorts: Record<string, string>;

  beforeEach(async () => {
    cache = mkdtempSync(join(tmpdir(), 'sluice-dev-jaeger-'));
    freePorts = {
      JAEGER_OTLP_HTTP_PORT: String(await freePort()),
      JAEGER_QUERY_HTTP_PORT: String(await freePort()),
    };
  });
  afterEach(async () => {
    await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
    servers = [];
    rmSync(cache, { recursive: true, force: true });
  });

  /** Puts an executable file where the binary of `env` is expected. */
  function build(env: NodeJS.ProcessEnv): string {
    const bin = jaegerBinPath(ROOT, env);
    mkdirSync(dirname(bin), { recursive: true });
    writeFileSync(bin, '#!/bin/sh\n');
    chmodSync(bin, 0o755);
    return bin;
  }

  it('looks for the binary where scripts/lib.sh builds it', () => {
    expect(jaegerBinPath(ROOT, { SLUICE_CACHE: cache })).toBe(
      libJaegerBin({ SLUICE_CACHE: cache }),
    );
    expect(jaegerBinPath(ROOT, { HOME: cache })).toBe(libJaegerBin({ HOME: cache }));
    expect(jaegerBinPath(ROOT, { HOME: cache })).toMatch(
      /\/\.cache\/sluice\/jaeger-v\d+\.\d+\.\d+\/jaeger$/,
    );
    expect(jaegerBinPath(ROOT, { SLUICE_CACHE: cache, JAEGER_BIN: '/opt/jaeger' })).toBe(
      '/opt/jaeger',
    );
  });

  it('skips with a one-line note naming the path and how to build it when it is not built', async () => {
    const env = { SLUICE_CACHE: cache, ...freePorts };
    const plan = await planJaeger({ root: ROOT, env });
    expect(plan).toEqual({
      kind: 'skip',
      note: `Jaeger not started: ${jaegerBinPath(ROOT, env)} is not built (once: source scripts/lib.sh && build_jaeger)`,
    });
    expect(plan.kind === 'skip' && plan.note.includes('\n')).toBe(false);
  });

  it('starts the built binary on infra/jaeger/config.yaml on loopback', async () => {
    const env = { SLUICE_CACHE: cache, ...freePorts, JAEGER_HEALTH_PORT: '23133' };
    const bin = build(env);
    expect(await planJaeger({ root: ROOT, env })).toEqual({
      kind: 'start',
      command: bin,
      args: ['--config', join(ROOT, 'infra', 'jaeger', 'config.yaml')],
      env: { JAEGER_LISTEN_HOST: '127.0.0.1', JAEGER_LOG_LEVEL: 'warn' },
      otlpEndpoint: `http://127.0.0.1:${freePorts['JAEGER_OTLP_HTTP_PORT']}`,
      uiUrl: `http://127.0.0.1:${freePorts['JAEGER_QUERY_HTTP_PORT']}`,
      healthUrl: 'http://127.0.0.1:23133/status',
    });
    const verbose = await planJaeger({ root: ROOT, env: { ...env, JAEGER_LOG_LEVEL: 'debug' } });
    expect(verbose).toMatchObject({ kind: 'start', env: { JAEGER_LOG_LEVEL: 'debug' } });
  });

  it("uses infra/jaeger/config.yaml's ports by default: UI 16686, OTLP/HTTP 4318", async () => {
    const env = { SLUICE_CACHE: cache };
    build(env);
    const asked: number[] = [];
    const plan = await planJaeger({
      root: ROOT,
      env,
      portAnswers: (port) => {
        asked.push(port);
        return Promise.resolve(false);
      },
    });
    expect(asked.sort((a, b) => a - b)).toEqual([4318, 16686]);
    expect(plan).toMatchObject({
      kind: 'start',
      uiUrl: 'http://127.0.0.1:16686',
      otlpEndpoint: 'http://127.0.0.1:4318',
      healthUrl: 'http://127.0.0.1:13133/status',
    });
  });

  it('does not start a second one when its UI or OTLP port already answers', async () => {
    const env = { SLUICE_CACHE: cache, ...freePorts };
    build(env);
    const ui = await listen();
    servers.push(ui);
    const uiOnly = await planJaeger({
      root: ROOT,
      env: { ...env, JAEGER_QUERY_HTTP_PORT: String(portOf(ui)) },
    });
    expect(uiOnly).toEqual({
      kind: 'running',
      note: `Jaeger not started: 127.0.0.1:${portOf(ui)} already answers (a Jaeger of an earlier run?)`,
      uiUrl: `http://127.0.0.1:${portOf(ui)}`,
    });

    const otlp = await listen();
    servers.push(otlp);
    const both = await planJaeger({
      root: ROOT,
      env: {
        ...env,
        JAEGER_QUERY_HTTP_PORT: String(portOf(ui)),
        JAEGER_OTLP_HTTP_PORT: String(portOf(otlp)),
      },
    });
    expect(both).toMatchObject({
      kind: 'running',
      uiUrl: `http://127.0.0.1:${portOf(ui)}`,
      otlpEndpoint: `http://127.0.0.1:${portOf(otlp)}`,
    });
  });

  it('leaves tracing as the caller set it: own OTLP endpoint, or tracing off', async () => {
    const env = { SLUICE_CACHE: cache, ...freePorts };
    build(env);
    expect(
      await planJaeger({
        root: ROOT,
        env: { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' },
      }),
    ).toEqual({
      kind: 'skip',
      note: 'Jaeger not started: spans go to http://collector:4318 (OTEL_EXPORTER_OTLP_ENDPOINT)',
    });
    expect(await planJaeger({ root: ROOT, env: { ...env, OTEL_SDK_DISABLED: 'true' } })).toEqual({
      kind: 'skip',
      note: 'Jaeger not started: tracing is off (OTEL_SDK_DISABLED=true)',
    });
  });
});

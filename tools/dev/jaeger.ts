// Jaeger v2 for `npm start`: the binary scripts/lib.sh builds once (build_jaeger) into its cache, run
// on infra/jaeger/config.yaml on loopback, so the services' spans can be looked up in its UI. Never
// builds it (that takes minutes): without the binary, the run goes on without Jaeger.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';

/** The ports of infra/jaeger/config.yaml `npm start` relies on: OTLP/HTTP and the UI / query API. */
export const JAEGER_DEFAULT_PORTS = { otlpHttp: 4318, query: 16686, health: 13133 } as const;

/** What `npm start` does about Jaeger. */
export type JaegerPlan =
  /** Nothing: `note` says why (one line). */
  | { kind: 'skip'; note: string }
  /**
   * Something already serves the Jaeger ports (an earlier run's Jaeger, the user's own): not started
   * again; the services export to `otlpEndpoint` when its OTLP port answers.
   */
  | { kind: 'running'; note: string; otlpEndpoint?: string; uiUrl?: string }
  /** Start `command args` with `env` over the caller's environment. */
  | {
      kind: 'start';
      command: string;
      args: string[];
      env: Record<string, string>;
      /** What OTEL_EXPORTER_OTLP_ENDPOINT takes (OTLP/HTTP base URL). */
      otlpEndpoint: string;
      uiUrl: string;
      /** Answers 200 once Jaeger is up (its healthcheckv2 extension). */
      healthUrl: string;
    };

/** The Jaeger version scripts/lib.sh builds (its `JAEGER_VERSION=`). */
export function jaegerVersion(root: string): string {
  const lib = readFileSync(join(root, 'scripts', 'lib.sh'), 'utf8');
  const m = /^JAEGER_VERSION=(\S+)$/m.exec(lib);
  if (!m) throw new Error('scripts/lib.sh sets no JAEGER_VERSION');
  return m[1]!;
}

/**
 * The Jaeger binary's path as scripts/lib.sh's `jaeger_bin` gives it
 * (`$SLUICE_CACHE/jaeger-$JAEGER_VERSION/jaeger`, SLUICE_CACHE default `$HOME/.cache/sluice`), or
 * `JAEGER_BIN` when set.
 */
export function jaegerBinPath(root: string, env: NodeJS.ProcessEnv): string {
  if (env['JAEGER_BIN']) return env['JAEGER_BIN'];
  const cache = env['SLUICE_CACHE'] || join(env['HOME'] || '/root', '.cache', 'sluice');
  return join(cache, `jaeger-${jaegerVersion(root)}`, 'jaeger');
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` (bounded: 500 ms). */
export function loopbackPortAnswers(port: number): Promise<boolean> {
  return tcpAnswers('127.0.0.1', port);
}

/** Whether something accepts TCP connections at `host`:`port` (bounded: 500 ms). */
export function tcpAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const portOf = (raw: string | undefined, fallback: number) => {
  const n = Number(raw);
  return Number.isInteger(n) && n > 0 && n < 65_536 ? n : fallback;
};

export interface PlanJaegerOptions {
  /** The checkout (scripts/lib.sh, infra/jaeger/config.yaml). */
  root: string;
  /** The caller's environment: tracing settings, JAEGER_BIN, SLUICE_CACHE, JAEGER_*_PORT. */
  env: NodeJS.ProcessEnv;
  /** Default {@link loopbackPortAnswers}. */
  portAnswers?: (port: number) => Promise<boolean>;
}

/**
 * Decides whether `npm start` starts Jaeger: not when tracing is off or already exported elsewhere
 * (OTEL_SDK_DISABLED, OTEL_EXPORTER_OTLP_ENDPOINT), not when its OTLP or UI port already answers, not
 * when the binary is not built; else how to start it. The ports are infra/jaeger/config.yaml's,
 * overridden by the same JAEGER_*_PORT variables it reads.
 */
export async function planJaeger(opts: PlanJaegerOptions): Promise<JaegerPlan> {
  const { root, env } = opts;
  const answers = opts.portAnswers ?? loopbackPortAnswers;
  if (env['OTEL_SDK_DISABLED'] === 'true')
    return { kind: 'skip', note: 'Jaeger not started: tracing is off (OTEL_SDK_DISABLED=true)' };
  const own = env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  if (own)
    return {
      kind: 'skip',
      note: `Jaeger not started: spans go to ${own} (OTEL_EXPORTER_OTLP_ENDPOINT)`,
    };
  const otlpPort = portOf(env['JAEGER_OTLP_HTTP_PORT'], JAEGER_DEFAULT_PORTS.otlpHttp);
  const queryPort = portOf(env['JAEGER_QUERY_HTTP_PORT'], JAEGER_DEFAULT_PORTS.query);
  const healthPort = portOf(env['JAEGER_HEALTH_PORT'], JAEGER_DEFAULT_PORTS.health);
  const otlpEndpoint = `http://127.0.0.1:${otlpPort}`;
  const uiUrl = `http://127.0.0.1:${queryPort}`;
  const [otlpBusy, queryBusy] = await Promise.all([answers(otlpPort), answers(queryPort)]);
  if (otlpBusy || queryBusy) {
    const busy = [queryBusy && queryPort, otlpBusy && otlpPort].filter(Boolean).join(' and ');
    return {
      kind: 'running',
      note: `Jaeger not started: 127.0.0.1:${busy} already answers (a Jaeger of an earlier run?)${otlpBusy ? `; spans go to ${otlpEndpoint}` : ''}`,
      ...(otlpBusy && { otlpEndpoint }),
      ...(queryBusy && { uiUrl }),
    };
  }
  const bin = jaegerBinPath(root, env);
  if (!existsSync(bin))
    return {
      kind: 'skip',
      note: `Jaeger not started: ${bin} is not built (once: source scripts/lib.sh && build_jaeger)`,
    };
  return {
    kind: 'start',
    command: bin,
    args: ['--config', join(root, 'infra', 'jaeger', 'config.yaml')],
    env: { JAEGER_LISTEN_HOST: '127.0.0.1', JAEGER_LOG_LEVEL: env['JAEGER_LOG_LEVEL'] || 'warn' },
    otlpEndpoint,
    uiUrl,
    healthUrl: `http://127.0.0.1:${healthPort}/status`,
  };
}

/**
 * Spawns the Jaeger of a `start` plan as `npm start` spawns its other children: its own process group
 * (detached, so a terminal's Ctrl-C reaches only the supervisor), output piped, over `baseEnv`.
 */
export function spawnJaeger(
  plan: Extract<JaegerPlan, { kind: 'start' }>,
  baseEnv: NodeJS.ProcessEnv,
): ChildProcess {
  return spawn(plan.command, plan.args, {
    env: { ...baseEnv, ...plan.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
}

/**
 * Waits until the plan's health URL answers 200 (polling every 200 ms), the process exits, or
 * `deadline` (epoch ms) passes; true when it answered.
 */
export async function waitJaegerHealthy(
  plan: Extract<JaegerPlan, { kind: 'start' }>,
  proc: ChildProcess,
  deadline: number,
): Promise<boolean> {
  while (Date.now() < deadline && proc.exitCode === null && proc.signalCode === null) {
    const ok = await fetch(plan.healthUrl, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

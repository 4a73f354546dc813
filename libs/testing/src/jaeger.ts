// A Jaeger v2 of one test on loopback: the binary scripts/lib.sh builds once from the Go module proxy
// (build_jaeger), run with infra/jaeger/config.yaml (OTLP receivers, traces in memory, query API) on
// free ports. Services export to `otlpHttpUrl` (OTEL_EXPORTER_OTLP_ENDPOINT); tests read traces back
// through Jaeger's HTTP query API, as an operator's UI does.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort, portOpen } from './servers';
import { waitFor } from './wait';

const ROOT = join(__dirname, '..', '..', '..');
const LIB = join(ROOT, 'scripts', 'lib.sh');
/** The Jaeger configuration of compose, `npm start` and the tests (every port from the environment). */
export const JAEGER_CONFIG = join(ROOT, 'infra', 'jaeger', 'config.yaml');

/**
 * Path of the Jaeger v2 binary: `JAEGER_BIN` when set, else the one scripts/lib.sh builds into the
 * cache (the first call builds it: about 8 minutes and 2 GB of Go modules, once per machine).
 */
export function jaegerBin(): string {
  const own = process.env['JAEGER_BIN'];
  if (own) return own;
  return execFileSync('bash', ['-c', 'source "$1" && build_jaeger && jaeger_bin', '_', LIB], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 45 * 60_000,
  }).trim();
}

/** A span as Jaeger's HTTP query API returns it (`/api/traces`), with its service name resolved. */
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  /** `serviceName` of the span's process (the exporter's `service.name`). */
  service: string;
  /** The parent span id (a CHILD_OF reference), if any. */
  parentSpanID?: string;
  /** Span links (FOLLOWS_FROM references in Jaeger's model), as span ids. */
  links: string[];
  /** Span kind (`server`, `client`, `producer`, `consumer`, `internal`). */
  kind: string;
  tags: Record<string, unknown>;
}

/** One trace as Jaeger's query API returns it. */
export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
}

/** A Jaeger v2 process of one test. */
export interface PrivateJaeger {
  /** OTLP/HTTP receiver: what OTEL_EXPORTER_OTLP_ENDPOINT takes. */
  readonly otlpHttpUrl: string;
  /** OTLP/gRPC receiver. */
  readonly otlpGrpcUrl: string;
  /** Query API and UI: `<queryUrl>/api/traces?service=…`, `<queryUrl>/search`. */
  readonly queryUrl: string;
  /** The process's output so far (bounded). */
  readonly lines: string[];
  /** Services that reported spans (`/api/services`). */
  services(): Promise<string[]>;
  /** Traces with a span of `service` (`/api/traces?service=…`), newest first. */
  traces(service: string, opts?: { limit?: number; lookback?: string }): Promise<JaegerTrace[]>;
  /** One trace by id, or undefined while Jaeger has none of its spans. */
  trace(traceId: string): Promise<JaegerTrace | undefined>;
  /** SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

interface RawSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  processID: string;
  references?: Array<{ refType: string; traceID: string; spanID: string }>;
  tags?: Array<{ key: string; value: unknown }>;
}
interface RawTrace {
  traceID: string;
  spans: RawSpan[];
  processes: Record<string, { serviceName: string }>;
}

function toTrace(raw: RawTrace): JaegerTrace {
  return {
    traceID: raw.traceID,
    spans: raw.spans.map((s) => {
      const tags = Object.fromEntries((s.tags ?? []).map((t) => [t.key, t.value]));
      const parent = s.references?.find((r) => r.refType === 'CHILD_OF');
      return {
        traceID: s.traceID,
        spanID: s.spanID,
        operationName: s.operationName,
        service: raw.processes[s.processID]?.serviceName ?? '',
        ...(parent && { parentSpanID: parent.spanID }),
        links: (s.references ?? [])
          .filter((r) => r.refType === 'FOLLOWS_FROM')
          .map((r) => r.spanID),
        kind: typeof tags['span.kind'] === 'string' ? tags['span.kind'] : 'internal',
        tags,
      };
    }),
  };
}

const MAX_LINES = 2_000;

/**
 * Starts a private Jaeger v2 (in-memory storage) on free loopback ports and waits until its health
 * check, OTLP/HTTP receiver and query API answer. Builds the binary first when it is not cached.
 */
export async function startJaeger(): Promise<PrivateJaeger> {
  const bin = jaegerBin();
  const ports: number[] = [];
  while (ports.length < 6) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const [grpc, http, query, queryGrpc, health, metrics] = ports as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const env = {
    ...process.env,
    JAEGER_LISTEN_HOST: '127.0.0.1',
    JAEGER_OTLP_GRPC_PORT: String(grpc),
    JAEGER_OTLP_HTTP_PORT: String(http),
    JAEGER_QUERY_HTTP_PORT: String(query),
    JAEGER_QUERY_GRPC_PORT: String(queryGrpc),
    JAEGER_HEALTH_PORT: String(health),
    JAEGER_METRICS_PORT: String(metrics),
    JAEGER_LOG_LEVEL: 'warn',
  };
  const proc: ChildProcess = spawn(bin, ['--config', JAEGER_CONFIG], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const onData = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split('\n'))
      if (line && lines.length < MAX_LINES) lines.push(line);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const queryUrl = `http://127.0.0.1:${query}`;
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  try {
    await waitFor(
      'Jaeger healthy, its OTLP receiver and query API listening',
      async () => {
        if (proc.exitCode !== null)
          throw new Error(`jaeger exited (${proc.exitCode}):\n${lines.slice(-20).join('\n')}`);
        const ok = await fetch(`http://127.0.0.1:${health}/status`).then(
          (r) => r.ok,
          () => false,
        );
        return ok && (await portOpen(http)) && (await portOpen(query));
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const get = async <T>(path: string): Promise<T | undefined> => {
    const res = await fetch(`${queryUrl}${path}`);
    if (res.status === 404) return undefined;
    if (!res.ok) throw new Error(`Jaeger ${path}: HTTP ${res.status} ${await res.text()}`);
    return ((await res.json()) as { data: T }).data;
  };
  return {
    otlpHttpUrl: `http://127.0.0.1:${http}`,
    otlpGrpcUrl: `http://127.0.0.1:${grpc}`,
    queryUrl,
    lines,
    async services() {
      return (await get<string[] | null>('/api/services')) ?? [];
    },
    async traces(service, opts = {}) {
      const q = new URLSearchParams({
        service,
        limit: String(opts.limit ?? 100),
        lookback: opts.lookback ?? '1h',
      });
      const data = await get<RawTrace[] | null>(`/api/traces?${q.toString()}`);
      return (data ?? []).map(toTrace);
    },
    async trace(traceId) {
      const data = await get<RawTrace[] | null>(`/api/traces/${traceId}`);
      return data?.[0] ? toTrace(data[0]) : undefined;
    },
    stop,
  };
}

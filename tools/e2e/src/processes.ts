// The services as `npm start` runs them (tools/dev/up.ts): one `node --import tsx --import <preload>
// apps/<name>/src/main.ts` process each, from the repository root, plus one HTTP receiver on
// loopback that is both the OTLP/HTTP trace collector and the webhook endpoint.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { topology, type Topology } from '@sluice/contracts';
import { uniqueId, type NatsFixture } from '@sluice/testing';

export const ROOT = join(__dirname, '..', '..', '..');
/** The instrumentation preload, as tools/dev/up.ts passes it. */
export const PRELOAD = './libs/observability/src/preload.ts';

/** One service process. */
export interface Service {
  name: string;
  proc: ChildProcess;
  /** Every output line so far (bounded). */
  lines: string[];
  /** The first JSON log line (past or future) whose `msg` is `msg`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the process is gone. */
  stop(): Promise<void>;
}

const MAX_LINES = 20_000;

/** Starts `apps/<name>/src/main.ts` with the preload, the caller's env without OTEL_*, then `env`. */
export function startService(name: string, env: Record<string, string>): Service {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')),
  );
  const proc = spawn(
    process.execPath,
    ['--enable-source-maps', '--import', 'tsx', '--import', PRELOAD, `apps/${name}/src/main.ts`],
    {
      cwd: ROOT,
      env: { ...base, TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.base.json'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  const waiters: Array<{ msg: string; resolve: (r: Record<string, unknown>) => void }> = [];
  const parse = (line: string): Record<string, unknown> | undefined => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  };
  let partial = '';
  const onData = (buf: Buffer) => {
    const parts = (partial + buf.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (!line) continue;
      if (lines.length < MAX_LINES) lines.push(line);
      const rec = parse(line);
      if (!rec) continue;
      for (const w of [...waiters]) {
        if (rec['msg'] === w.msg) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(rec);
        }
      }
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  return {
    name,
    proc,
    lines,
    waitForLog(msg, timeoutMs = 60_000) {
      const seen = lines.map(parse).find((r) => r?.['msg'] === msg);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () =>
            reject(
              new Error(
                `${name}: no "${msg}" within ${timeoutMs} ms; last lines:\n${lines.slice(-20).join('\n')}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({ msg, resolve: (r) => (clearTimeout(t), resolve(r)) });
        void exited.then(() => {
          clearTimeout(t);
          reject(
            new Error(
              `${name} exited before "${msg}"; last lines:\n${lines.slice(-20).join('\n')}`,
            ),
          );
        });
      });
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** The archiver's lease bucket stream in namespace `ns` (apps/archiver/src/lease.ts `leaseBucket`). */
export const archiverLeaseStream = (ns: string) => `KV_${ns}_archiver-lease_archiver`;

/**
 * A fresh namespace for a whole pipeline: its topology, with every stream the services create in it
 * (the platform's, the webhook dispatcher's and the archiver's lease bucket) tracked by `nats` for
 * deletion after the spec.
 */
export function pipelineNamespace(nats: NatsFixture, prefix: string): Topology {
  const ns = uniqueId(prefix);
  const topo = topology(ns);
  const upper = ns.toUpperCase().replace(/-/g, '_');
  for (const s of [
    ...Object.values(topo.streams).map((x) => x.name),
    `${upper}_WEBHOOK_DELIVERIES`,
    `${upper}_WEBHOOK_OPS`,
    `${upper}_ALERTS`,
    archiverLeaseStream(ns),
  ])
    nats.track(s);
  return topo;
}

/** One webhook request the receiver got. */
export interface Hook {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** The receiver: OTLP/HTTP JSON exports on `/v1/traces`, webhooks (answered 204) on any other path. */
export interface Receiver {
  url: string;
  /** Bodies of the trace exports, parsed. */
  traces: unknown[];
  hooks: Hook[];
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const traces: unknown[] = [];
  const hooks: Hook[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.url === '/v1/traces') {
        traces.push(JSON.parse(body));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } else {
        hooks.push({ path: req.url ?? '', headers: req.headers, body });
        res.writeHead(204).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    traces,
    hooks,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean };

/** A span as exported in OTLP/HTTP JSON, with its service and instrumentation scope added. */
export interface Span {
  service: string;
  scope: string;
  name: string;
  /** OTLP's: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, string>;
  links: Array<{ traceId: string; spanId: string }>;
}

export const KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;

const values = (
  list: Array<{ key: string; value: AnyValue }> | undefined,
): Record<string, string> =>
  Object.fromEntries(
    (list ?? []).map((a) => [
      a.key,
      String(a.value.stringValue ?? a.value.intValue ?? a.value.boolValue),
    ]),
  );

/** Every span received so far. */
export function spansOf(receiver: Receiver): Span[] {
  const out: Span[] = [];
  for (const body of receiver.traces as Array<{
    resourceSpans: Array<{
      resource: { attributes: Array<{ key: string; value: AnyValue }> };
      scopeSpans: Array<{
        scope?: { name: string };
        spans: Array<
          Omit<Span, 'service' | 'scope' | 'attributes' | 'links'> & {
            attributes?: Array<{ key: string; value: AnyValue }>;
            links?: Span['links'];
          }
        >;
      }>;
    }>;
  }>) {
    for (const rs of body.resourceSpans) {
      const service = values(rs.resource.attributes)['service.name'] ?? '';
      for (const ss of rs.scopeSpans)
        for (const s of ss.spans)
          out.push({
            ...s,
            service,
            scope: ss.scope?.name ?? '',
            attributes: values(s.attributes),
            links: s.links ?? [],
          });
    }
  }
  return out;
}

/** What one `sluice` command did. */
export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Starts the operator CLI (`apps/cli/src/main.ts`, as `apps/cli/bin/sluice` runs it) with the
 * caller's env without OTEL_*, then `env`; `done` resolves when it exits.
 */
export function startCli(
  args: string[],
  env: Record<string, string>,
): { proc: ChildProcess; output: () => CliRun; done: Promise<CliRun> } {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')),
  );
  const proc = spawn(process.execPath, ['--import', 'tsx', 'apps/cli/src/main.ts', ...args], {
    cwd: ROOT,
    env: { ...base, TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.base.json'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on(
    'data',
    (b: Buffer) => (stdout = (stdout + b.toString('utf8')).slice(-1_000_000)),
  );
  proc.stderr!.on(
    'data',
    (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-1_000_000)),
  );
  const output = (): CliRun => ({
    code: proc.exitCode,
    signal: proc.signalCode,
    stdout,
    stderr,
  });
  const done = new Promise<CliRun>((resolve) => proc.on('exit', () => resolve(output())));
  return { proc, output, done };
}

/** Runs `sluice <args>` to the end (bounded: killed after `timeoutMs`). */
export async function runCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<CliRun> {
  const cli = startCli(args, env);
  const t = setTimeout(() => cli.proc.kill('SIGKILL'), timeoutMs);
  try {
    return await cli.done;
  } finally {
    clearTimeout(t);
  }
}

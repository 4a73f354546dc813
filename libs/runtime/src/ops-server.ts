import { createServer, type Server } from 'node:http';
import { listenHttp } from './http-listen';
import type { Registry } from 'prom-client';

/** A named readiness check; `false` or a throw marks the service unready. */
export type ReadinessCheck = () => boolean | Promise<boolean>;

export interface OpsServerOptions {
  /** Port; 0 picks a free one. */
  port: number;
  /** Default `0.0.0.0`. */
  host?: string;
  registry: Registry;
  /** `/healthz`: is the process worth keeping (not failed)? */
  live: () => boolean;
  /** `/readyz`: every check must pass. */
  ready: Record<string, ReadinessCheck>;
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

async function runChecks(checks: Record<string, ReadinessCheck>): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      try {
        out[name] = await Promise.race([
          Promise.resolve(check()),
          new Promise<boolean>((r) => setTimeout(() => r(false), 2_000).unref()),
        ]);
      } catch {
        out[name] = false;
      }
    }),
  );
  return out;
}

/** Serves `/healthz`, `/readyz` (JSON per check) and `/metrics` (Prometheus text). */
export async function startOpsServer(opts: OpsServerOptions): Promise<OpsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET') return send(405, '{"error":"GET only"}');
    if (path === '/healthz') {
      const live = opts.live();
      return send(live ? 200 : 503, JSON.stringify({ status: live ? 'ok' : 'failed' }));
    }
    if (path === '/readyz') {
      runChecks(opts.ready).then(
        (checks) => {
          const ok = Object.values(checks).every(Boolean);
          send(ok ? 200 : 503, JSON.stringify({ status: ok ? 'ready' : 'not ready', checks }));
        },
        () => send(503, '{"status":"not ready"}'),
      );
      return;
    }
    if (path === '/metrics') {
      opts.registry.metrics().then(
        (text) => send(200, text, opts.registry.contentType),
        (err: Error) => send(500, JSON.stringify({ error: err.message })),
      );
      return;
    }
    send(404, '{"error":"not found"}');
  });
  return listenHttp(server, opts.port, opts.host ?? '0.0.0.0');
}

// The console's one HTTP port: the built pages (public: they hold no data), and behind the bearer
// token: `/api/session`, the `/api/stream` of pipeline samples, `/api/query/v1/...` forwarded to the
// query API with the caller's own token (which scopes it to its regions), and `/api/webhooks...`
// through the admin API (a `*` token only).
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { ApiProblemError, ApiTransportError, type AdminClient } from '@sluice/admin-client';
import { BearerAuthenticator, HttpProblem, type HashedToken, type Principal } from '@sluice/http';
import type { Logger } from '@sluice/observability';
import { listenHttp, type ListeningServer } from '@sluice/runtime';
import type { DetectionWatcher } from './detections';
import type { StreamHub } from './stream';

const REALM = 'console';
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
};
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  // uPlot sizes its elements with style attributes; nothing else inline.
  'content-security-policy':
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
};
const ID = /^[A-Za-z0-9_-]{1,128}$/;

export interface ConsoleServerOptions {
  host: string;
  port: number;
  tokens: readonly HashedToken[];
  /** Folder of the built pages; `undefined` serves a page saying how to build them. */
  staticDir: string | undefined;
  queryUrl: string;
  /** Undefined without WEBHOOK_ADMIN_TOKEN. */
  admin: AdminClient | undefined;
  hub: StreamHub;
  detections: DetectionWatcher;
  /** The latest sample as an SSE frame, for a client that just connected. */
  latestFrame(): string | undefined;
  log: Logger;
  /** Deadline of a forwarded request. Default 15 s. */
  upstreamTimeoutMs?: number;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers = {}): void {
  res.writeHead(status, {
    'content-type': status >= 400 ? 'application/problem+json' : 'application/json',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) throw new HttpProblem(413, 'body too large');
    chunks.push(c);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpProblem(400, 'body is not JSON', { code: 'invalid_body' });
  }
}

/** Starts the console's HTTP server. */
export async function startConsoleServer(opts: ConsoleServerOptions): Promise<ListeningServer> {
  const authn = new BearerAuthenticator(opts.tokens);
  const timeout = opts.upstreamTimeoutMs ?? 15_000;

  const requireAdmin = (p: Principal): AdminClient => {
    if (p.claims !== '*') throw new HttpProblem(403, 'webhook administration needs a "*" token');
    if (!opts.admin)
      throw new HttpProblem(503, 'the console has no WEBHOOK_ADMIN_TOKEN: webhooks are not shown', {
        code: 'admin_unconfigured',
      });
    return opts.admin;
  };

  async function forwardQuery(req: IncomingMessage, res: ServerResponse, path: string) {
    const target = new URL(path.replace(/^\/api\/query/, ''), opts.queryUrl);
    const upstream = await fetch(target, {
      headers: { authorization: req.headers.authorization ?? '', accept: 'application/json' },
      signal: AbortSignal.timeout(timeout),
    }).catch((err: unknown) => {
      throw new HttpProblem(503, `query API unreachable: ${(err as Error).message}`);
    });
    res.writeHead(upstream.status, {
      'content-type': upstream.headers.get('content-type') ?? 'application/json',
      'cache-control': 'no-store',
    });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  }

  async function webhooks(admin: AdminClient) {
    const subs = await admin.list();
    return Promise.all(
      subs.map(async (s) => {
        const [attempts, deadLetters] = await Promise.all([
          admin.attempts(s.id, { limit: 10 }),
          admin.deadLetters(s.id, { includeRedriven: 'true' }),
        ]);
        return {
          subscription: s,
          attempts,
          deadWaiting: deadLetters.filter((d) => !d.redrivenAt).length,
          deadLetters: deadLetters.slice(0, 10),
        };
      }),
    );
  }

  async function api(req: IncomingMessage, res: ServerResponse, path: string) {
    const principal = authn.authenticate(req.headers.authorization, REALM);
    const method = req.method ?? 'GET';
    if (path === '/api/session' && method === 'GET')
      return sendJson(res, 200, {
        name: principal.name,
        regions: principal.claims === '*' ? '*' : [...principal.claims],
        admin: principal.claims === '*' && opts.admin !== undefined,
      });
    if (path === '/api/stream' && method === 'GET') {
      if (opts.hub.full) throw new HttpProblem(503, 'too many open streams');
      opts.hub.add(res, opts.latestFrame());
      return;
    }
    if (path === '/api/detections' && method === 'GET') {
      const all = opts.detections.recent();
      // A regional token sees its regions' cameras only.
      const scope = principal.claims;
      if (scope !== '*') all.streams = all.streams.filter((s) => scope.has(s.region));
      return sendJson(res, 200, all);
    }
    if (path.startsWith('/api/query/v1/') && method === 'GET')
      return forwardQuery(req, res, req.url!);
    if (path === '/api/webhooks' && method === 'GET')
      return sendJson(res, 200, { webhooks: await webhooks(requireAdmin(principal)) });
    const m = /^\/api\/webhooks\/([^/]+)\/(redrive|rotate)$/.exec(path);
    if (m && method === 'POST') {
      const admin = requireAdmin(principal);
      const id = decodeURIComponent(m[1]!);
      if (!ID.test(id)) throw new HttpProblem(400, 'bad subscription id', { parameter: 'id' });
      const body = (await readJson(req)) as { since?: unknown };
      if (m[2] === 'redrive') {
        const since = typeof body.since === 'string' ? body.since : undefined;
        return sendJson(res, 200, await admin.redrive(id, since));
      }
      return sendJson(res, 200, { secret: await admin.rotateSecret(id) });
    }
    throw new HttpProblem(404, `no route ${method} ${path}`);
  }

  function serveStatic(res: ServerResponse, path: string) {
    if (!opts.staticDir) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(
        'The console pages are not built: run `npx nx run console:build` (npm start does it).\n',
      );
      return;
    }
    const rel = normalize(decodeURIComponent(path)).replace(/^([/\\])+/, '');
    let file = join(opts.staticDir, rel);
    if (!file.startsWith(opts.staticDir + sep) && file !== opts.staticDir) file = '';
    if (!file || !existsSync(file) || !statSync(file).isFile())
      file = join(opts.staticDir, 'index.html'); // the pages route on the client (#/...)
    const immutable = rel.startsWith(`assets${sep}`) || rel.startsWith('assets/');
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      ...SECURITY_HEADERS,
    });
    createReadStream(file).pipe(res);
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://console').pathname;
    if (!path.startsWith('/api/')) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      serveStatic(res, path);
      return;
    }
    api(req, res, path).catch((err: unknown) => {
      let problem: HttpProblem;
      if (err instanceof HttpProblem) problem = err;
      else if (err instanceof ApiProblemError)
        problem = new HttpProblem(err.status, err.problem.detail, { code: err.code });
      else if (err instanceof ApiTransportError) problem = new HttpProblem(503, err.message);
      else {
        opts.log.error({ err, path }, 'console request failed');
        problem = new HttpProblem(500, 'internal error');
      }
      if (res.headersSent) return void res.destroy();
      sendJson(res, problem.status, problem.toProblem(), problem.options.headers ?? {});
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 0; // the event stream stays open
  return listenHttp(server, opts.port, opts.host);
}

/** The built pages: CONSOLE_STATIC_DIR, else dist/apps/console/public found from here or the cwd. */
export function findStaticDir(configured: string | undefined): string | undefined {
  if (configured) return normalize(configured).replace(/[/\\]+$/, '');
  for (const dir of [
    join(__dirname, 'public'), // the bundle: dist/apps/console/main.js beside public/
    join(__dirname, '..', '..', '..', 'dist', 'apps', 'console', 'public'), // the sources
    join(process.cwd(), 'dist', 'apps', 'console', 'public'),
  ])
    if (existsSync(join(dir, 'index.html'))) return dir;
  return undefined;
}

import { listenHttp } from '@sluice/runtime';
// The admin HTTP API: subscriptions, secret rotation, test events, attempt log, DLQ and redrive.
// Every route but /openapi.json needs `Authorization: Bearer <WEBHOOK_ADMIN_TOKEN>`.
import { randomUUID, timingSafeEqual, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '@sluice/observability';
import type { z } from 'zod';
import { createSubscriptionSchema, redriveSchema, rotateSecretSchema, updateSubscriptionSchema } from './api-schemas';
import { ApiError, SsrfRefusedError } from './errors';
import { newDelivery, type DeliveryPublisher } from './matcher';
import { openApiDocument } from './openapi';
import { testBody } from './payloads';
import { generateSecret, secretKey } from './signing';
import type { SsrfPolicy } from './ssrf';
import type { DeadLetterRecord, Store, Subscription } from './store';
import type { SubscriptionCache } from './subscription-cache';

export interface AdminApiOptions {
  port: number;
  host: string;
  token: string;
  store: Store;
  cache: SubscriptionCache;
  publisher: DeliveryPublisher;
  ssrf: SsrfPolicy;
  requireHttps: boolean;
  logger: Logger;
}

export interface AdminApi {
  readonly port: number;
  close(): Promise<void>;
}

const MAX_BODY = 1024 * 1024;
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

function view(s: Subscription) {
  return {
    id: s.id,
    url: s.url,
    description: s.description,
    filter: s.filter,
    enabled: s.enabled,
    disabledReason: s.disabledReason,
    rateLimitPerS: s.rateLimitPerS,
    maxConcurrency: s.maxConcurrency,
    failingSince: s.failingSince,
    secretCount: s.secrets.length,
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  };
}

function deadView(d: DeadLetterRecord) {
  const { delivery, subscriptionId: _s, ...rest } = d;
  return { ...rest, body: delivery.body };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ApiError(413, `body larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new ApiError(400, `body is not JSON: ${(err as Error).message}`);
  }
}

function parse<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new ApiError(400, 'invalid request body', r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })));
  }
  return r.data;
}

export async function startAdminApi(o: AdminApiOptions): Promise<AdminApi> {
  const tokenHash = createHash('sha256').update(o.token).digest();
  const authorized = (req: IncomingMessage) => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    return !!m && timingSafeEqual(createHash('sha256').update(m[1]!).digest(), tokenHash);
  };

  async function checkUrl(raw: string): Promise<string> {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new ApiError(400, `url is not a valid absolute URL: ${raw}`);
    }
    if (u.protocol !== 'https:' && (o.requireHttps || u.protocol !== 'http:')) throw new ApiError(400, `url must be ${o.requireHttps ? 'https' : 'http or https'}`);
    if (u.username || u.password) throw new ApiError(400, 'url must not carry credentials');
    try {
      await o.ssrf.resolve(u.hostname);
    } catch (err) {
      if (err instanceof SsrfRefusedError) throw new ApiError(422, err.message);
      throw err;
    }
    return u.toString();
  }

  async function subscriptionOr404(id: string): Promise<Subscription> {
    const s = await o.store.getSubscription(id);
    if (!s) throw new ApiError(404, `subscription ${id} not found`);
    return s;
  }

  async function redrive(sub: Subscription, dead: DeadLetterRecord): Promise<void> {
    await o.publisher.publish({ ...dead.delivery, generation: dead.generation + 1 });
    await o.store.markRedriven(dead.webhookId);
    o.logger.info({ subscriptionId: sub.id, webhookId: dead.webhookId, generation: dead.generation + 1 }, 'dead delivery redriven');
  }

  const requireEnabled = (s: Subscription) => {
    if (!s.enabled) throw new ApiError(409, `subscription ${s.id} is disabled (${s.disabledReason ?? 'no reason'}); enable it first`);
  };

  type Handler = (req: IncomingMessage, params: string[], query: URLSearchParams) => Promise<[number, unknown?]>;
  const routes: Array<[string, RegExp, Handler]> = [
    [
      'GET',
      /^\/v1\/subscriptions$/,
      async () => [200, (await o.store.listSubscriptions()).map(view)],
    ],
    [
      'POST',
      /^\/v1\/subscriptions$/,
      async (req) => {
        const body = parse(createSubscriptionSchema, await readJson(req));
        const url = await checkUrl(body.url);
        const secret = body.secret ?? generateSecret();
        try {
          secretKey(secret);
        } catch (err) {
          throw new ApiError(400, (err as Error).message);
        }
        const sub = await o.store.createSubscription({ ...body, url, secret });
        o.cache.put(sub);
        return [201, { ...view(sub), secret }];
      },
    ],
    [
      'GET',
      new RegExp(`^/v1/subscriptions/(${UUID})$`),
      async (_req, [id]) => [200, view(await subscriptionOr404(id!))],
    ],
    [
      'PATCH',
      new RegExp(`^/v1/subscriptions/(${UUID})$`),
      async (req, [id]) => {
        const body = parse(updateSubscriptionSchema, await readJson(req));
        if (body.url !== undefined) body.url = await checkUrl(body.url);
        const sub = await o.store.updateSubscription(id!, body);
        if (!sub) throw new ApiError(404, `subscription ${id} not found`);
        o.cache.put(sub);
        return [200, view(sub)];
      },
    ],
    [
      'DELETE',
      new RegExp(`^/v1/subscriptions/(${UUID})$`),
      async (_req, [id]) => {
        if (!(await o.store.deleteSubscription(id!))) throw new ApiError(404, `subscription ${id} not found`);
        o.cache.remove(id!);
        return [204];
      },
    ],
    [
      'POST',
      new RegExp(`^/v1/subscriptions/(${UUID})/secrets/rotate$`),
      async (req, [id]) => {
        const body = parse(rotateSecretSchema, await readJson(req));
        const secret = body.secret ?? generateSecret();
        try {
          secretKey(secret);
        } catch (err) {
          throw new ApiError(400, (err as Error).message);
        }
        if (!(await o.store.rotateSecret(id!, secret, body.graceSeconds * 1000))) throw new ApiError(404, `subscription ${id} not found`);
        o.cache.put(await subscriptionOr404(id!));
        return [200, { secret }];
      },
    ],
    [
      'POST',
      new RegExp(`^/v1/subscriptions/(${UUID})/test$`),
      async (_req, [id]) => {
        const sub = await subscriptionOr404(id!);
        requireEnabled(sub);
        const d = newDelivery(sub.id, `test:${randomUUID()}`, testBody(sub.id));
        await o.publisher.publish(d);
        return [202, { webhookId: d.webhookId }];
      },
    ],
    [
      'GET',
      new RegExp(`^/v1/subscriptions/(${UUID})/attempts$`),
      async (_req, [id], q) => {
        await subscriptionOr404(id!);
        const limit = Math.min(1000, Math.max(1, Number(q.get('limit') ?? 100) || 100));
        return [200, await o.store.listAttempts(id!, limit, q.get('webhookId') ?? undefined)];
      },
    ],
    [
      'GET',
      new RegExp(`^/v1/subscriptions/(${UUID})/dlq$`),
      async (_req, [id], q) => {
        await subscriptionOr404(id!);
        const since = q.get('since') ? new Date(q.get('since')!) : undefined;
        if (since && Number.isNaN(since.getTime())) throw new ApiError(400, 'since must be an ISO 8601 time');
        const rows = await o.store.listDeadLetters(id!, { ...(since ? { since } : {}), includeRedriven: q.get('includeRedriven') === 'true', limit: 1000 });
        return [200, rows.map(deadView)];
      },
    ],
    [
      'POST',
      new RegExp(`^/v1/subscriptions/(${UUID})/dlq/redrive$`),
      async (req, [id]) => {
        const body = parse(redriveSchema, await readJson(req));
        const sub = await subscriptionOr404(id!);
        requireEnabled(sub);
        let redriven = 0;
        // Bounded per call; the answer says whether more remain.
        for (let page = 0; page < 10; page++) {
          const rows = await o.store.listDeadLetters(sub.id, { ...(body.since ? { since: new Date(body.since) } : {}), limit: 1000 });
          for (const d of rows) {
            await redrive(sub, d);
            redriven++;
          }
          if (rows.length < 1000) return [202, { redriven, more: false }];
        }
        return [202, { redriven, more: true }];
      },
    ],
    [
      'POST',
      new RegExp(`^/v1/subscriptions/(${UUID})/dlq/([A-Za-z0-9_:.-]{1,200})/redrive$`),
      async (_req, [id, webhookId]) => {
        const sub = await subscriptionOr404(id!);
        requireEnabled(sub);
        const dead = await o.store.getDeadLetter(sub.id, webhookId!);
        if (!dead) throw new ApiError(404, `no dead delivery ${webhookId} for subscription ${id}`);
        await redrive(sub, dead);
        return [202, { redriven: 1, webhookId }];
      },
    ],
  ];

  const send = (res: ServerResponse, status: number, body?: unknown) => {
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    (async () => {
      if (req.method === 'GET' && url.pathname === '/openapi.json') return send(res, 200, openApiDocument());
      const matching = routes.filter(([, re]) => re.test(url.pathname));
      if (matching.length === 0) throw new ApiError(404, `no route ${url.pathname}`);
      if (!authorized(req)) throw new ApiError(401, 'missing or wrong bearer token');
      const route = matching.find(([method]) => method === req.method);
      if (!route) throw new ApiError(405, `${req.method} not allowed on ${url.pathname}`);
      const params = route[1].exec(url.pathname)!.slice(1);
      const [status, body] = await route[2](req, params, url.searchParams);
      send(res, status, body);
    })().catch((err: unknown) => {
      if (err instanceof ApiError) return send(res, err.status, { error: err.message, ...(err.details ? { details: err.details } : {}) });
      o.logger.error({ err, path: url.pathname }, 'admin API request failed');
      send(res, 500, { error: 'internal error' });
    });
  });
  return listenHttp(server, o.port, o.host);
}

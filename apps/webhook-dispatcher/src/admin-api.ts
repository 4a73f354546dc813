// The admin HTTP API: subscriptions, secret rotation, test events, attempt log, DLQ and redrive.
// Every route but /openapi.json needs `Authorization: Bearer <WEBHOOK_ADMIN_TOKEN>`; errors are
// application/problem+json; the OpenAPI document is generated from the zod schemas in api-schemas.ts.
import { randomUUID } from 'node:crypto';
import {
  defineRoute,
  HttpProblem,
  sha256Hex,
  startHttpApi,
  type HttpApiDefinition,
} from '@sluice/http';
import type { ServerTls } from '@sluice/config';
import type { Logger } from '@sluice/observability';
import { Registry } from 'prom-client';
import { z } from 'zod';
import {
  attemptSchema,
  createdSubscriptionSchema,
  createSubscriptionSchema,
  deadLetterSchema,
  redriveSchema,
  rotateSecretSchema,
  subscriptionViewSchema,
  updateSubscriptionSchema,
} from './api-schemas';
import { SsrfRefusedError } from './errors';
import { filterSchema } from './filters';
import { newDelivery, type DeliveryPublisher } from './matcher';
import { testBody } from './payloads';
import { generateSecret, secretKey } from './signing';
import type { SsrfPolicy } from './ssrf';
import type { DeadLetterRecord, Store, Subscription } from './store';
import type { SubscriptionCache } from './subscription-cache';

export interface AdminApiOptions {
  port: number;
  host: string;
  /** The bearer token (only its sha256 is kept). */
  token: string;
  store: Store;
  cache: SubscriptionCache;
  publisher: DeliveryPublisher;
  ssrf: SsrfPolicy;
  requireHttps: boolean;
  logger: Logger;
  /** Deadline of one request (receiving and answering it). Default 30 s. */
  requestTimeoutMs?: number;
  /** Largest request body. Default 1 MiB. */
  bodyLimitBytes?: number;
  /** Request metrics (`sluice_http_*`, `api="webhook-admin"`). Default a registry of its own. */
  registry?: Registry;
  /** HTTPS (and mTLS with a client CA): `listenerTls(config, 'WEBHOOK_ADMIN')`. Default plain HTTP. */
  tls?: ServerTls | undefined;
}

export interface AdminApi {
  readonly port: number;
  close(): Promise<void>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const idParams = z.object({
  id: z.string().regex(UUID, 'must be a subscription id (lower-case UUID)'),
});

function view(s: Subscription): z.output<typeof subscriptionViewSchema> {
  return {
    id: s.id,
    url: s.url,
    description: s.description,
    filter: s.filter,
    enabled: s.enabled,
    disabledReason: s.disabledReason,
    rateLimitPerS: s.rateLimitPerS,
    maxConcurrency: s.maxConcurrency,
    failingSince: s.failingSince?.toISOString() ?? null,
    secretCount: s.secrets.length + s.unreadableSecrets,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  };
}

function deadView(d: DeadLetterRecord): z.output<typeof deadLetterSchema> {
  return {
    webhookId: d.webhookId,
    eventType: d.eventType,
    generation: d.generation,
    attempts: d.attempts,
    reason: d.reason as z.output<typeof deadLetterSchema>['reason'],
    lastStatus: d.lastStatus,
    lastError: d.lastError,
    deadAt: d.deadAt.toISOString(),
    redrivenAt: d.redrivenAt?.toISOString() ?? null,
    body: d.delivery.body,
  };
}

/** The admin API as routes, for an HTTP API the runtime serves (see {@link startAdminApi}). */
export function adminApi(
  o: Pick<
    AdminApiOptions,
    'token' | 'store' | 'cache' | 'publisher' | 'ssrf' | 'requireHttps' | 'logger'
  >,
): HttpApiDefinition {
  async function checkUrl(raw: string): Promise<string> {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new HttpProblem(400, `url is not a valid absolute URL: ${raw}`);
    }
    if (u.protocol !== 'https:' && (o.requireHttps || u.protocol !== 'http:'))
      throw new HttpProblem(400, `url must be ${o.requireHttps ? 'https' : 'http or https'}`);
    if (u.username || u.password) throw new HttpProblem(400, 'url must not carry credentials');
    try {
      await o.ssrf.resolve(u.hostname);
    } catch (err) {
      if (err instanceof SsrfRefusedError) throw new HttpProblem(422, err.message);
      throw err;
    }
    return u.toString();
  }

  async function subscriptionOr404(id: string): Promise<Subscription> {
    const s = await o.store.getSubscription(id);
    if (!s) throw new HttpProblem(404, `subscription ${id} not found`);
    return s;
  }

  async function redrive(sub: Subscription, dead: DeadLetterRecord): Promise<void> {
    await o.publisher.publish({ ...dead.delivery, generation: dead.generation + 1 });
    await o.store.markRedriven(dead.webhookId);
    o.logger.info(
      { subscriptionId: sub.id, webhookId: dead.webhookId, generation: dead.generation + 1 },
      'dead delivery redriven',
    );
  }

  const requireEnabled = (s: Subscription) => {
    if (!s.enabled)
      throw new HttpProblem(
        409,
        `subscription ${s.id} is disabled (${s.disabledReason ?? 'no reason'}); enable it first`,
      );
  };

  const checkSecret = (secret: string) => {
    try {
      secretKey(secret);
    } catch (err) {
      throw new HttpProblem(400, (err as Error).message);
    }
  };

  const tags = ['subscriptions'];
  const routes = [
    defineRoute({
      method: 'GET',
      path: '/v1/subscriptions',
      operationId: 'listSubscriptions',
      summary: 'List subscriptions',
      tags,
      response: z.array(subscriptionViewSchema),
      responseDescription: 'Subscriptions',
      handler: async () => (await o.store.listSubscriptions()).map(view),
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/subscriptions',
      operationId: 'createSubscription',
      summary:
        'Create a subscription (the URL is SSRF-checked); the response carries the secret, once',
      tags,
      body: createSubscriptionSchema,
      status: 201,
      response: createdSubscriptionSchema,
      responseDescription: 'Created',
      problems: [422],
      handler: async ({ body }) => {
        const url = await checkUrl(body.url);
        const secret = body.secret ?? generateSecret();
        checkSecret(secret);
        const sub = await o.store.createSubscription({ ...body, url, secret });
        o.cache.put(sub);
        return { ...view(sub), secret };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/subscriptions/{id}',
      operationId: 'getSubscription',
      summary: 'One subscription',
      tags,
      params: idParams,
      response: subscriptionViewSchema,
      responseDescription: 'Subscription',
      problems: [404],
      handler: async ({ params }) => view(await subscriptionOr404(params.id)),
    }),
    defineRoute({
      method: 'PATCH',
      path: '/v1/subscriptions/{id}',
      operationId: 'updateSubscription',
      summary: 'Change URL, filter, limits or enabled state (enabling clears the failure state)',
      tags,
      params: idParams,
      body: updateSubscriptionSchema,
      response: subscriptionViewSchema,
      responseDescription: 'Updated',
      problems: [404, 422],
      handler: async ({ params: { id }, body }) => {
        const change = { ...body };
        if (change.url !== undefined) change.url = await checkUrl(change.url);
        const sub = await o.store.updateSubscription(id, change);
        if (!sub) throw new HttpProblem(404, `subscription ${id} not found`);
        o.cache.put(sub);
        return view(sub);
      },
    }),
    defineRoute({
      method: 'DELETE',
      path: '/v1/subscriptions/{id}',
      operationId: 'deleteSubscription',
      summary: 'Delete (pending deliveries are dropped with a log record)',
      tags,
      params: idParams,
      status: 204,
      response: z.undefined(),
      responseDescription: 'Deleted',
      problems: [404],
      handler: async ({ params: { id } }) => {
        if (!(await o.store.deleteSubscription(id)))
          throw new HttpProblem(404, `subscription ${id} not found`);
        o.cache.remove(id);
        return undefined;
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/subscriptions/{id}/secrets/rotate',
      operationId: 'rotateSecret',
      summary: 'Add a new signing secret; older ones keep signing for graceSeconds',
      tags,
      params: idParams,
      body: rotateSecretSchema,
      bodyOptional: true,
      response: z.object({ secret: z.string() }),
      responseDescription: 'The new secret (shown once)',
      problems: [404],
      handler: async ({ params: { id }, body }) => {
        const secret = body.secret ?? generateSecret();
        checkSecret(secret);
        if (!(await o.store.rotateSecret(id, secret, body.graceSeconds * 1000)))
          throw new HttpProblem(404, `subscription ${id} not found`);
        o.cache.put(await subscriptionOr404(id));
        return { secret };
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/subscriptions/{id}/test',
      operationId: 'sendTestEvent',
      summary: 'Send a sluice.test.v1 event',
      tags,
      params: idParams,
      status: 202,
      response: z.object({ webhookId: z.string() }),
      responseDescription: 'Queued',
      problems: [404, 409],
      handler: async ({ params: { id } }) => {
        const sub = await subscriptionOr404(id);
        requireEnabled(sub);
        const d = newDelivery(sub.id, `test:${randomUUID()}`, testBody(sub.id));
        await o.publisher.publish(d);
        return { webhookId: d.webhookId };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/subscriptions/{id}/attempts',
      operationId: 'listAttempts',
      summary: 'Attempt log, newest first',
      tags,
      params: idParams,
      query: z.object({
        limit: z.coerce
          .number()
          .int()
          .default(100)
          .describe('Rows, clamped to 1..1000. Default 100.')
          .transform((n) => Math.min(1000, Math.max(1, n))),
        webhookId: z.string().max(200).optional(),
      }),
      response: z.array(attemptSchema),
      responseDescription: 'Attempts',
      problems: [404],
      handler: async ({ params: { id }, query }) => {
        await subscriptionOr404(id);
        const rows = await o.store.listAttempts(id, query.limit, query.webhookId);
        return rows.map((a) => ({
          ...a,
          outcome: a.outcome as z.output<typeof attemptSchema>['outcome'],
          attemptedAt: a.attemptedAt.toISOString(),
        }));
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/subscriptions/{id}/dlq',
      operationId: 'listDeadLetters',
      summary: 'Dead deliveries (at most 1000)',
      tags,
      params: idParams,
      query: z.object({
        since: z.string().max(64).optional().describe('ISO 8601; dead letters from this time on'),
        includeRedriven: z
          .enum(['true', 'false'])
          .optional()
          .describe('Also those already redriven. Default false'),
      }),
      response: z.array(deadLetterSchema),
      responseDescription: 'Dead letters',
      problems: [404],
      handler: async ({ params: { id }, query }) => {
        await subscriptionOr404(id);
        const since = query.since ? new Date(query.since) : undefined;
        if (since && Number.isNaN(since.getTime()))
          throw new HttpProblem(400, 'since must be an ISO 8601 time');
        const rows = await o.store.listDeadLetters(id, {
          ...(since ? { since } : {}),
          includeRedriven: query.includeRedriven === 'true',
          limit: 1000,
        });
        return rows.map(deadView);
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/subscriptions/{id}/dlq/redrive',
      operationId: 'redriveDeadLetters',
      summary:
        'Redrive every dead delivery since a time (at most 10000 per call; `more` says whether some remain)',
      tags,
      params: idParams,
      body: redriveSchema,
      bodyOptional: true,
      status: 202,
      response: z.object({ redriven: z.number().int(), more: z.boolean() }),
      responseDescription: 'Redriven count',
      problems: [404, 409],
      handler: async ({ params: { id }, body }) => {
        const sub = await subscriptionOr404(id);
        requireEnabled(sub);
        let redriven = 0;
        // Bounded per call; the answer says whether more remain.
        for (let page = 0; page < 10; page++) {
          const rows = await o.store.listDeadLetters(sub.id, {
            ...(body.since ? { since: new Date(body.since) } : {}),
            limit: 1000,
          });
          for (const d of rows) {
            await redrive(sub, d);
            redriven++;
          }
          if (rows.length < 1000) return { redriven, more: false };
        }
        return { redriven, more: true };
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/subscriptions/{id}/dlq/{webhookId}/redrive',
      operationId: 'redriveDeadLetter',
      summary: 'Redrive one dead delivery',
      tags,
      params: idParams.extend({
        webhookId: z.string().regex(/^[A-Za-z0-9_:.-]{1,200}$/, 'must be a webhook id'),
      }),
      status: 202,
      response: z.object({ redriven: z.literal(1), webhookId: z.string() }),
      responseDescription: 'Redriven',
      problems: [404, 409],
      handler: async ({ params: { id, webhookId } }) => {
        const sub = await subscriptionOr404(id);
        requireEnabled(sub);
        const dead = await o.store.getDeadLetter(sub.id, webhookId);
        if (!dead)
          throw new HttpProblem(404, `no dead delivery ${webhookId} for subscription ${id}`);
        await redrive(sub, dead);
        return { redriven: 1 as const, webhookId };
      },
    }),
  ];

  return {
    title: 'Sluice webhook dispatcher admin API',
    version: '1.0.0',
    description:
      'Subscriptions, secrets, attempt log, DLQ and redrive. Every route needs `Authorization: Bearer <WEBHOOK_ADMIN_TOKEN>`; errors are `application/problem+json`.',
    routes,
    auth: { tokens: [{ name: 'admin', sha256: sha256Hex(o.token), claims: '*' }] },
    schemas: {
      Filter: filterSchema,
      Subscription: subscriptionViewSchema,
      CreatedSubscription: createdSubscriptionSchema,
      CreateSubscription: createSubscriptionSchema,
      UpdateSubscription: updateSubscriptionSchema,
      RotateSecret: rotateSecretSchema,
      Redrive: redriveSchema,
      Attempt: attemptSchema,
      DeadLetter: deadLetterSchema,
    },
  };
}

export async function startAdminApi(o: AdminApiOptions): Promise<AdminApi> {
  const api = await startHttpApi({
    ...adminApi(o),
    service: 'webhook-admin',
    host: o.host,
    port: o.port,
    requestTimeoutMs: o.requestTimeoutMs ?? 30_000,
    bodyLimitBytes: o.bodyLimitBytes ?? 1024 * 1024,
    log: o.logger,
    registry: o.registry ?? new Registry(),
    tls: o.tls,
  });
  return { port: api.port, close: () => api.close() };
}

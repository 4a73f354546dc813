// The webhook dispatcher's admin API for the teams that subscribe to Sluice events: subscriptions,
// secret rotation, test events, the attempt log, dead letters and redrive. Types come from
// src/gen/schema.ts (generated from the API's OpenAPI document by `npm run clients`); this file only
// names the operations.
import { call, createApiClient, type ApiClientOptions, type Problem } from '@sluice/client-core';
import type { Client, ClientPathsWithMethod, MethodResponse } from 'openapi-fetch';
import type { components, operations, paths } from './gen/schema';

// Answers as openapi-fetch types them (tuples of the document become arrays there).
type Answer<
  M extends 'get' | 'post',
  P extends ClientPathsWithMethod<Client<paths>, M>,
> = MethodResponse<Client<paths>, M, P>;

export type Subscription = Answer<'get', '/v1/subscriptions/{id}'>;
/** A new subscription as returned once, with its signing `secret`. */
export type CreatedSubscription = Answer<'post', '/v1/subscriptions'>;
/** The body of a create: `url` and `filter`, the rest defaulted by the API. */
export type NewSubscription = components['schemas']['CreateSubscriptionInput'];
export type SubscriptionChange = components['schemas']['UpdateSubscriptionInput'];
export type Filter = components['schemas']['FilterInput'];
export type Attempt = Answer<'get', '/v1/subscriptions/{id}/attempts'>[number];
export type DeadLetter = Answer<'get', '/v1/subscriptions/{id}/dlq'>[number];
export type AttemptsQuery = NonNullable<operations['listAttempts']['parameters']['query']>;
export type DeadLettersQuery = NonNullable<operations['listDeadLetters']['parameters']['query']>;

type Assert<T extends true> = T;
/** The generated problem type is the one the errors carry (fails to compile if the API changes it). */
export type _ProblemMatches = Assert<
  components['schemas']['Problem'] extends Problem ? true : false
>;

export type AdminClientOptions = ApiClientOptions;

export interface AdminClient {
  list(): Promise<Subscription[]>;
  /** Creates a subscription; the URL is SSRF-checked (422 `unprocessable` when refused). */
  create(subscription: NewSubscription): Promise<CreatedSubscription>;
  get(id: string): Promise<Subscription>;
  update(id: string, change: SubscriptionChange): Promise<Subscription>;
  remove(id: string): Promise<void>;
  /** Adds a signing secret; older ones keep signing for `graceSeconds` (default 86400). */
  rotateSecret(id: string, opts?: { graceSeconds?: number; secret?: string }): Promise<string>;
  /** Queues a `sluice.test.v1` event; resolves with its `webhook-id`. */
  sendTest(id: string): Promise<string>;
  /** The attempt log, newest first. */
  attempts(id: string, query?: AttemptsQuery): Promise<Attempt[]>;
  deadLetters(id: string, query?: DeadLettersQuery): Promise<DeadLetter[]>;
  /** Redrives dead deliveries since a time (at most 10000 per call; `more` says whether some remain). */
  redrive(id: string, since?: string): Promise<{ redriven: number; more: boolean }>;
  redriveOne(id: string, webhookId: string): Promise<void>;
  /** The generated openapi-fetch client, for what the methods above do not cover. */
  readonly raw: Client<paths>;
}

/**
 * A client of the webhook dispatcher's admin API (`WEBHOOK_ADMIN_PORT`, default 8090) with the
 * `WEBHOOK_ADMIN_TOKEN`. Every method resolves to the answer or throws an `ApiProblemError`
 * (problem+json: `code`, `status`, `problem.detail`) or an `ApiTransportError` (no answer).
 */
export function createAdminClient(opts: AdminClientOptions): AdminClient {
  const raw = createApiClient<paths>({
    ...opts,
    headers: { 'user-agent': 'sluice-admin-client', ...opts.headers },
  });
  const path = (id: string) => ({ params: { path: { id } } });
  return {
    raw,
    list: () => call('GET /v1/subscriptions', raw.GET('/v1/subscriptions')),
    create: (body) => call('POST /v1/subscriptions', raw.POST('/v1/subscriptions', { body })),
    get: (id) => call('GET /v1/subscriptions/{id}', raw.GET('/v1/subscriptions/{id}', path(id))),
    update: (id, body) =>
      call(
        'PATCH /v1/subscriptions/{id}',
        raw.PATCH('/v1/subscriptions/{id}', { ...path(id), body }),
      ),
    async remove(id) {
      await call('DELETE /v1/subscriptions/{id}', raw.DELETE('/v1/subscriptions/{id}', path(id)));
    },
    async rotateSecret(id, body = {}) {
      const r = await call(
        'POST /v1/subscriptions/{id}/secrets/rotate',
        raw.POST('/v1/subscriptions/{id}/secrets/rotate', { ...path(id), body }),
      );
      return r.secret;
    },
    async sendTest(id) {
      const r = await call(
        'POST /v1/subscriptions/{id}/test',
        raw.POST('/v1/subscriptions/{id}/test', path(id)),
      );
      return r.webhookId;
    },
    attempts: (id, query = {}) =>
      call(
        'GET /v1/subscriptions/{id}/attempts',
        raw.GET('/v1/subscriptions/{id}/attempts', { params: { path: { id }, query } }),
      ),
    deadLetters: (id, query = {}) =>
      call(
        'GET /v1/subscriptions/{id}/dlq',
        raw.GET('/v1/subscriptions/{id}/dlq', { params: { path: { id }, query } }),
      ),
    redrive: (id, since) =>
      call(
        'POST /v1/subscriptions/{id}/dlq/redrive',
        raw.POST('/v1/subscriptions/{id}/dlq/redrive', {
          ...path(id),
          body: since !== undefined ? { since } : {},
        }),
      ),
    async redriveOne(id, webhookId) {
      await call(
        'POST /v1/subscriptions/{id}/dlq/{webhookId}/redrive',
        raw.POST('/v1/subscriptions/{id}/dlq/{webhookId}/redrive', {
          params: { path: { id, webhookId } },
        }),
      );
    },
  };
}

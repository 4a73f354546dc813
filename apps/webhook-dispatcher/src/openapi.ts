// The OpenAPI 3.1 description of the admin API, served at /openapi.json.
import { z } from 'zod';
import { createSubscriptionSchema, redriveSchema, rotateSecretSchema, updateSubscriptionSchema } from './api-schemas';
import { filterSchema } from './filters';

const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });

const subscriptionView = {
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    url: { type: 'string' },
    description: { type: 'string' },
    filter: { $ref: '#/components/schemas/Filter' },
    enabled: { type: 'boolean' },
    disabledReason: { type: ['string', 'null'] },
    rateLimitPerS: { type: ['number', 'null'] },
    maxConcurrency: { type: ['integer', 'null'] },
    failingSince: { type: ['string', 'null'], format: 'date-time' },
    secretCount: { type: 'integer', description: 'Active signing secrets (the secrets themselves are never returned after creation)' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
};

const json = (ref: string) => ({ content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } });
const ok = (description: string, ref?: string) => ({ description, ...(ref ? json(ref) : {}) });
const errors = { '400': ok('Invalid request', 'Error'), '401': ok('Missing or wrong bearer token', 'Error'), '404': ok('Not found', 'Error') };
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'Sluice webhook dispatcher admin API', version: '1.0.0', description: 'Subscriptions, secrets, attempt log, DLQ and redrive.' },
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Filter: schema(filterSchema),
        CreateSubscription: schema(createSubscriptionSchema),
        UpdateSubscription: schema(updateSubscriptionSchema),
        RotateSecret: schema(rotateSecretSchema),
        Redrive: schema(redriveSchema),
        Subscription: subscriptionView,
        CreatedSubscription: { allOf: [{ $ref: '#/components/schemas/Subscription' }, { type: 'object', properties: { secret: { type: 'string' } } }] },
        Attempt: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            webhookId: { type: 'string' },
            generation: { type: 'integer' },
            attempt: { type: 'integer' },
            eventType: { type: 'string' },
            outcome: { type: 'string', enum: ['success', 'retry', 'dead', 'gone', 'disabled'] },
            status: { type: ['integer', 'null'] },
            latencyMs: { type: ['number', 'null'] },
            error: { type: ['string', 'null'] },
            responseBody: { type: ['string', 'null'] },
            attemptedAt: { type: 'string', format: 'date-time' },
          },
        },
        DeadLetter: {
          type: 'object',
          properties: {
            webhookId: { type: 'string' },
            eventType: { type: 'string' },
            generation: { type: 'integer' },
            attempts: { type: 'integer' },
            reason: { type: 'string', enum: ['exhausted', 'gone', 'endpoint_disabled', 'subscription_disabled', 'no_active_secret'] },
            lastStatus: { type: ['integer', 'null'] },
            lastError: { type: ['string', 'null'] },
            deadAt: { type: 'string', format: 'date-time' },
            redrivenAt: { type: ['string', 'null'], format: 'date-time' },
            body: { type: 'string' },
          },
        },
        Error: { type: 'object', properties: { error: { type: 'string' }, details: {} }, required: ['error'] },
      },
    },
    paths: {
      '/v1/subscriptions': {
        get: { summary: 'List subscriptions', responses: { '200': ok('Subscriptions', 'Subscription'), ...errors } },
        post: {
          summary: 'Create a subscription (the URL is SSRF-checked); the response carries the secret, once',
          requestBody: { required: true, ...json('CreateSubscription') },
          responses: { '201': ok('Created', 'CreatedSubscription'), '422': ok('URL refused', 'Error'), ...errors },
        },
      },
      '/v1/subscriptions/{id}': {
        parameters: [idParam],
        get: { summary: 'One subscription', responses: { '200': ok('Subscription', 'Subscription'), ...errors } },
        patch: {
          summary: 'Change URL, filter, limits or enabled state (enabling clears the failure state)',
          requestBody: { required: true, ...json('UpdateSubscription') },
          responses: { '200': ok('Updated', 'Subscription'), '422': ok('URL refused', 'Error'), ...errors },
        },
        delete: { summary: 'Delete (pending deliveries are dropped with a log record)', responses: { '204': ok('Deleted'), ...errors } },
      },
      '/v1/subscriptions/{id}/secrets/rotate': {
        parameters: [idParam],
        post: {
          summary: 'Add a new signing secret; older ones keep signing for graceSeconds',
          requestBody: { required: false, ...json('RotateSecret') },
          responses: { '200': { description: 'The new secret (shown once)', content: { 'application/json': { schema: { type: 'object', properties: { secret: { type: 'string' } } } } } }, ...errors },
        },
      },
      '/v1/subscriptions/{id}/test': {
        parameters: [idParam],
        post: { summary: 'Send a sluice.test.v1 event', responses: { '202': ok('Queued'), '409': ok('Subscription disabled', 'Error'), ...errors } },
      },
      '/v1/subscriptions/{id}/attempts': {
        parameters: [idParam, { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000 } }, { name: 'webhookId', in: 'query', schema: { type: 'string' } }],
        get: { summary: 'Attempt log, newest first', responses: { '200': ok('Attempts', 'Attempt'), ...errors } },
      },
      '/v1/subscriptions/{id}/dlq': {
        parameters: [idParam, { name: 'since', in: 'query', schema: { type: 'string', format: 'date-time' } }, { name: 'includeRedriven', in: 'query', schema: { type: 'boolean' } }],
        get: { summary: 'Dead deliveries', responses: { '200': ok('Dead letters', 'DeadLetter'), ...errors } },
      },
      '/v1/subscriptions/{id}/dlq/redrive': {
        parameters: [idParam],
        post: { summary: 'Redrive every dead delivery since a time', requestBody: { required: false, ...json('Redrive') }, responses: { '202': ok('Redriven count'), '409': ok('Subscription disabled', 'Error'), ...errors } },
      },
      '/v1/subscriptions/{id}/dlq/{webhookId}/redrive': {
        parameters: [idParam, { name: 'webhookId', in: 'path', required: true, schema: { type: 'string' } }],
        post: { summary: 'Redrive one dead delivery', responses: { '202': ok('Redriven'), '409': ok('Subscription disabled', 'Error'), ...errors } },
      },
    },
  };
}

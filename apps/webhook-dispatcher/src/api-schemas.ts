// Request and response bodies of the admin API (validated with zod; the OpenAPI document is
// generated from these by @sluice/http).
import { z } from 'zod';
import { filterSchema } from './filters';

export const secretSchema = z
  .string()
  .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'must be whsec_ followed by base64');

export const createSubscriptionSchema = z
  .object({
    url: z.string().max(2048),
    description: z.string().max(1000).default(''),
    filter: filterSchema,
    enabled: z.boolean().default(true),
    /** Requests per second to this endpoint; default: WEBHOOK_DEFAULT_RATE_PER_S. */
    rateLimitPerS: z.number().positive().max(100_000).nullable().default(null),
    /** Concurrent requests to this endpoint; default: WEBHOOK_ENDPOINT_CONCURRENCY. */
    maxConcurrency: z.number().int().min(1).max(256).nullable().default(null),
    /** Bring your own `whsec_` secret; generated when absent. */
    secret: secretSchema.optional(),
  })
  .strict();

export const updateSubscriptionSchema = z
  .object({
    url: z.string().max(2048).optional(),
    description: z.string().max(1000).optional(),
    filter: filterSchema.optional(),
    enabled: z.boolean().optional(),
    rateLimitPerS: z.number().positive().max(100_000).nullable().optional(),
    maxConcurrency: z.number().int().min(1).max(256).nullable().optional(),
  })
  .strict();

export const rotateSecretSchema = z
  .object({
    /** How long the previous secret(s) keep signing alongside the new one. Default 86400 (24 h). */
    graceSeconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 86_400)
      .default(86_400),
    secret: secretSchema.optional(),
  })
  .strict();

export const redriveSchema = z
  .object({
    /** Redrive dead letters from this time on (ISO 8601). Default: all. */
    since: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();

const time = z.iso.datetime();

export const subscriptionViewSchema = z.object({
  id: z.uuid(),
  url: z.string(),
  description: z.string(),
  filter: filterSchema,
  enabled: z.boolean(),
  disabledReason: z.string().nullable(),
  rateLimitPerS: z.number().nullable(),
  maxConcurrency: z.number().int().nullable(),
  failingSince: time.nullable(),
  secretCount: z
    .number()
    .int()
    .describe('Active signing secrets (the secrets themselves are never returned after creation)'),
  createdAt: time,
  updatedAt: time,
});

export const createdSubscriptionSchema = subscriptionViewSchema.extend({
  secret: z.string().describe('The signing secret, shown once'),
});

export const attemptSchema = z.object({
  id: z.string(),
  subscriptionId: z.uuid(),
  webhookId: z.string(),
  generation: z.number().int(),
  attempt: z.number().int(),
  eventType: z.string(),
  outcome: z.enum(['success', 'retry', 'dead', 'gone', 'disabled']),
  status: z.number().int().nullable(),
  latencyMs: z.number().nullable(),
  error: z.string().nullable(),
  responseBody: z.string().nullable(),
  attemptedAt: time,
});

export const deadLetterSchema = z.object({
  webhookId: z.string(),
  eventType: z.string(),
  generation: z.number().int(),
  attempts: z.number().int(),
  reason: z.enum([
    'exhausted',
    'gone',
    'endpoint_disabled',
    'subscription_disabled',
    'no_active_secret',
  ]),
  lastStatus: z.number().int().nullable(),
  lastError: z.string().nullable(),
  deadAt: time,
  redrivenAt: time.nullable(),
  body: z.string().describe('The webhook body as it was (and will be) sent'),
});

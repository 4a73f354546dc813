// Request bodies of the admin API (validated with zod; the OpenAPI document is generated from these).
import { z } from 'zod';
import { filterSchema } from './filters';

export const secretSchema = z.string().regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'must be whsec_ followed by base64');

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
    graceSeconds: z.number().int().min(0).max(30 * 86_400).default(86_400),
    secret: secretSchema.optional(),
  })
  .strict();

export const redriveSchema = z
  .object({
    /** Redrive dead letters from this time on (ISO 8601). Default: all. */
    since: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();

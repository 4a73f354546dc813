// The OpenAPI documents of the APIs other teams call, built from the services' own route
// definitions (the same `HttpApiDefinition` each service serves at /openapi.json), with each
// service's default configuration. No database, NATS or other dependency is reached: the API is
// started on a loopback port only long enough to render its document, and no request is served.
import { loadConfig } from '@sluice/config';
import { SluiceError } from '@sluice/errors';
import { generateToken, startHttpApi, type HttpApiDefinition } from '@sluice/http';
import { createLogger } from '@sluice/observability';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { z } from 'zod';

export const ROOT = join(__dirname, '..', '..', '..');

/** A client package and the API it is generated from. */
export interface ClientSource {
  /** Folder under libs/clients. */
  name: string;
  /** The npm name of the package. */
  packageName: string;
  /** The service whose API it calls (a folder of apps/). */
  service: string;
  /** The API's route definitions, as the service builds them with its default configuration. */
  definition(root: string): HttpApiDefinition;
}

export class OpenApiToolError extends SluiceError {
  override readonly name = 'OpenApiToolError';
  readonly code = 'openapi_tool';
}

/**
 * What the route handlers would use to answer. They are never called: the API serves no request
 * while its document is rendered (it accepts only a random token nobody holds), so any use is a bug.
 */
function notServing<T>(what: string): T {
  return new Proxy(
    {},
    {
      get(_target, prop) {
        throw new OpenApiToolError(
          `${what}.${String(prop)} was used while rendering an OpenAPI document: no request is served here`,
        );
      },
    },
  ) as T;
}

const silent = createLogger({
  service: 'openapi-tool',
  level: 'silent',
  hashDeviceId: (id) => id,
});

// Apps are loaded by path: a tool may not import an app (module boundaries).
function load<T>(root: string, service: string, file: string): T {
  return require(join(root, 'apps', service, 'src', file)) as T;
}

/** The query API of the aggregator and the admin API of the webhook dispatcher. */
export const CLIENTS: readonly ClientSource[] = [
  {
    name: 'query',
    packageName: '@sluice/query-client',
    service: 'aggregator',
    definition(root) {
      const { config } = load<{ config: z.ZodObject }>(root, 'aggregator', 'config.ts');
      const { parseResolutions } = load<typeof import('../../../apps/aggregator/src/resolutions')>(
        root,
        'aggregator',
        'resolutions.ts',
      );
      const { queryApi } = load<typeof import('../../../apps/aggregator/src/api')>(
        root,
        'aggregator',
        'api.ts',
      );
      const c = loadConfig(config, {}) as {
        AGGREGATOR_RESOLUTIONS: string[];
        AGGREGATOR_RETENTION: string[];
        AGGREGATOR_API_DEFAULT_POINTS: number;
        AGGREGATOR_API_MAX_RANGE_POINTS: number;
        AGGREGATOR_API_MAX_PAGE: number;
      };
      return queryApi({
        queries: notServing('queries'),
        resolutions: parseResolutions(c.AGGREGATOR_RESOLUTIONS, c.AGGREGATOR_RETENTION),
        defaultPoints: c.AGGREGATOR_API_DEFAULT_POINTS,
        maxRangePoints: c.AGGREGATOR_API_MAX_RANGE_POINTS,
        maxPage: c.AGGREGATOR_API_MAX_PAGE,
        tokens: [{ name: 'openapi-tool', sha256: generateToken().sha256, claims: '*' }],
        admin: {
          operators: [],
          store: notServing('store'),
          pipeline: notServing('pipeline'),
          backfills: notServing('backfills'),
        },
      });
    },
  },
  {
    name: 'admin',
    packageName: '@sluice/admin-client',
    service: 'webhook-dispatcher',
    definition(root) {
      const { adminApi } = load<typeof import('../../../apps/webhook-dispatcher/src/admin-api')>(
        root,
        'webhook-dispatcher',
        'admin-api.ts',
      );
      return adminApi({
        token: generateToken().token,
        store: notServing('store'),
        cache: notServing('cache'),
        publisher: notServing('publisher'),
        ssrf: notServing('ssrf'),
        requireHttps: false,
        logger: silent,
      });
    },
  },
];

/** The OpenAPI 3.1 document the API serves at /openapi.json. */
export async function renderDocument(
  source: ClientSource,
  root = ROOT,
): Promise<Record<string, unknown>> {
  const api = await startHttpApi({
    ...source.definition(root),
    service: source.service,
    host: '127.0.0.1',
    port: 0,
    log: silent,
    registry: new Registry(),
  });
  try {
    return api.openapi;
  } finally {
    await api.close(1_000);
  }
}

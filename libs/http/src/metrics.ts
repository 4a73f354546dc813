import { HTTP_METRICS } from '@sluice/observability';
import { Counter, Histogram, type Registry } from 'prom-client';

export { HTTP_METRICS };

export interface HttpMetrics {
  requests: Counter<'api' | 'method' | 'route' | 'status'>;
  duration: Histogram<'api' | 'method' | 'route'>;
  /** Requests refused before routing (408 receive timeout, malformed HTTP, oversized headers). */
  clientErrors: Counter<'api' | 'status'>;
}

/** The HTTP metrics of `registry`, created once and shared by every API registered there. */
export function httpMetrics(registry: Registry): HttpMetrics {
  const get = <T>(name: string, make: () => T): T =>
    (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    requests: get(
      HTTP_METRICS.requests,
      () =>
        new Counter({
          name: HTTP_METRICS.requests,
          help: 'HTTP API requests answered, by route template and status',
          labelNames: ['api', 'method', 'route', 'status'] as const,
          registers: [registry],
        }),
    ),
    duration: get(
      HTTP_METRICS.duration,
      () =>
        new Histogram({
          name: HTTP_METRICS.duration,
          help: 'HTTP API request duration, by route template',
          labelNames: ['api', 'method', 'route'] as const,
          buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
          registers: [registry],
        }),
    ),
    clientErrors: get(
      HTTP_METRICS.clientErrors,
      () =>
        new Counter({
          name: HTTP_METRICS.clientErrors,
          help: 'HTTP requests refused before routing (receive timeout, malformed request)',
          labelNames: ['api', 'status'] as const,
          registers: [registry],
        }),
    ),
  };
}

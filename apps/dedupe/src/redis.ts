import { tlsFailureReporter, type ClientTls } from '@sluice/config';
import type { Stoppable } from '@sluice/runtime';
import type { Logger } from '@sluice/observability';
import Redis from 'ioredis';
import { RedisConfigError } from './errors';

export interface RedisConnectionOptions {
  url: string;
  /** TLS for a `rediss://` URL (`redisTls(config)` of @sluice/config). Default none. */
  tls?: ClientTls | undefined;
  /** Per-command timeout. */
  commandTimeoutMs: number;
  log: Logger;
  /**
   * Called when Redis is found on connecting with a `maxmemory-policy` that evicts keys (claims would
   * vanish silently). Default: the error is logged.
   */
  onConfigError?: (err: RedisConfigError) => void;
}

/** The error for a Redis whose `maxmemory-policy` can evict claims; undefined for `noeviction`. */
export async function checkEvictionPolicy(redis: Redis): Promise<RedisConfigError | undefined> {
  const policy = /maxmemory_policy:(\S+)/.exec(await redis.info('memory'))?.[1] ?? 'unknown';
  if (policy === 'noeviction') return undefined;
  return new RedisConfigError(
    `Redis maxmemory-policy is "${policy}": it can evict claims, and an evicted claim lets a duplicate through. Set maxmemory-policy noeviction (redis.conf, or CONFIG SET maxmemory-policy noeviction) and size maxmemory for DEDUPE_TTL`,
  );
}

/**
 * A Redis connection for claims that never queues: no offline queue (a command while disconnected
 * fails at once and the batch is held by the actor, so memory cannot grow during an outage), one
 * retry per request, a command timeout, and reconnects every ≤ 500 ms forever in the background. On
 * every (re)connect it checks that Redis cannot evict keys. A failed TLS handshake is logged as an
 * error naming the REDIS_TLS_* setting to fix (once, while it stays the same).
 */
export function connectRedis(opts: RedisConnectionOptions): { redis: Redis; stoppable: Stoppable } {
  const redis = new Redis(opts.url, {
    ...(opts.tls ? { tls: opts.tls.options } : {}),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: 5_000,
    // Reconnect attempts at most 500 ms apart: a Redis that is back is found within about a second.
    retryStrategy: (times) => Math.min(times * 100, 500),
    connectionName: 'sluice-dedupe',
  });
  let lastError = 0;
  const tlsFailure = opts.tls ? tlsFailureReporter(opts.tls.peer, opts.log) : () => false;
  redis.on('error', (err: Error) => {
    if (tlsFailure(err)) return;
    if (Date.now() - lastError < 10_000) return;
    lastError = Date.now();
    opts.log.warn({ err }, 'redis connection error (reconnecting)');
  });
  redis.on('ready', () => {
    opts.log.info('redis ready');
    checkEvictionPolicy(redis).then(
      (err) =>
        err &&
        (opts.onConfigError ? opts.onConfigError(err) : opts.log.error({ err }, err.message)),
      (err: unknown) => opts.log.warn({ err }, 'could not read the Redis maxmemory-policy'),
    );
  });
  redis.connect().catch(() => undefined);
  return {
    redis,
    stoppable: {
      name: 'redis',
      stop: async () => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          redis.quit().catch(() => undefined),
          new Promise((r) => (timer = setTimeout(r, 2_000))),
        ]);
        clearTimeout(timer);
        redis.disconnect();
      },
    },
  };
}

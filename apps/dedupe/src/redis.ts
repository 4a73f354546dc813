import type { Stoppable } from '@sluice/actor';
import type { Logger } from '@sluice/observability';
import Redis from 'ioredis';

export interface RedisConnectionOptions {
  url: string;
  /** Per-command timeout. */
  commandTimeoutMs: number;
  log: Logger;
}

/**
 * A Redis connection for claims that never queues: no offline queue (a command while disconnected
 * fails at once and the batch is retried by JetStream, so memory cannot grow during an outage), one
 * retry per request, a command timeout, and reconnects every ≤ 2 s forever in the background.
 */
export function connectRedis(opts: RedisConnectionOptions): { redis: Redis; stoppable: Stoppable } {
  const redis = new Redis(opts.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: 5_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    connectionName: 'sluice-dedupe',
  });
  let lastError = 0;
  redis.on('error', (err: Error) => {
    if (Date.now() - lastError < 10_000) return;
    lastError = Date.now();
    opts.log.warn({ err }, 'redis connection error (reconnecting)');
  });
  redis.on('ready', () => opts.log.info('redis ready'));
  redis.connect().catch(() => undefined);
  return {
    redis,
    stoppable: {
      name: 'redis',
      stop: async () => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([redis.quit().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 2_000)))]);
        clearTimeout(timer);
        redis.disconnect();
      },
    },
  };
}

import { tlsFailureReporter, type ClientTls } from '@sluice/config';
import type { Stoppable } from '@sluice/runtime';
import type { Logger } from '@sluice/observability';
import Redis, { Cluster } from 'ioredis';
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

/**
 * The error for a Redis whose `maxmemory-policy` can evict claims; undefined for `noeviction`. On a
 * cluster, every master is asked (`where` names the one that evicts).
 */
export async function checkEvictionPolicy(
  redis: Redis | Cluster,
): Promise<RedisConfigError | undefined> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    const policy = /maxmemory_policy:(\S+)/.exec(await node.info('memory'))?.[1] ?? 'unknown';
    if (policy === 'noeviction') continue;
    const where =
      redis instanceof Cluster
        ? ` on cluster master ${node.options.host}:${node.options.port}`
        : '';
    return new RedisConfigError(
      `Redis maxmemory-policy is "${policy}"${where}: it can evict claims, and an evicted claim lets a duplicate through. Set maxmemory-policy noeviction (redis.conf, or CONFIG SET maxmemory-policy noeviction) and size maxmemory for DEDUPE_TTL`,
    );
  }
  return undefined;
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

export interface RedisClusterConnectionOptions extends Omit<RedisConnectionOptions, 'url'> {
  /** Seed nodes (`redis://host:port`, or `rediss://` with `tls`); the other nodes are discovered. */
  urls: readonly string[];
}

/**
 * A Redis Cluster connection for claims, with the same rules as {@link connectRedis}: nothing queued
 * while the cluster (or a master) is unreachable, a command timeout, reconnects in the background, the
 * eviction policy of every master checked whenever the cluster is (again) ready. Commands go to masters
 * only (claims are writes; a replica would answer from behind). The slot map is refreshed every 5 s and
 * whenever a reply says it moved, so a replica promoted by a failover is found within seconds.
 */
export function connectRedisCluster(opts: RedisClusterConnectionOptions): {
  redis: Cluster;
  stoppable: Stoppable;
} {
  const cluster = new Cluster([...opts.urls], {
    lazyConnect: true,
    enableOfflineQueue: false,
    scaleReads: 'master',
    slotsRefreshInterval: 5_000,
    // Retry the slot map at most 500 ms apart, forever: a cluster that is back is found within a second.
    clusterRetryStrategy: (times) => Math.min(times * 100, 500),
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    redisOptions: {
      ...(opts.tls ? { tls: opts.tls.options } : {}),
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs,
      connectTimeout: 5_000,
      connectionName: 'sluice-dedupe',
    },
  });
  let lastError = 0;
  const tlsFailure = opts.tls ? tlsFailureReporter(opts.tls.peer, opts.log) : () => false;
  const onError = (err: Error) => {
    if (tlsFailure(err)) return;
    if (Date.now() - lastError < 10_000) return;
    lastError = Date.now();
    opts.log.warn({ err }, 'redis cluster connection error (reconnecting)');
  };
  cluster.on('error', onError);
  cluster.on('node error', onError);
  cluster.on('ready', () => {
    opts.log.info({ masters: cluster.nodes('master').length }, 'redis cluster ready');
    checkEvictionPolicy(cluster).then(
      (err) =>
        err &&
        (opts.onConfigError ? opts.onConfigError(err) : opts.log.error({ err }, err.message)),
      (err: unknown) => opts.log.warn({ err }, 'could not read the Redis maxmemory-policy'),
    );
  });
  cluster.connect().catch(() => undefined);
  return {
    redis: cluster,
    stoppable: {
      name: 'redis cluster',
      stop: async () => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          cluster.quit().catch(() => undefined),
          new Promise((r) => (timer = setTimeout(r, 2_000))),
        ]);
        clearTimeout(timer);
        cluster.disconnect();
      },
    },
  };
}

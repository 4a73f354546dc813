// Dedupe: consumes raw device batches (`<ns>.telemetry.raw.<region>`), claims every event id in
// Redis (a cache of the clean stream, re-seeded from it when Redis loses its claims), and publishes
// the first copy of each event as clean telemetry (`<ns>.telemetry.clean.<region>`). Serves only the
// ops endpoints.
import { redisTls } from '@sluice/config';
import type { Runtime, Service } from '@sluice/runtime';
import { RedisClaimStore, type ClaimStore } from './claims';
import { RedisClusterClaimStore } from './cluster-claims';
import type { Config } from './config';
import { buildDedupe, dedupeOptions, SERVICE } from './dedupe';
import { connectRedis, connectRedisCluster } from './redis';

export { SERVICE };

export async function createService(rt: Runtime<Config>): Promise<Service> {
  const cfg = rt.config;
  if (cfg.DEDUPE_CRASH_AT)
    rt.log.warn(
      { at: cfg.DEDUPE_CRASH_AT },
      'FAULT INJECTION enabled: the process will SIGKILL itself',
    );
  const connection = {
    tls: redisTls(cfg),
    commandTimeoutMs: cfg.DEDUPE_REDIS_TIMEOUT,
    log: rt.log,
    // Fail fast: an evicting Redis cannot keep claims (the guard would re-seed after every eviction).
    onConfigError: (err: Error) => {
      rt.log.fatal({ err }, err.message);
      rt.log.flush?.();
      process.exit(1);
    },
  };
  const store = {
    ttlMs: cfg.DEDUPE_TTL,
    timeoutMs: cfg.DEDUPE_REDIS_TIMEOUT,
    guard: cfg.DEDUPE_RESEED,
  };
  let claims: ClaimStore;
  let stoppable;
  if (cfg.DEDUPE_REDIS_CLUSTER) {
    const c = connectRedisCluster({ ...connection, urls: cfg.REDIS_URL.split(',') });
    stoppable = c.stoppable;
    claims = new RedisClusterClaimStore({
      ...store,
      cluster: c.redis,
      shards: cfg.DEDUPE_CLAIM_SHARDS,
    });
  } else {
    const c = connectRedis({ ...connection, url: cfg.REDIS_URL });
    stoppable = c.stoppable;
    claims = new RedisClaimStore({ ...store, redis: c.redis });
  }
  const dedupe = await buildDedupe(
    { nc: rt.nc, topology: rt.topology, claims, log: rt.log, registry: rt.registry },
    dedupeOptions(cfg),
  );
  return {
    actors: dedupe.actors,
    close: [dedupe.publisher, dedupe.recovery, stoppable],
    ready: { redis: () => claims.isReady() },
  };
}

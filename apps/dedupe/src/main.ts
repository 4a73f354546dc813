import { serve, startRuntime } from '@sluice/runtime';
import { RedisClaimStore } from './claims';
import { config } from './config';
import { buildDedupe, dedupeOptions, SERVICE } from './dedupe';
import { connectRedis } from './redis';

async function main() {
  const rt = await startRuntime(SERVICE, config);
  const cfg = rt.config;
  if (cfg.DEDUPE_CRASH_AT) rt.log.warn({ at: cfg.DEDUPE_CRASH_AT }, 'FAULT INJECTION enabled: the process will SIGKILL itself');
  const { redis, stoppable } = connectRedis({
    url: cfg.REDIS_URL,
    commandTimeoutMs: cfg.DEDUPE_REDIS_TIMEOUT,
    log: rt.log,
    // Fail fast: an evicting Redis cannot keep claims (the guard would re-seed after every eviction).
    onConfigError: (err) => {
      rt.log.fatal({ err }, err.message);
      rt.log.flush?.();
      process.exit(1);
    },
  });
  const claims = new RedisClaimStore({ redis, ttlMs: cfg.DEDUPE_TTL, timeoutMs: cfg.DEDUPE_REDIS_TIMEOUT, guard: cfg.DEDUPE_RESEED });
  const { actors, publisher, recovery } = await buildDedupe({ nc: rt.nc, topology: rt.topology, claims, log: rt.log, registry: rt.registry }, dedupeOptions(cfg));
  await serve(rt, { actors, after: [publisher, recovery, stoppable], ready: { redis: () => claims.isReady() } });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

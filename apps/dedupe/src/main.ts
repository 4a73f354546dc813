import { serve, startRuntime } from '@sluice/actor';
import { RedisClaimStore } from './claims';
import { dedupeConfig } from './config';
import { buildDedupe, dedupeOptions, SERVICE } from './dedupe';
import { connectRedis } from './redis';

async function main() {
  const rt = await startRuntime(SERVICE, dedupeConfig);
  const cfg = rt.config;
  if (cfg.DEDUPE_CRASH_AT) rt.log.warn({ at: cfg.DEDUPE_CRASH_AT }, 'FAULT INJECTION enabled: the process will SIGKILL itself');
  const { redis, stoppable } = connectRedis({ url: cfg.REDIS_URL, commandTimeoutMs: cfg.DEDUPE_REDIS_TIMEOUT, log: rt.log });
  const claims = new RedisClaimStore({ redis, ttlMs: cfg.DEDUPE_TTL, timeoutMs: cfg.DEDUPE_REDIS_TIMEOUT });
  const { actors, publisher } = await buildDedupe({ nc: rt.nc, topology: rt.topology, claims, log: rt.log, registry: rt.registry }, dedupeOptions(cfg));
  // ServeOptions takes Actor<unknown>; the handler's parameter type makes Actor<RawMessage> not assignable.
  await serve(rt, { actors, after: [publisher, stoppable], ready: { redis: () => claims.isReady() } });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

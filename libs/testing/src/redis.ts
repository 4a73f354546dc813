import Redis from 'ioredis';
import { testUrls } from './env';
import { uniqueId } from './names';

/** A Redis connection plus a unique key prefix for one test; `cleanup()` deletes the prefix's keys. */
export interface RedisFixture {
  redis: Redis;
  prefix: string;
  cleanup(): Promise<void>;
}

export async function redisFixture(): Promise<RedisFixture> {
  const redis = new Redis(testUrls.redis, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  const prefix = `${uniqueId('test')}:`;
  return {
    redis,
    prefix,
    async cleanup() {
      let cursor = '0';
      let rounds = 0;
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        if (keys.length) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0' && ++rounds < 10_000);
      redis.disconnect();
    },
  };
}

import { testUrls } from '@sluice/testing';
import Redis from 'ioredis';

/** Unlinks every key under `prefix` (a bench's dedupe claims); best effort, bounded by the scan. */
export async function dropRedisPrefix(prefix: string): Promise<void> {
  if (!prefix) return;
  const redis = new Redis(testUrls.redis, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } catch {
    // best effort: the claims expire with their buckets
  } finally {
    redis.disconnect();
  }
}

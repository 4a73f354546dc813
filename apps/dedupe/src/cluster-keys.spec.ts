import { loadConfig } from '@sluice/config';
import { config } from './config';
import {
  ClaimBatch,
  CLUSTER_SLOTS,
  clusterKeySlot,
  clusterTags,
  groupGuardKeys,
  guardKeys,
} from './keys';

describe('Redis Cluster key slots and claim names', () => {
  it('computes the slot Redis computes (CRC16 XMODEM of the hash tag or key, mod 16384)', () => {
    // Values from the Redis Cluster spec and `CLUSTER KEYSLOT` of redis-server 7.
    expect(clusterKeySlot('123456789')).toBe(0x31c3);
    expect(clusterKeySlot('foo')).toBe(12182);
    expect(clusterKeySlot('{user1000}.following')).toBe(clusterKeySlot('{user1000}.followers'));
    expect(clusterKeySlot('{user1000}.following')).toBe(clusterKeySlot('user1000'));
    // An empty tag hashes the whole key; only the first `{` opens a tag.
    expect(clusterKeySlot('foo{}{bar}')).not.toBe(clusterKeySlot('bar'));
    expect(clusterKeySlot('foo{{bar}}zap')).toBe(clusterKeySlot('{bar'));
  });

  it('gives each shard its own tag, in its own 1/shards of the slot space, the same every time', () => {
    for (const shards of [1, 3, 64, 4096]) {
      const tags = clusterTags(shards);
      expect(tags).toHaveLength(shards);
      expect(new Set(tags).size).toBe(shards);
      tags.forEach((tag, s) =>
        expect(Math.floor((clusterKeySlot(tag) * shards) / CLUSTER_SLOTS)).toBe(s),
      );
    }
  });

  it('puts every key of a shard (both families, every bucket, guard, lease) in one slot', () => {
    const layout = { prefix: 't1:', bucketMs: 600_000, shards: 64, cluster: true };
    const b = new ClaimBatch(layout);
    const o = b.owner('RAW:1');
    const t = Date.UTC(2026, 10, 28, 12, 34, 56);
    for (let i = 0; i < 2000; i++) {
      b.add(`e-${i}`, t + (i % 3) * 600_000, o);
      if (i % 10 === 0) b.add(`long-${'x'.repeat(300)}-${i}`, t, o);
    }
    const slotsByShard = new Map<number, Set<number>>();
    for (let i = 0; i < b.length; i++) {
      const shard = b.shardOf(b.slots[i]!);
      const key = b.slot(i).key;
      expect(key).toMatch(/^t1:claims(-h)?:\d+:\d+\{c\d+\}$/);
      expect(key.split('{')[0]!.endsWith(`:${shard}`)).toBe(true);
      const set = slotsByShard.get(shard) ?? new Set<number>();
      set.add(clusterKeySlot(key));
      const g = groupGuardKeys('t1:', 64, shard);
      set.add(clusterKeySlot(g.guard)).add(clusterKeySlot(g.lease));
      slotsByShard.set(shard, set);
    }
    expect(slotsByShard.size).toBe(64);
    for (const set of slotsByShard.values()) expect(set.size).toBe(1);
    // 64 shards over 3 masters with even slot ranges: 21 or 22 each.
    const perThird = [0, 0, 0];
    for (const set of slotsByShard.values())
      perThird[Math.floor(([...set][0]! * 3) / CLUSTER_SLOTS)]!++;
    expect(Math.min(...perThird)).toBeGreaterThanOrEqual(21);
  });

  it('keeps single-Redis names as they were (no tag)', () => {
    const b = new ClaimBatch({ prefix: 't1:', bucketMs: 600_000, shards: 64 });
    b.add('evt-42', Date.UTC(2026, 10, 28, 12, 34, 56), b.owner('o'));
    expect(b.slot(0).key).toMatch(/^t1:claims:\d+:\d+$/);
    expect(guardKeys('t1:')).toEqual({ guard: 't1:claims-epoch', lease: 't1:claims-seeding' });
  });

  it('refuses a cluster layout whose prefix holds a brace', () => {
    expect(
      () => new ClaimBatch({ prefix: 'a{b}:', bucketMs: 600_000, shards: 64, cluster: true }),
    ).toThrow(/brace/);
  });
});

describe('dedupe config for Redis Cluster', () => {
  it('is off by default; several seed URLs need it; a braced prefix is refused with it', () => {
    expect(loadConfig(config, {}).DEDUPE_REDIS_CLUSTER).toBe(false);
    const urls = 'redis://127.0.0.1:7000,redis://127.0.0.1:7001';
    expect(() => loadConfig(config, { REDIS_URL: urls })).toThrow(
      /REDIS_URL.*DEDUPE_REDIS_CLUSTER=true/,
    );
    const c = loadConfig(config, { REDIS_URL: urls, DEDUPE_REDIS_CLUSTER: 'true' });
    expect(c.DEDUPE_REDIS_CLUSTER).toBe(true);
    expect(c.REDIS_URL.split(',')).toHaveLength(2);
    expect(() =>
      loadConfig(config, { REDIS_URL: `${urls},http://x:1`, DEDUPE_REDIS_CLUSTER: 'true' }),
    ).toThrow(/REDIS_URL/);
    expect(() =>
      loadConfig(config, {
        REDIS_URL: 'redis://127.0.0.1:7000,rediss://127.0.0.1:7001',
        DEDUPE_REDIS_CLUSTER: 'true',
      }),
    ).toThrow(/one scheme/);
    expect(() =>
      loadConfig(config, { DEDUPE_REDIS_CLUSTER: 'true', DEDUPE_KEY_PREFIX: '{x}:' }),
    ).toThrow(/DEDUPE_KEY_PREFIX/);
  });
});

import { Cluster } from 'ioredis';
import { redisCluster, type RedisCluster } from './redis-cluster';
import { portOpen } from './servers';

describe('redisCluster fixture (real redis-server processes)', () => {
  let cluster: RedisCluster | undefined;
  afterEach(async () => {
    await cluster?.destroy();
    cluster = undefined;
  });

  it('serves every slot from 3 masters with a replica each; a killed master is replaced by its replica', async () => {
    cluster = await redisCluster();
    const { masters, replicas } = await cluster.roles();
    expect(masters).toHaveLength(3);
    expect(replicas).toHaveLength(3);
    const client = new Cluster([cluster.nodes[0]!.url], { lazyConnect: true });
    try {
      await client.connect();
      // Keys of three tags that hash to slots of three different masters.
      for (let i = 0; i < 30; i++) await client.set(`k{${i}}`, String(i));
      expect(new Set(await Promise.all(client.nodes('master').map((n) => n.dbsize()))).has(0)).toBe(
        false,
      );
      const slot = Number(await cluster.cli(masters[0]!, 'CLUSTER', 'KEYSLOT', 'x'));
      const victim = await cluster.masterOf(slot);
      const heir = await cluster.replicaOf(victim);
      await cluster.kill(victim);
      expect(await portOpen(victim)).toBe(false);
      await cluster.healthy();
      expect(await cluster.masterOf(slot)).toBe(heir);
      // The old master comes back empty and rejoins as a replica of its heir.
      await cluster.start(victim);
      await cluster.healthy();
      expect((await cluster.roles()).replicas).toContain(victim);
    } finally {
      client.disconnect();
    }
    const nodes = cluster.nodes.map((n) => n.port);
    await cluster.destroy();
    cluster = undefined;
    for (const p of nodes) expect(await portOpen(p)).toBe(false);
  });
});

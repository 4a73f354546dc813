// Issue 15, item 3: dedupe claims on a real Redis Cluster (3 masters with a replica each, private
// redis-server processes on loopback from @sluice/testing's redisCluster). The store-level test checks
// where claims land and that the guard works per slot group; the process-level tests run dedupe's
// main.ts with DEDUPE_REDIS_CLUSTER=true through redelivery after a crash, failovers mid-run (a
// SIGKILLed master, and CLUSTER FAILOVER on a replica) and the claims' store down then back, and
// require every event in the clean stream exactly once.
//
// `CLUSTER_DEDUPE_RESEED=false` runs dedupe with DEDUPE_RESEED=false (claims trusted, no per-group
// guard): the store-down test then fails (resent events pass a second time).
import { ensureStream } from '@sluice/jetstream';
import type { Topology } from '@sluice/contracts';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import {
  natsFixture,
  redisCluster,
  rng,
  sleep,
  uniqueId,
  waitFor,
  type NatsFixture,
  type RedisCluster,
} from '@sluice/testing';
import type { Cluster } from 'ioredis';
import { RedisClusterClaimStore } from './cluster-claims';
import { ClaimsLostError } from './errors';
import { ClaimBatch, clusterKeySlot, clusterTags, groupGuardKeys, type ClaimLayout } from './keys';
import { connectRedisCluster } from './redis';
import {
  Children,
  cleanIds,
  consumerSettled,
  DEDUPE_MAIN,
  dedupeEnv,
  metricSum,
  newTopology,
  opsPort,
  publishRaw,
  repeated,
  type Reading,
} from './test-fixtures/processes';

const log = createLogger({
  service: 'dedupe-test',
  level: 'silent',
  hashDeviceId: createDeviceHasher('test-key-0123456789'),
});
/** Short, so whole batches re-sent under their own id pass JetStream's duplicate check. */
const RAW_DUPLICATE_WINDOW_MS = 1_000;

/** Readings of a few devices over 30 s of event time, ids unique per data set. */
function dataSet(seed: number) {
  const rand = rng(seed);
  const t0 = Date.now() - 120_000;
  const tag = uniqueId('r');
  let n = 0;
  const readings = (count: number): Reading[] =>
    Array.from({ length: count }, () => {
      const d = Math.floor(rand() * 6);
      return {
        id: `${tag}-${n++}`,
        device: `dev-${d}`,
        region: d < 3 ? 'eu' : 'us',
        sensor: 'temp',
        t: t0 + Math.floor(rand() * 30_000),
        value: Math.round(rand() * 10_000) / 100,
      };
    });
  const pick = <T>(xs: readonly T[], count: number): T[] =>
    Array.from({ length: count }, () => xs[Math.floor(rand() * xs.length)]!);
  return { readings, pick };
}

/** Publishes readings in raw batches of one region each (each also re-sending `overlap` of the one before). */
async function publishAll(
  nats: NatsFixture,
  t: Topology,
  readings: readonly Reading[],
  size = 20,
  overlap = 0,
): Promise<Array<{ id: string; readings: Reading[] }>> {
  const sent: Array<{ id: string; readings: Reading[] }> = [];
  for (const region of ['eu', 'us']) {
    const mine = readings.filter((r) => r.region === region);
    for (let i = 0; i < mine.length; i += size) {
      const b = [...mine.slice(Math.max(0, i - overlap), i), ...mine.slice(i, i + size)];
      sent.push({ id: await publishRaw(nats, t, b), readings: b });
    }
  }
  return sent;
}

describe('dedupe claims on a Redis Cluster (real 3-master cluster)', () => {
  let nats: NatsFixture;
  let cluster: RedisCluster | undefined;
  const children = new Children();
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterEach(async () => {
    await children.stopAll();
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    await cluster?.destroy();
    cluster = undefined;
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  /** A client of the test's cluster, ready, closed after the test. */
  async function client(): Promise<Cluster> {
    const c = connectRedisCluster({ urls: cluster!.url.split(','), commandTimeoutMs: 2_000, log });
    closers.push(() => c.stoppable.stop());
    await waitFor('cluster client ready', () => c.redis.status === 'ready', { timeoutMs: 20_000 });
    return c.redis;
  }

  it('claims spread over the masters in one slot per shard; a failover loses exactly the groups of the failed master', async () => {
    const t0 = Date.now();
    const mark = (what: string) =>
      process.env['DEBUG_CLUSTER'] && console.log(what, Date.now() - t0);
    cluster = await redisCluster();
    mark('cluster');
    const redis = await client();
    mark('client');
    const shards = 64;
    const layout: ClaimLayout = {
      prefix: `${uniqueId('cc')}:`,
      bucketMs: 600_000,
      shards,
      cluster: true,
    };
    const store = new RedisClusterClaimStore({
      cluster: redis,
      shards,
      ttlMs: 600_000,
      timeoutMs: 2_000,
    });
    const t = Date.now();
    const batchOf = (owner: string, ids: readonly string[]) => {
      const b = new ClaimBatch(layout);
      const o = b.owner(owner);
      for (const id of ids) b.add(id, t, o);
      return b;
    };
    const ids = Array.from({ length: 3_000 }, (_, i) => `ev-${i}`);

    // An empty cluster: no guard anywhere. A seed of nothing commits every group's guard.
    await expect(store.probe(layout.prefix)).rejects.toBeInstanceOf(ClaimsLostError);
    await expect(store.claim(batchOf('RAW:1', ids))).rejects.toBeInstanceOf(ClaimsLostError);
    expect(await store.beginSeed(layout.prefix, 'seed-1', 15_000)).toBe('started');
    expect(await store.commitSeed(layout.prefix, 'seed-1')).toBe('committed');
    await store.probe(layout.prefix);
    expect(await store.beginSeed(layout.prefix, 'seed-x', 15_000)).toBe('valid');

    // Claims: new, then ours on a redelivery, theirs for another raw message; in one call, the earlier wins.
    expect(new Set(await store.claim(batchOf('RAW:1', ids)))).toEqual(new Set(['new']));
    expect(new Set(await store.claim(batchOf('RAW:1', ids)))).toEqual(new Set(['ours']));
    expect(new Set(await store.claim(batchOf('RAW:2', ids)))).toEqual(new Set(['theirs']));
    const race = new ClaimBatch(layout);
    const [o3, o4] = [race.owner('RAW:3'), race.owner('RAW:4')];
    race.add('race-1', t, o3);
    race.add('race-1', t, o4);
    expect(await store.claim(race)).toEqual(['new', 'theirs']);

    mark('claimed');
    // Every master holds claim hashes, and Redis computes the slot we route by.
    const { masters } = await cluster.roles();
    expect(masters).toHaveLength(3);
    for (const port of masters) {
      const keys = (await cluster.cli(port, '--scan', '--pattern', `${layout.prefix}claims:*`))
        .trim()
        .split('\n')
        .filter(Boolean);
      expect(keys.length).toBeGreaterThan(10);
      for (const key of keys.slice(0, 5))
        expect(Number(await cluster.cli(port, 'CLUSTER', 'KEYSLOT', key))).toBe(
          clusterKeySlot(key),
        );
    }

    mark('scanned');
    // The master of shard 0's slot dies; its replica takes over (and may have missed writes).
    const tags = clusterTags(shards);
    const masterOf = await cluster.slotMasters();
    const victim = masterOf(clusterKeySlot(tags[0]!));
    const onVictim = new Set<number>();
    for (let s = 0; s < shards; s++)
      if (masterOf(clusterKeySlot(tags[s]!)) === victim) onVictim.add(s);
    mark('before kill');
    await cluster.kill(victim);
    await cluster.healthy();
    mark('healthy');
    const lost = await waitFor(
      'the promoted replica refusing claims of its groups',
      async () => {
        try {
          await store.probe(layout.prefix);
          return undefined;
        } catch (err) {
          return err instanceof ClaimsLostError ? err : undefined;
        }
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    mark('lost');
    // Another run id answers for the groups; a replica that had not received the guard yet (the
    // cluster is seconds old) has none: either way the loss is seen.
    expect(['restarted', 'missing']).toContain(lost.reason);

    // Claims in the other masters' groups go on; a batch touching a lost group claims nothing there.
    const shardOf = (id: string) => {
      const b = batchOf('x', [id]);
      return b.shardOf(b.slots[0]!);
    };
    const elsewhere = ids.filter((id) => !onVictim.has(shardOf(id)));
    expect(new Set(await store.claim(batchOf('RAW:2', elsewhere)))).toEqual(new Set(['theirs']));
    await expect(store.claim(batchOf('RAW:2', ids))).rejects.toBeInstanceOf(ClaimsLostError);

    // A re-seed marks exactly the failed master's groups, and only their claims are written.
    expect(await store.beginSeed(layout.prefix, 'seed-2', 15_000)).toBe('started');
    const marked = new Set<number>();
    for (let s = 0; s < shards; s++) {
      const { lease } = groupGuardKeys(layout.prefix, shards, s);
      if ((await redis.exists(lease)) === 1) marked.add(s);
    }
    expect([...marked].sort((a, b) => a - b)).toEqual([...onVictim].sort((a, b) => a - b));
    // The promoted replica holds what replication brought it: re-seeded claims are new or ours.
    const seeded = await store.claim(batchOf('RAW:1', ids), { seedToken: 'seed-2' });
    expect(seeded.filter((r) => r === 'theirs')).toEqual([]);
    expect(await store.commitSeed(layout.prefix, 'seed-2')).toBe('committed');
    await store.probe(layout.prefix);
    expect(new Set(await store.claim(batchOf('RAW:1', ids)))).toEqual(new Set(['ours']));
    expect(new Set(await store.claim(batchOf('RAW:2', ids)))).toEqual(new Set(['theirs']));
  }, 180_000);

  /** A raw stream with a short duplicate window, and dedupe on the cluster as a real process. */
  async function startDedupe(prefix: string, env: Record<string, string> = {}) {
    const t = newTopology(nats, prefix);
    await ensureStream(nats.jsm, { ...t.streams.raw, duplicateWindowMs: RAW_DUPLICATE_WINDOW_MS });
    const spawn = (extra: Record<string, string> = {}) =>
      children.spawn(
        DEDUPE_MAIN,
        dedupeEnv(t, cluster!.url, {
          DEDUPE_REDIS_CLUSTER: 'true',
          DEDUPE_ACK_WAIT: '3s',
          DEDUPE_CLEAN_DUPLICATE_WINDOW: '1m',
          ...(process.env['CLUSTER_DEDUPE_RESEED']
            ? { DEDUPE_RESEED: process.env['CLUSTER_DEDUPE_RESEED'] }
            : {}),
          ...env,
          ...extra,
        }),
      );
    return { t, spawn };
  }

  /** Waits until the clean stream holds every distinct id of `all` and dedupe settled, then requires each once. */
  async function expectExactlyOnce(t: Topology, all: readonly Reading[], logs: () => string) {
    const want = [...new Set(all.map((r) => r.id))].sort();
    await waitFor(
      `clean stream to hold ${want.length} distinct events`,
      async () => new Set(await cleanIds(nats, t)).size >= want.length,
      { timeoutMs: 90_000, intervalMs: 250 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\ndedupe:\n${logs()}`);
    });
    await consumerSettled(nats, t.streams.raw.name, 'dedupe', 90_000);
    const ids = await cleanIds(nats, t);
    const have = new Set(ids);
    expect({
      repeatedInClean: repeated(ids),
      missingFromClean: want.filter((id) => !have.has(id)),
      unexpected: [...have].filter((id) => !want.includes(id)),
    }).toEqual({ repeatedInClean: [], missingFromClean: [], unexpected: [] });
    return ids.length;
  }

  it('exactly once under redelivery: a crash after claiming, resent events and whole batches', async () => {
    cluster = await redisCluster();
    const { t, spawn } = await startDedupe('cr');
    const data = dataSet(15);
    // The first process claims its first batch, then SIGKILLs itself before publishing it.
    const crashing = spawn({ DEDUPE_CRASH_AT: 'after-claim' });
    await opsPort(crashing, 'dedupe');
    const first = data.readings(400);
    const sent = await publishAll(nats, t, first, 20, 5);
    expect(await crashing.exited).toBe('SIGKILL');
    const dedupe = spawn();
    const port = await opsPort(dedupe, 'dedupe');
    await sleep(RAW_DUPLICATE_WINDOW_MS + 200);
    const again = [...data.pick(first, 100), ...data.readings(50)];
    await publishAll(nats, t, again, 25);
    for (const b of sent.slice(0, 3)) await publishRaw(nats, t, b.readings, b.id);
    const all = [...first, ...again];
    await expectExactlyOnce(t, all, () => dedupe.lines.slice(-30).join('\n'));
    // The redelivered batch found its own claims: kept as `ours`.
    expect(await metricSum(port, 'sluice_dedupe_claims_total', { result: 'ours' })).toBeGreaterThan(
      0,
    );
    expect(
      await metricSum(port, 'sluice_dedupe_duplicates_total', { reason: 'claimed' }),
    ).toBeGreaterThan(0);
  }, 180_000);

  it('failovers mid-run (a SIGKILLed master, then CLUSTER FAILOVER): nothing lost, nothing duplicated', async () => {
    cluster = await redisCluster();
    const { t, spawn } = await startDedupe('fo');
    const dedupe = spawn();
    const port = await opsPort(dedupe, 'dedupe');
    const logs = () => dedupe.lines.slice(-40).join('\n');
    const data = dataSet(1515);
    const all: Reading[] = [];
    // Steady input while the cluster fails over: 20 readings per batch, a quarter of them re-sent.
    let stop = false;
    const feeding = (async () => {
      while (!stop) {
        const fresh = data.readings(15);
        const batch = [...fresh, ...(all.length ? data.pick(all, 5) : [])];
        all.push(...fresh);
        await publishAll(nats, t, batch, 20);
        await sleep(20);
      }
    })();
    try {
      await waitFor('input flowing', () => all.length > 600, { timeoutMs: 30_000 });
      const committed = () =>
        metricSum(port, 'sluice_dedupe_reseeds_total', { outcome: 'committed' });
      const before = await committed();

      // 1. A master crashes; its replica is promoted (it may have missed the last claims).
      const { masters } = await cluster.roles();
      await cluster.kill(masters[0]!);
      await cluster.healthy();
      await waitFor('re-seed after the failover', async () => (await committed()) > before, {
        timeoutMs: 60_000,
        intervalMs: 250,
      }).catch((err) => {
        throw new Error(`${(err as Error).message}\n${logs()}`);
      });
      await waitFor('input flowing again', async () => all.length > 1_200, { timeoutMs: 30_000 });

      // 2. A coordinated failover: a replica of another master takes over (CLUSTER FAILOVER).
      const afterKill = await committed();
      const heir = await cluster.replicaOf(masters[1]!);
      expect((await cluster.cli(heir, 'CLUSTER', 'FAILOVER')).trim()).toBe('OK');
      await waitFor(
        'the replica promoted',
        async () => (await cluster!.roles()).masters.includes(heir),
        {
          timeoutMs: 30_000,
          intervalMs: 200,
        },
      );
      await cluster.healthy();
      await waitFor(
        're-seed after the manual failover',
        async () => (await committed()) > afterKill,
        {
          timeoutMs: 60_000,
          intervalMs: 250,
        },
      );
      await sleep(2_000);
    } finally {
      stop = true;
      await feeding;
    }
    // Then every reading once more, in new batches: all must be duplicates now.
    await publishAll(nats, t, data.pick(all, 300), 30);
    const copies = await expectExactlyOnce(t, all, logs);
    console.log(
      `cluster failovers: ${all.length} distinct readings, ${copies} clean copies, re-seeds committed ${await metricSum(port, 'sluice_dedupe_reseeds_total', { outcome: 'committed' })}`,
    );
  }, 300_000);

  it('the claims store down (a master and its replica), then back empty: held, re-seeded, exactly once', async () => {
    cluster = await redisCluster();
    const { t, spawn } = await startDedupe('dn');
    const dedupe = spawn();
    const port = await opsPort(dedupe, 'dedupe');
    const logs = () => dedupe.lines.slice(-40).join('\n');
    const data = dataSet(151515);
    const first = data.readings(300);
    await publishAll(nats, t, first, 20, 4);
    await expectExactlyOnce(t, first, logs);

    // One slot range has no node left: the cluster is down (every slot must be covered).
    const { masters } = await cluster.roles();
    const replica = await cluster.replicaOf(masters[2]!);
    await Promise.all([cluster.kill(masters[2]!), cluster.kill(replica)]);
    const during = [...data.pick(first, 50), ...data.readings(40)];
    await publishAll(nats, t, during, 15);
    await waitFor(
      'dedupe to report redis down',
      async () => (await metricSum(port, 'sluice_store_up', { store: 'redis' })) === 0,
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    // Nothing of the held input is published while the claims cannot be checked.
    const heldClean = new Set(await cleanIds(nats, t));
    expect(during.filter((r) => !first.some((f) => f.id === r.id) && heldClean.has(r.id))).toEqual(
      [],
    );

    // Both come back without their data (no persistence) on their nodes.conf.
    await Promise.all([cluster.start(masters[2]!), cluster.start(replica)]);
    await cluster.healthy();
    await sleep(RAW_DUPLICATE_WINDOW_MS + 200);
    const after = [...data.pick(first, 60), ...data.pick(during, 20), ...data.readings(30)];
    await publishAll(nats, t, after, 25);
    await expectExactlyOnce(t, [...first, ...during, ...after], logs);
    expect(await metricSum(port, 'sluice_store_up', { store: 'redis' })).toBe(1);
  }, 240_000);
});

import type { ChainableCommander, Cluster } from 'ioredis';
import {
  CLAIM_SCRIPT,
  COMMIT_SCRIPT,
  MAX_CLAIMS_PER_CALL,
  PROBE_SCRIPT,
  REDIS_STATE,
  REFRESH_SCRIPT,
  RELEASE_SCRIPT,
  RESULTS,
  scriptCall,
  scriptError,
  withTimeout,
  type ClaimOptions,
  type ClaimResult,
  type ClaimStore,
  type SeedCommit,
  type SeedStart,
} from './claims';
import { ClaimsLostError, RedisUnavailableError, SeedAbortedError } from './errors';
import { ClaimBatch, clusterKeySlot, groupGuardKeys, guardKeys } from './keys';

export interface RedisClusterClaimStoreOptions {
  /** An ioredis Cluster client (see `connectRedisCluster`). */
  cluster: Cluster;
  /** Shards of the claim layout (`DEDUPE_CLAIM_SHARDS`): the slot groups, one guard each. */
  shards: number;
  /** Claim lifetime. */
  ttlMs: number;
  /** Bound on one round trip (all masters' pipelines of a batch). */
  timeoutMs: number;
  /** Check the guard of its slot group on every claim call. Default true. */
  guard?: boolean;
}

// KEYS[1] the seed's overall lease; ARGV token, lease ms. 1 taken, 0 another holds it.
const LEASE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'token', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

// KEYS[1] a slot group's seed lease; ARGV token, lease ms. Records the node's run id and eviction
// count next to the token: the group's commit writes its guard only if they are still the same.
const PEND_SCRIPT = `${REDIS_STATE}
local run_id, evicted = redis_state()
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'run_id', run_id, 'evicted', evicted)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

type Pipe = ChainableCommander & {
  sluiceClaim(n: number, ...args: string[]): Pipe;
  sluiceProbe(n: number, ...args: string[]): Pipe;
  sluiceLease(n: number, ...args: string[]): Pipe;
  sluicePend(n: number, ...args: string[]): Pipe;
  sluiceSeedRefresh(n: number, ...args: string[]): Pipe;
  sluiceSeedCommit(n: number, ...args: string[]): Pipe;
  sluiceSeedRelease(n: number, ...args: string[]): Pipe;
};

type ScriptedCluster = Cluster & { sluiceClaim?: unknown };

/** One command of a round trip: a key of it routes it to its master. */
interface Routed {
  key: string;
  send(p: Pipe): void;
}

type Reply = [Error | null, unknown];

/** Replies that mean the slot map changed (failover, resharding) or a master went away. */
const TOPOLOGY =
  /^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN)\b|Connection is closed|isn't writeable|ECONNREFUSED/;

/**
 * Claims on a Redis Cluster. Every key of a shard carries the shard's hash tag (`ClaimLayout.cluster`),
 * so each shard is one slot group: its claim hashes of every bucket, its guard
 * (`<prefix>claims-epoch{tag}`) and its seed lease (`<prefix>claims-seeding{tag}`). A batch's claims are
 * split by shard, one script call per shard (≤ {@link MAX_CLAIMS_PER_CALL} claims each), and the calls
 * of the shards a master holds go out as one pipeline to it, all masters at once: one round trip per
 * batch, as on a single Redis. Of two requests for one event, the earlier still wins: both are in the
 * same shard, hence the same call or the same pipeline, in order.
 *
 * The guard works per slot group. Each group's guard holds the run id and eviction count of the master
 * it was seeded on, and every call checks its own group's guard against the master that runs it. A
 * failover (the promoted replica has another run id, and may have missed the last writes of the old
 * master), a restart, a flush or an eviction therefore fails the calls of exactly the groups that
 * master holds, and a re-seed restores those groups only. Groups on the other masters keep claiming
 * meanwhile. A slot migrated to another master carries its guard along, so it re-seeds too.
 *
 * A re-seed takes the overall lease (`<prefix>claims-seeding`), then marks every lost group with a lease
 * of its own that records the run id its master had; seeded claims are made under those group leases
 * only, and each group's commit writes its guard only when its master is still the same run. A group
 * whose master changed mid-seed stays lost and is seeded again.
 */
export class RedisClusterClaimStore implements ClaimStore {
  private readonly cluster: Cluster;
  readonly guarded: boolean;
  /** Per running re-seed token: the shards it restores and its lease time. */
  private readonly seeds = new Map<string, { shards: number[]; ttlMs: number }>();

  constructor(private readonly opts: RedisClusterClaimStoreOptions) {
    const cluster = opts.cluster as ScriptedCluster;
    this.cluster = cluster;
    this.guarded = opts.guard !== false;
    if (!cluster.sluiceClaim) {
      cluster.defineCommand('sluiceClaim', { lua: CLAIM_SCRIPT });
      cluster.defineCommand('sluiceProbe', { lua: PROBE_SCRIPT });
      cluster.defineCommand('sluiceLease', { lua: LEASE_SCRIPT });
      cluster.defineCommand('sluicePend', { lua: PEND_SCRIPT });
      cluster.defineCommand('sluiceSeedRefresh', { lua: REFRESH_SCRIPT });
      cluster.defineCommand('sluiceSeedCommit', { lua: COMMIT_SCRIPT });
      cluster.defineCommand('sluiceSeedRelease', { lua: RELEASE_SCRIPT });
    }
  }

  isReady(): boolean {
    return this.cluster.status === 'ready';
  }

  /**
   * One round trip: the commands grouped by the master the cluster client maps their slot to, one
   * pipeline per master, all at once. One reply per command, in order (errors as replies).
   */
  private async roundTrip(what: string, cmds: readonly Routed[]): Promise<Reply[]> {
    if (this.cluster.status !== 'ready')
      throw new RedisUnavailableError(`redis cluster connection is ${this.cluster.status}`);
    const byNode = new Map<string, number[]>();
    for (let c = 0; c < cmds.length; c++) {
      const node = this.cluster.slots[clusterKeySlot(cmds[c]!.key)]?.[0] ?? '';
      const list = byNode.get(node);
      if (list) list.push(c);
      else byNode.set(node, [c]);
    }
    const out = new Array<Reply>(cmds.length);
    const run = Promise.all(
      [...byNode.values()].map(async (list) => {
        const p = this.cluster.pipeline() as Pipe;
        for (const c of list) cmds[c]!.send(p);
        const replies = await p.exec();
        if (!replies || replies.length !== list.length)
          throw new RedisUnavailableError(
            `redis answered ${replies?.length ?? 0} of ${list.length} ${what} calls`,
          );
        for (let j = 0; j < list.length; j++) out[list[j]!] = replies[j] as Reply;
      }),
    );
    try {
      await withTimeout(run, this.opts.timeoutMs);
    } catch (err) {
      if (TOPOLOGY.test((err as Error).message)) this.refreshSlots();
      if (err instanceof RedisUnavailableError) throw err;
      throw new RedisUnavailableError(`redis ${what} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (out.some(([err]) => err && TOPOLOGY.test(err.message))) this.refreshSlots();
    return out;
  }

  /** Re-reads the slot map (after a failover the client learns the new master this way). */
  private refreshSlots(): void {
    this.cluster.refreshSlotsCache();
  }

  /** The first error of `replies` as a typed error (a lost claim first, so the gate re-seeds); else none. */
  private static failure(replies: readonly Reply[]): RedisUnavailableError | undefined {
    let first: RedisUnavailableError | undefined;
    for (const [err] of replies) {
      if (!err) continue;
      const typed = scriptError(err);
      if (typed instanceof ClaimsLostError) return typed;
      first ??= typed;
    }
    return first;
  }

  private groups(prefix: string) {
    return Array.from({ length: this.opts.shards }, (_, shard) =>
      groupGuardKeys(prefix, this.opts.shards, shard),
    );
  }

  /** The shards whose guard is not valid now (all of them fail their probe), or throws an outage. */
  private async lostShards(prefix: string): Promise<{ lost: number[]; first?: ClaimsLostError }> {
    const groups = this.groups(prefix);
    const now = String(Date.now());
    const replies = await this.roundTrip(
      'probe',
      groups.map((g) => ({ key: g.guard, send: (p) => p.sluiceProbe(1, g.guard, now) })),
    );
    const lost: number[] = [];
    let first: ClaimsLostError | undefined;
    for (let s = 0; s < replies.length; s++) {
      const [err] = replies[s]!;
      if (!err) continue;
      const typed = scriptError(err);
      if (!(typed instanceof ClaimsLostError)) throw typed;
      lost.push(s);
      first ??= typed;
    }
    return first ? { lost, first } : { lost };
  }

  async probe(prefix: string): Promise<void> {
    if (!this.guarded) {
      await this.roundTrip(
        'probe',
        this.groups(prefix).map((g) => ({ key: g.guard, send: (p) => p.exists(g.guard) })),
      ).then((r) => {
        const err = RedisClusterClaimStore.failure(r);
        if (err) throw err;
      });
      return;
    }
    const { first } = await this.lostShards(prefix);
    if (first) throw first;
  }

  async beginSeed(prefix: string, token: string, ttlMs: number): Promise<SeedStart> {
    const { lost } = await this.lostShards(prefix);
    if (lost.length === 0) return 'valid';
    const { lease } = guardKeys(prefix);
    const [taken] = await this.roundTrip('seed begin', [
      { key: lease, send: (p) => p.sluiceLease(1, lease, token, String(ttlMs)) },
    ]);
    if (taken![0]) throw scriptError(taken![0]);
    if (taken![1] !== 1) return 'busy';
    const groups = this.groups(prefix);
    const pend = await this.roundTrip(
      'seed begin',
      lost.map((s) => ({
        key: groups[s]!.lease,
        send: (p) => p.sluicePend(1, groups[s]!.lease, token, String(ttlMs)),
      })),
    );
    this.seeds.set(token, { shards: lost, ttlMs });
    const err = RedisClusterClaimStore.failure(pend);
    if (err) {
      await this.releaseSeed(prefix, token).catch(() => undefined);
      throw err;
    }
    return 'started';
  }

  /** The overall lease and every group lease of a seed. */
  private seedKeys(prefix: string, token: string): string[] {
    const groups = this.groups(prefix);
    const shards = this.seeds.get(token)?.shards ?? [];
    return [guardKeys(prefix).lease, ...shards.map((s) => groups[s]!.lease)];
  }

  async refreshSeed(prefix: string, token: string, ttlMs: number): Promise<boolean> {
    const replies = await this.roundTrip(
      'seed refresh',
      this.seedKeys(prefix, token).map((key) => ({
        key,
        send: (p) => p.sluiceSeedRefresh(1, key, token, String(ttlMs)),
      })),
    );
    const err = RedisClusterClaimStore.failure(replies);
    if (err) throw err;
    return replies.every(([, v]) => v === 1);
  }

  async commitSeed(prefix: string, token: string): Promise<SeedCommit> {
    const seed = this.seeds.get(token);
    const shards = seed?.shards ?? [];
    const { lease } = guardKeys(prefix);
    try {
      // Still this seed's? (Another seed may have taken over after a lapse.)
      const [held] = await this.roundTrip('seed commit', [
        {
          key: lease,
          send: (p) => p.sluiceSeedRefresh(1, lease, token, String(seed?.ttlMs ?? 15_000)),
        },
      ]);
      if (held![0]) throw scriptError(held![0]);
      if (held![1] !== 1) return 'aborted';
      const groups = this.groups(prefix);
      const now = String(Date.now());
      const replies = await this.roundTrip(
        'seed commit',
        shards.map((s) => ({
          key: groups[s]!.guard,
          send: (p) => p.sluiceSeedCommit(2, groups[s]!.guard, groups[s]!.lease, token, now),
        })),
      );
      const err = RedisClusterClaimStore.failure(replies);
      if (err) throw err;
      // A group whose master changed during the seed keeps no guard and is seeded again; the groups
      // committed are complete (their master ran the whole seed).
      if (replies.some(([, v]) => v === -1)) return 'changed';
      if (replies.some(([, v]) => v !== 1)) return 'aborted';
      return 'committed';
    } finally {
      await this.releaseSeed(prefix, token).catch(() => undefined);
    }
  }

  async releaseSeed(prefix: string, token: string): Promise<void> {
    const keys = this.seedKeys(prefix, token);
    this.seeds.delete(token);
    await this.roundTrip(
      'seed release',
      keys.map((key) => ({ key, send: (p) => p.sluiceSeedRelease(1, key, token) })),
    );
  }

  async claim(batch: ClaimBatch, opts: ClaimOptions = {}): Promise<ClaimResult[]> {
    const total = batch.length;
    if (total === 0) return [];
    const { seedToken } = opts;
    const { shards, prefix } = batch.layout;
    if (!batch.layout.cluster || shards !== this.opts.shards)
      throw new RangeError(
        `a cluster claim store needs a cluster layout of ${this.opts.shards} shards`,
      );
    const now = opts.claimedAtMs ?? Date.now();
    const out = new Array<ClaimResult>(total);
    // Claims by shard, in batch order within each.
    const byShard = new Map<number, number[]>();
    for (let i = 0; i < total; i++) {
      const shard = batch.shardOf(batch.slots[i]!);
      const list = byShard.get(shard);
      if (list) list.push(i);
      else byShard.set(shard, [i]);
    }
    // A re-seed restores only the groups it marked; the claims of the others are intact (`ours`).
    // A token this store did not begin (or already ended) claims nothing: its seed is over.
    const plan = seedToken !== undefined ? this.seeds.get(seedToken) : undefined;
    if (seedToken !== undefined && !plan) throw new SeedAbortedError();
    const seeding = plan ? new Set(plan.shards) : undefined;
    const groups = this.groups(prefix);
    const cmds: Routed[] = [];
    const orders: number[][] = [];
    for (const [shard, list] of byShard) {
      if (seeding && !seeding.has(shard)) {
        for (const i of list) out[i] = 'ours';
        continue;
      }
      const g = groups[shard]!;
      const guard =
        seedToken !== undefined
          ? { key: g.lease, mode: seedToken }
          : { key: g.guard, mode: this.guarded ? 'g' : 'n' };
      for (let start = 0; start < list.length; start += MAX_CLAIMS_PER_CALL) {
        const call = scriptCall(
          batch,
          list,
          start,
          Math.min(start + MAX_CLAIMS_PER_CALL, list.length),
          this.opts.ttlMs,
          now,
          guard,
        );
        cmds.push({
          key: g.guard,
          send: (p) => p.sluiceClaim(call.keys.length, ...call.keys, ...call.argv),
        });
        orders.push(call.order);
      }
    }
    const replies = await this.roundTrip('claim', cmds);
    const err = RedisClusterClaimStore.failure(replies);
    if (err) throw err;
    for (let c = 0; c < replies.length; c++) {
      const order = orders[c]!;
      const digits = String(replies[c]![1]);
      if (digits.length !== order.length)
        throw new RedisUnavailableError(
          `redis returned ${digits.length} claim results for ${order.length} claims`,
        );
      for (let j = 0; j < digits.length; j++) {
        const result = RESULTS[digits.charCodeAt(j) - 48];
        if (result === undefined)
          throw new RedisUnavailableError(`redis returned an unknown claim result ${digits[j]}`);
        out[order[j]!] = result;
      }
    }
    return out;
  }
}

import type Redis from 'ioredis';
import {
  ClaimsLostError,
  RedisUnavailableError,
  SeedAbortedError,
  type ClaimsLostReason,
} from './errors';
import { guardKeys, type ClaimBatch } from './keys';

/** `new`: claimed now; `ours`: already claimed by the same owner (a redelivery); `theirs`: a duplicate. */
export type ClaimResult = 'new' | 'ours' | 'theirs';

/** How a claim call is made: by the pipeline (guarded), or by a re-seed. */
export interface ClaimOptions {
  /** The re-seed whose lease the claims are made under (instead of the guard). Default none. */
  seedToken?: string;
  /**
   * When the claims were first made: a hash expires `ttl` after the later of its bucket end and this.
   * A re-seed passes the clean messages' publish time, so re-seeded claims expire when the originals
   * would have. Default now.
   */
  claimedAtMs?: number;
}

/** What {@link ClaimStore.beginSeed} found. */
export type SeedStart = 'started' | 'busy' | 'valid';
/** What {@link ClaimStore.commitSeed} did: `changed` = Redis restarted or evicted during the seed. */
export type SeedCommit = 'committed' | 'aborted' | 'changed';

/**
 * Claims event ids for owners, all requests of one call in one round trip.
 *
 * With the guard on, the claims are a cache of the clean stream: a guard hash (`<prefix>claims-epoch`)
 * records the Redis run id and eviction count under which they were seeded, and every claim call first
 * checks it. When Redis restarted, failed over, was flushed or evicted anything, the call fails with
 * {@link ClaimsLostError} and claims nothing until a re-seed from the clean stream commits a new guard.
 */
export interface ClaimStore {
  /**
   * One result per claim of the batch, in order. With `seedToken`, the claims are a re-seed's (made
   * under that seed's lease instead of the guard). Throws {@link RedisUnavailableError} and, with the
   * guard on, {@link ClaimsLostError}.
   */
  claim(batch: ClaimBatch, opts?: ClaimOptions): Promise<ClaimResult[]>;
  /** Whether the store can take a round trip now (readiness). */
  isReady(): boolean;
  /** Whether claim calls check the guard (then a re-seed must commit one before claims are made). */
  readonly guarded: boolean;
  /** One write round trip that throws unless claims can be made now (guard valid, Redis writable). */
  probe(prefix: string): Promise<void>;
  /** Takes the re-seed lease for `ttlMs` unless another holder has it or the guard is valid again. */
  beginSeed(prefix: string, token: string, ttlMs: number): Promise<SeedStart>;
  /** Extends the lease; false when it is no longer this token's (expired, or Redis lost it). */
  refreshSeed(prefix: string, token: string, ttlMs: number): Promise<boolean>;
  /** Writes the new guard if Redis is still the one the seed started on, and ends the lease. */
  commitSeed(prefix: string, token: string): Promise<SeedCommit>;
  /** Ends the lease if it is still this token's (a failed or stopped seed), so another can start at once. */
  releaseSeed(prefix: string, token: string): Promise<void>;
}

export interface RedisClaimStoreOptions {
  redis: Redis;
  /** Claim lifetime. */
  ttlMs: number;
  /** Bound on one round trip. */
  timeoutMs: number;
  /** Check the guard on every claim call (see {@link ClaimStore}). Default true. */
  guard?: boolean;
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new RedisUnavailableError(`redis round trip exceeded ${ms} ms`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Most claims one script call makes: bounds how long a single call holds Redis. */
export const MAX_CLAIMS_PER_CALL = 4096;

/** The Redis run id and eviction count, as the guard records them (Lua). */
export const REDIS_STATE = `
local function redis_state()
  local server = redis.call('INFO', 'server')
  local stats = redis.call('INFO', 'stats')
  local run_id = string.match(server, 'run_id:(%x+)')
  local evicted = string.match(stats, 'evicted_keys:(%d+)')
  -- Fail closed: without both, a lost claim could never be noticed.
  if not run_id or not evicted then error({err = 'SLUICE_CLAIMS_LOST unverifiable'}) end
  return run_id, evicted
end
`;

// KEYS[1]: the guard hash (mode 'g') or the seed lease (a seed token); KEYS[2..]: the claim hashes of
// this call. ARGV[1]: 'g' check the guard, 'n' no guard, else the seed token that must hold the lease.
// ARGV[2..#KEYS]: the expire-at (ms) each claim hash must reach. Then triples (key index, owner, fields
// joined by "\n": fields are never empty and hold no newline). Reply: one digit per field, in triple
// order: 0 new (HSETNX set it), 1 ours (it holds this owner: a redelivery), 2 theirs (a duplicate).
// Expiry is set after the fields exist and only moves later. The guard fails the whole call, before
// any claim, when Redis is not the one the claims were seeded on (restart, failover, flush, eviction).
export const CLAIM_SCRIPT = `${REDIS_STATE}
local mode = ARGV[1]
if mode == 'g' then
  local g = redis.call('HMGET', KEYS[1], 'run_id', 'evicted')
  if not g[1] then return redis.error_reply('SLUICE_CLAIMS_LOST missing') end
  local run_id, evicted = redis_state()
  if g[1] ~= run_id then return redis.error_reply('SLUICE_CLAIMS_LOST restarted') end
  if g[2] ~= evicted then return redis.error_reply('SLUICE_CLAIMS_LOST evicted') end
elseif mode ~= 'n' then
  if redis.call('HGET', KEYS[1], 'token') ~= mode then return redis.error_reply('SLUICE_SEED_ABORTED lease lost') end
end
local nk = #KEYS
local out = {}
local n = 0
for a = nk + 1, #ARGV, 3 do
  local h = KEYS[tonumber(ARGV[a])]
  local owner = ARGV[a + 1]
  for f in string.gmatch(ARGV[a + 2], '[^\\n]+') do
    n = n + 1
    if redis.call('HSETNX', h, f, owner) == 1 then out[n] = '0'
    elseif redis.call('HGET', h, f) == owner then out[n] = '1'
    else out[n] = '2' end
  end
end
for i = 2, nk do
  local at = tonumber(ARGV[i])
  if redis.call('PEXPIRETIME', KEYS[i]) < at then redis.call('PEXPIREAT', KEYS[i], at) end
end
return table.concat(out)
`;

// KEYS[1] guard. A write (so a Redis out of memory fails it), only when the guard is valid.
export const PROBE_SCRIPT = `${REDIS_STATE}
local g = redis.call('HMGET', KEYS[1], 'run_id', 'evicted')
if not g[1] then return redis.error_reply('SLUICE_CLAIMS_LOST missing') end
local run_id, evicted = redis_state()
if g[1] ~= run_id then return redis.error_reply('SLUICE_CLAIMS_LOST restarted') end
if g[2] ~= evicted then return redis.error_reply('SLUICE_CLAIMS_LOST evicted') end
redis.call('HSET', KEYS[1], 'probed_at', ARGV[1])
return 1
`;

// KEYS[1] guard, KEYS[2] lease; ARGV token, lease ms. 1 started, 0 busy, 2 the guard is valid.
const BEGIN_SCRIPT = `${REDIS_STATE}
local run_id, evicted = redis_state()
local g = redis.call('HMGET', KEYS[1], 'run_id', 'evicted')
if g[1] == run_id and g[2] == evicted then return 2 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'token', ARGV[1], 'run_id', run_id, 'evicted', evicted)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`;

// KEYS[1] lease; ARGV token.
export const RELEASE_SCRIPT = `
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

// KEYS[1] lease; ARGV token, lease ms.
export const REFRESH_SCRIPT = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

// KEYS[1] guard, KEYS[2] lease; ARGV token, now ms. 1 committed, 0 lease lost, -1 Redis changed
// under the seed (restarted, evicted): its claims cannot be trusted, the lease is dropped.
export const COMMIT_SCRIPT = `${REDIS_STATE}
local l = redis.call('HMGET', KEYS[2], 'token', 'run_id', 'evicted')
if l[1] ~= ARGV[1] then return 0 end
local run_id, evicted = redis_state()
redis.call('DEL', KEYS[2])
if l[2] ~= run_id or l[3] ~= evicted then return -1 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'run_id', run_id, 'evicted', evicted, 'seed', ARGV[1], 'seeded_at', ARGV[2])
return 1
`;

/** One script call's arguments and, per reply digit, the index of the claim it answers. */
export interface ScriptCall {
  keys: string[];
  argv: string[];
  order: number[];
}

/**
 * The script call for claims [from, to) (of `pick`, the claims' indexes, when given): grouped by hash
 * (stable, so a field's claims keep their order) and, inside a hash, by runs of one owner.
 */
export function scriptCall(
  batch: ClaimBatch,
  pick: readonly number[] | undefined,
  from: number,
  to: number,
  ttlMs: number,
  nowMs: number,
  guard: { key: string; mode: string },
): ScriptCall {
  const { slots, ownerOf, owners, fields } = batch;
  const bySlot = new Map<number, number[]>();
  for (let j = from; j < to; j++) {
    const i = pick ? pick[j]! : j;
    const list = bySlot.get(slots[i]!);
    if (list) list.push(i);
    else bySlot.set(slots[i]!, [i]);
  }
  const keys: string[] = [guard.key];
  const argv: string[] = [guard.mode];
  for (const slot of bySlot.keys()) {
    keys.push(batch.key(slot));
    argv.push(String(Math.max(batch.bucketEndMs(slot), nowMs) + ttlMs));
  }
  const order: number[] = [];
  let k = 1; // KEYS[1] is the guard
  for (const list of bySlot.values()) {
    k++;
    let run = 0;
    while (run < list.length) {
      const owner = ownerOf[list[run]!]!;
      let packed = '';
      let end = run;
      for (; end < list.length && ownerOf[list[end]!] === owner; end++) {
        const i = list[end]!;
        packed += end === run ? fields[i]! : `\n${fields[i]!}`;
        order.push(i);
      }
      argv.push(String(k), owners[owner]!, packed);
      run = end;
    }
  }
  return { keys, argv, order };
}

/** Reply digit ('0'..'2' as char code − 48) → result. */
export const RESULTS: readonly ClaimResult[] = ['new', 'ours', 'theirs'];

type ScriptedRedis = Redis & {
  sluiceClaim?: unknown;
  sluiceProbe(n: number, ...args: string[]): Promise<unknown>;
  sluiceSeedBegin(n: number, ...args: string[]): Promise<number>;
  sluiceSeedRefresh(n: number, ...args: string[]): Promise<number>;
  sluiceSeedCommit(n: number, ...args: string[]): Promise<number>;
  sluiceSeedRelease(n: number, ...args: string[]): Promise<number>;
};

export const LOST = /^SLUICE_CLAIMS_LOST (missing|restarted|evicted|unverifiable)/;

/** A script's error reply as the typed error it stands for. */
export function scriptError(err: Error): RedisUnavailableError {
  const lost = LOST.exec(err.message);
  if (lost) return new ClaimsLostError(lost[1] as ClaimsLostReason);
  if (err.message.startsWith('SLUICE_SEED_ABORTED')) return new SeedAbortedError();
  return new RedisUnavailableError(`redis refused a claim: ${err.message}`, { cause: err });
}

/**
 * Claims each event id with `HSETNX <bucket hash> <id> <owner>` (and `HGET` when it was already
 * there) inside a small Lua script: one claim costs Redis about half the CPU of `SET key NX GET PX`
 * on a key of its own (measured), and no per-claim expiry. A batch is split into calls of at most
 * {@link MAX_CLAIMS_PER_CALL} claims that go out as ONE pipeline: one round trip per batch. Redis runs
 * pipelined commands in order and a call keeps the order of each field's requests, so of two requests
 * for the same event the earlier one wins. All keys of a call must live on one Redis node (single
 * instance or primary/replica, not Cluster).
 */
export class RedisClaimStore implements ClaimStore {
  private readonly redis: ScriptedRedis;
  readonly guarded: boolean;

  constructor(private readonly opts: RedisClaimStoreOptions) {
    const redis = opts.redis as ScriptedRedis;
    this.redis = redis;
    this.guarded = opts.guard !== false;
    // Defined commands go out as EVALSHA and are loaded on NOSCRIPT (also after a Redis restart).
    if (!redis.sluiceClaim) {
      redis.defineCommand('sluiceClaim', { lua: CLAIM_SCRIPT });
      redis.defineCommand('sluiceProbe', { lua: PROBE_SCRIPT });
      redis.defineCommand('sluiceSeedBegin', { lua: BEGIN_SCRIPT });
      redis.defineCommand('sluiceSeedRefresh', { lua: REFRESH_SCRIPT });
      redis.defineCommand('sluiceSeedCommit', { lua: COMMIT_SCRIPT });
      redis.defineCommand('sluiceSeedRelease', { lua: RELEASE_SCRIPT });
    }
  }

  isReady(): boolean {
    return this.opts.redis.status === 'ready';
  }

  /** One bounded round trip of a control command, its failures as typed errors. */
  private async control<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready')
      throw new RedisUnavailableError(`redis connection is ${this.redis.status}`);
    try {
      return await withTimeout(run(), this.opts.timeoutMs);
    } catch (err) {
      if (err instanceof RedisUnavailableError) throw err;
      if (err instanceof Error && (LOST.test(err.message) || err.message.startsWith('SLUICE_')))
        throw scriptError(err);
      throw new RedisUnavailableError(`redis ${what} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async probe(prefix: string): Promise<void> {
    const { guard } = guardKeys(prefix);
    if (!this.guarded) await this.control('probe', () => this.redis.ping());
    else await this.control('probe', () => this.redis.sluiceProbe(1, guard, String(Date.now())));
  }

  async beginSeed(prefix: string, token: string, ttlMs: number): Promise<SeedStart> {
    const { guard, lease } = guardKeys(prefix);
    const r = await this.control('seed begin', () =>
      this.redis.sluiceSeedBegin(2, guard, lease, token, String(ttlMs)),
    );
    return r === 1 ? 'started' : r === 2 ? 'valid' : 'busy';
  }

  async refreshSeed(prefix: string, token: string, ttlMs: number): Promise<boolean> {
    const { lease } = guardKeys(prefix);
    return (
      (await this.control('seed refresh', () =>
        this.redis.sluiceSeedRefresh(1, lease, token, String(ttlMs)),
      )) === 1
    );
  }

  async commitSeed(prefix: string, token: string): Promise<SeedCommit> {
    const { guard, lease } = guardKeys(prefix);
    const r = await this.control('seed commit', () =>
      this.redis.sluiceSeedCommit(2, guard, lease, token, String(Date.now())),
    );
    return r === 1 ? 'committed' : r === -1 ? 'changed' : 'aborted';
  }

  async releaseSeed(prefix: string, token: string): Promise<void> {
    const { lease } = guardKeys(prefix);
    await this.control('seed release', () => this.redis.sluiceSeedRelease(1, lease, token));
  }

  async claim(batch: ClaimBatch, opts: ClaimOptions = {}): Promise<ClaimResult[]> {
    const { seedToken } = opts;
    const total = batch.length;
    if (total === 0) return [];
    const { redis, ttlMs, timeoutMs } = this.opts;
    // Without an offline queue a command sent while disconnected fails at once; checking first keeps
    // the error message clear and skips building a pipeline that cannot be sent.
    if (redis.status !== 'ready')
      throw new RedisUnavailableError(`redis connection is ${redis.status}`);
    const pipeline = redis.pipeline() as unknown as {
      sluiceClaim(n: number, ...args: string[]): void;
      exec(): Promise<Array<[Error | null, unknown]> | null>;
    };
    const now = opts.claimedAtMs ?? Date.now();
    const keys = guardKeys(batch.layout.prefix);
    const guard =
      seedToken !== undefined
        ? { key: keys.lease, mode: seedToken }
        : { key: keys.guard, mode: this.guarded ? 'g' : 'n' };
    const orders: number[][] = [];
    for (let start = 0; start < total; start += MAX_CLAIMS_PER_CALL) {
      const call = scriptCall(
        batch,
        undefined,
        start,
        Math.min(start + MAX_CLAIMS_PER_CALL, total),
        ttlMs,
        now,
        guard,
      );
      pipeline.sluiceClaim(call.keys.length, ...call.keys, ...call.argv);
      orders.push(call.order);
    }
    let replies: Array<[Error | null, unknown]> | null;
    try {
      replies = await withTimeout(pipeline.exec(), timeoutMs);
    } catch (err) {
      if (err instanceof RedisUnavailableError) throw err;
      throw new RedisUnavailableError(`redis round trip failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (!replies || replies.length !== orders.length)
      throw new RedisUnavailableError(
        `redis answered ${replies?.length ?? 0} of ${orders.length} claim calls`,
      );
    const out = new Array<ClaimResult>(total);
    let answered = 0;
    for (let c = 0; c < replies.length; c++) {
      const [err, value] = replies[c]!;
      if (err) throw scriptError(err);
      const order = orders[c]!;
      const digits = String(value);
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
      answered += digits.length;
    }
    if (answered !== total)
      throw new RedisUnavailableError(
        `redis returned ${answered} claim results for ${total} claims`,
      );
    return out;
  }
}

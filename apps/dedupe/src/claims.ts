import type Redis from 'ioredis';
import { RedisUnavailableError } from './errors';

/** `new`: claimed now; `ours`: already claimed by the same owner (a redelivery); `theirs`: a duplicate. */
export type ClaimResult = 'new' | 'ours' | 'theirs';

export interface ClaimRequest {
  key: string;
  owner: string;
}

/** Claims event ids for owners, all requests of one call in one round trip. */
export interface ClaimStore {
  /** One result per request, in order. Throws {@link RedisUnavailableError}. */
  claim(requests: readonly ClaimRequest[]): Promise<ClaimResult[]>;
  /** Whether the store can take a round trip now (readiness). */
  isReady(): boolean;
}

export interface RedisClaimStoreOptions {
  redis: Redis;
  /** Claim lifetime. */
  ttlMs: number;
  /** Bound on one round trip. */
  timeoutMs: number;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RedisUnavailableError(`redis round trip exceeded ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Most keys one script call touches: bounds how long a single call holds Redis. */
export const MAX_KEYS_PER_CALL = 4096;

// ARGV = ttl, then (owner, count) groups covering KEYS in order. SET NX GET (Redis >= 7.0) returns
// nil when it set the key, else the existing owner. Replies: 0 new, 1 ours, 2 theirs.
const CLAIM_SCRIPT = `
local ttl = ARGV[1]
local out = {}
local k = 1
local a = 2
while a <= #ARGV do
  local owner = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, n do
    local v = redis.call('SET', KEYS[k], owner, 'NX', 'GET', 'PX', ttl)
    if not v then out[k] = 0 elseif v == owner then out[k] = 1 else out[k] = 2 end
    k = k + 1
  end
end
return out
`;

const RESULTS: readonly ClaimResult[] = ['new', 'ours', 'theirs'];

type ClaimingRedis = Redis & { sluiceClaim?: unknown };

/**
 * Claims each key with `SET key owner NX GET PX ttl` inside a small Lua script (twice the
 * throughput of one pipelined SET per key, measured). A batch is split into calls of at most
 * {@link MAX_KEYS_PER_CALL} keys that go out as ONE pipeline: one round trip per batch. Redis runs
 * pipelined commands in order, so of two requests for the same key the earlier one wins. All keys
 * of a call must live on one Redis node (single instance or primary/replica, not Cluster).
 */
export class RedisClaimStore implements ClaimStore {
  constructor(private readonly opts: RedisClaimStoreOptions) {
    const redis = opts.redis as ClaimingRedis;
    // Defined commands go out as EVALSHA and are loaded on NOSCRIPT (also after a Redis restart).
    if (!redis.sluiceClaim) redis.defineCommand('sluiceClaim', { lua: CLAIM_SCRIPT });
  }

  isReady(): boolean {
    return this.opts.redis.status === 'ready';
  }

  async claim(requests: readonly ClaimRequest[]): Promise<ClaimResult[]> {
    if (requests.length === 0) return [];
    const { redis, ttlMs, timeoutMs } = this.opts;
    // Without an offline queue a command sent while disconnected fails at once; checking first keeps
    // the error message clear and skips building a pipeline that cannot be sent.
    if (redis.status !== 'ready') throw new RedisUnavailableError(`redis connection is ${redis.status}`);
    const pipeline = redis.pipeline() as unknown as { sluiceClaim(n: number, ...args: string[]): void; exec(): Promise<Array<[Error | null, unknown]> | null> };
    const ttl = String(ttlMs);
    for (let start = 0; start < requests.length; start += MAX_KEYS_PER_CALL) {
      const chunk = requests.slice(start, start + MAX_KEYS_PER_CALL);
      const argv: string[] = [ttl];
      let owner = chunk[0]!.owner;
      let count = 0;
      for (const r of chunk) {
        if (r.owner !== owner) {
          argv.push(owner, String(count));
          owner = r.owner;
          count = 0;
        }
        count++;
      }
      argv.push(owner, String(count));
      pipeline.sluiceClaim(chunk.length, ...chunk.map((r) => r.key), ...argv);
    }
    let replies: Array<[Error | null, unknown]> | null;
    try {
      replies = await withTimeout(pipeline.exec(), timeoutMs);
    } catch (err) {
      if (err instanceof RedisUnavailableError) throw err;
      throw new RedisUnavailableError(`redis round trip failed: ${(err as Error).message}`, { cause: err });
    }
    const out: ClaimResult[] = [];
    for (const [err, value] of replies ?? []) {
      if (err) throw new RedisUnavailableError(`redis refused a claim: ${err.message}`, { cause: err });
      for (const code of value as number[]) out.push(RESULTS[code]!);
    }
    if (out.length !== requests.length) {
      throw new RedisUnavailableError(`redis returned ${out.length} claim results for ${requests.length} claims`);
    }
    return out;
  }
}

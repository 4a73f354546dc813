import { tlsFailureReporter, type ClientTls } from '@sluice/config';
import type { DeviceHasher, Logger } from '@sluice/observability';
import type { Stoppable } from '@sluice/runtime';
import Redis from 'ioredis';
import type { Counter, Gauge, Histogram } from 'prom-client';

/** Options of {@link DeviceRateLimiter}. */
export interface RateLimitOptions {
  /** Sustained events per second per device. */
  ratePerSec: number;
  /** Bucket size: events a device may send at once after being idle. */
  burst: number;
  /** Devices tracked at once; the least recently seen are forgotten (they start with a full bucket). */
  maxDevices: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token bucket per device id, in this process (INGEST_RATE_LIMIT_STORE=local, or while Redis cannot
 * answer). {@link take} is all-or-nothing over one batch: either every device's
 * events fit and all are taken, or nothing is taken and the wait until they would fit is returned.
 */
export class DeviceRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;

  constructor(private readonly opts: RateLimitOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Takes `counts` (device → events); 0 when allowed, else the ms to wait before retrying. */
  take(counts: ReadonlyMap<string, number>): number {
    const now = this.now();
    let waitMs = 0;
    for (const [device, n] of counts) {
      const b = this.refill(device, now);
      if (n > this.opts.burst) {
        // Can never fit at once: advise the time to refill a full bucket; the device must split.
        waitMs = Math.max(waitMs, Math.ceil((this.opts.burst / this.opts.ratePerSec) * 1000));
      } else if (b.tokens < n) {
        waitMs = Math.max(waitMs, Math.ceil(((n - b.tokens) / this.opts.ratePerSec) * 1000));
      }
    }
    if (waitMs > 0) return waitMs;
    for (const [device, n] of counts) this.buckets.get(device)!.tokens -= n;
    return 0;
  }

  get trackedDevices(): number {
    return this.buckets.size;
  }

  private refill(device: string, now: number): Bucket {
    let b = this.buckets.get(device);
    if (b === undefined) {
      if (this.buckets.size >= this.opts.maxDevices) {
        const oldest = this.buckets.keys().next().value as string;
        this.buckets.delete(oldest);
      }
      b = { tokens: this.opts.burst, at: now };
    } else {
      b.tokens = Math.min(this.opts.burst, b.tokens + ((now - b.at) / 1000) * this.opts.ratePerSec);
      b.at = now;
      this.buckets.delete(device); // re-insert: Map order doubles as least-recently-seen order
    }
    this.buckets.set(device, b);
    return b;
  }
}

/** Decides whether a batch fits its devices' rate: 0 when it does (and takes it), else ms to wait. */
export interface RateLimiter {
  take(counts: ReadonlyMap<string, number>): number | Promise<number>;
}

/**
 * KEYS: one bucket per device (its theoretical arrival time, µs). ARGV: emission interval µs,
 * tolerance µs (burst × interval), then per device the events it needs now and the tokens it would
 * like to lease (≥ need). GCRA, all or nothing over the needs, on Redis's clock. Returns `{ wait }`
 * (ms until every need would fit) when one does not fit, else `{ 0, grant… }`: each device is granted
 * its lease, or as much of it as fits (never less than its need).
 */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local waitUs = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local cost = tonumber(ARGV[2 * i + 1]) * interval
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  local w = tat + cost - now - tolerance
  if cost > tolerance then w = tolerance end
  if w > waitUs then waitUs = w end
end
if waitUs > 0 then return { math.ceil(waitUs / 1000) } end
local out = { 0 }
for i, key in ipairs(KEYS) do
  local need = tonumber(ARGV[2 * i + 1])
  local grant = math.floor((now + tolerance - tats[i]) / interval)
  local want = tonumber(ARGV[2 * i + 2])
  if grant > want then grant = want end
  if grant < need then grant = need end
  local tat = tats[i] + grant * interval
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  out[i + 1] = grant
end
return out
`;

interface ScriptedRedis extends Redis {
  ingestRateTake(numKeys: number, ...args: Array<string | number>): Promise<number[]>;
}

/** Outages closer together than this are logged once (each is counted in the metrics). */
const OUTAGE_LOG_INTERVAL_MS = 60_000;

/** The metrics of {@link SharedRateLimiter} (from `createIngestMetrics`). */
export interface SharedRateLimitMetrics {
  rateLimitStoreUp: Gauge;
  rateLimitFallbacks: Counter;
  rateLimitOutages: Counter;
  rateLimitRoundTrip: Histogram;
  rateLimitLeaseHits: Counter;
}

/** Options of {@link SharedRateLimiter}. */
export interface SharedRateLimitOptions {
  redis: Redis;
  /** Key prefix of this namespace ({@link rateLimitPrefix}). */
  prefix: string;
  /** Keys carry the keyed hash of a device id: the raw id never reaches Redis. */
  hashDeviceId: DeviceHasher;
  /** Sustained events per second per device. */
  ratePerSec: number;
  /** Events a device may send at once after being idle. */
  burst: number;
  /** Decides while Redis cannot answer: the per-process buckets. */
  local: DeviceRateLimiter;
  metrics: SharedRateLimitMetrics;
  log: Logger;
  /** After a failed round trip, decide per process for this long before trying Redis again. Default 1 s. */
  retryAfterMs?: number;
  /**
   * How long tokens leased from the shared bucket may be spent by this process; 0 takes exactly each
   * batch's events from Redis (one round trip per batch). Default 50 ms.
   */
  leaseMs?: number;
  /** Devices holding a lease at once in this process (least recently seen are dropped). Default 100,000. */
  maxLeases?: number;
}

interface Lease {
  tokens: number;
  expiresAt: number;
}

/** `sluice:<namespace|default>:ingest:rate:` */
export function rateLimitPrefix(namespace: string): string {
  return `sluice:${namespace || 'default'}:ingest:rate:`;
}

/**
 * The per-device token bucket shared by every gateway replica (GCRA in Redis, the same all-or-nothing
 * answer as {@link DeviceRateLimiter}), a key per device that expires once its bucket is full again, so
 * Redis holds only the devices seen within `burst / rate` seconds.
 *
 * Leases (docs/DECISIONS.md #28): when a device's batch needs tokens, the process takes from Redis
 * what the batch needs plus up to `rate × leaseMs` more (at most a tenth of the burst), and spends the
 * rest on the device's next batches for `leaseMs`; only batches the lease cannot cover go to Redis, in
 * one script call for all their devices. Tokens are only ever spent after Redis granted them, so
 * replicas together never admit more than the shared bucket allows by the time they spend; in any
 * window a device gets at most one lease (`rate × leaseMs`) more than the bucket's own envelope, and a
 * replica's unspent lease expires unused (the device is under-admitted by at most that).
 *
 * While Redis cannot answer (not connected, an error, a timeout) the per-process buckets decide instead:
 * one warning per outage (at most one a minute), `sluice_ingest_rate_limit_store_up` 0, every outage
 * counted in `sluice_ingest_rate_limit_outages_total` and every such batch in
 * `sluice_ingest_rate_limit_fallbacks_total`; each replica then allows a device up to its own rate.
 */
export class SharedRateLimiter implements RateLimiter {
  private readonly redis: ScriptedRedis;
  private readonly intervalUs: number;
  private readonly toleranceUs: number;
  private readonly retryAfterMs: number;
  private readonly leaseMs: number;
  private readonly leaseTokens: number;
  private readonly maxLeases: number;
  /** Map order doubles as least-recently-used order. */
  private readonly leases = new Map<string, Lease>();
  private down: { since: number; batches: number; logged: boolean } | undefined;
  private retryAt = 0;
  private lastWarnAt = Number.NEGATIVE_INFINITY;
  private outagesNotLogged = 0;

  constructor(private readonly opts: SharedRateLimitOptions) {
    const redis = opts.redis as ScriptedRedis;
    if (!redis.ingestRateTake) redis.defineCommand('ingestRateTake', { lua: TAKE });
    this.redis = redis;
    this.intervalUs = 1e6 / opts.ratePerSec;
    this.toleranceUs = opts.burst * this.intervalUs;
    this.retryAfterMs = opts.retryAfterMs ?? 1_000;
    this.leaseMs = opts.leaseMs ?? 50;
    this.leaseTokens =
      this.leaseMs > 0
        ? Math.max(
            1,
            Math.min(
              Math.ceil((opts.ratePerSec * this.leaseMs) / 1000),
              Math.floor(opts.burst / 10),
            ),
          )
        : 0;
    this.maxLeases = opts.maxLeases ?? 100_000;
    opts.metrics.rateLimitStoreUp.set(1);
  }

  /** Whether the shared buckets decide now (false during an outage). */
  get shared(): boolean {
    return this.down === undefined;
  }

  take(counts: ReadonlyMap<string, number>): number | Promise<number> {
    if (this.redis.status !== 'ready' || Date.now() < this.retryAt)
      return this.fallBack(counts, `redis is ${this.redis.status}`);
    const now = Date.now();
    let short: Map<string, number> | undefined;
    for (const [device, n] of counts) {
      const have = this.leaseOf(device, now);
      if (have < n) (short ??= new Map()).set(device, n - have);
    }
    if (short === undefined) {
      for (const [device, n] of counts) this.leases.get(device)!.tokens -= n;
      this.opts.metrics.rateLimitLeaseHits.inc();
      return 0;
    }
    return this.takeShared(counts, short, now);
  }

  /** Unexpired leased tokens of `device` (0 without a lease). */
  private leaseOf(device: string, now: number): number {
    const lease = this.leases.get(device);
    if (lease === undefined) return 0;
    if (lease.expiresAt <= now) {
      this.leases.delete(device);
      return 0;
    }
    return lease.tokens;
  }

  /**
   * Reserves what the leases cover, asks Redis for the rest (`short`: device → events missing) plus a
   * new lease, and gives the reservation back when Redis refuses or cannot answer.
   */
  private async takeShared(
    counts: ReadonlyMap<string, number>,
    short: ReadonlyMap<string, number>,
    now: number,
  ): Promise<number> {
    const reserved: Array<[Lease, number]> = [];
    for (const [device, n] of counts) {
      const lease = this.leases.get(device);
      if (lease === undefined) continue;
      const r = Math.min(lease.tokens, n);
      lease.tokens -= r;
      reserved.push([lease, r]);
    }
    const giveBack = () => {
      for (const [lease, r] of reserved) lease.tokens += r;
    };
    const keys: string[] = [];
    const args: Array<string | number> = [this.intervalUs, this.toleranceUs];
    for (const [device, need] of short) {
      keys.push(this.opts.prefix + this.opts.hashDeviceId(device));
      args.push(need, Math.max(need, this.leaseTokens));
    }
    const started = performance.now();
    let answer: number[];
    try {
      answer = await this.redis.ingestRateTake(keys.length, ...keys, ...args);
    } catch (err) {
      giveBack();
      return this.fallBack(counts, err);
    }
    this.opts.metrics.rateLimitRoundTrip.observe((performance.now() - started) / 1000);
    this.recovered();
    const waitMs = Number(answer[0]);
    if (waitMs > 0) {
      giveBack();
      return waitMs;
    }
    if (this.leaseMs > 0) {
      let i = 1;
      const expiresAt = now + this.leaseMs;
      for (const [device, need] of short) {
        const spare = Number(answer[i++]) - need;
        this.leases.delete(device);
        if (spare > 0) this.leases.set(device, { tokens: spare, expiresAt });
      }
      while (this.leases.size > this.maxLeases)
        this.leases.delete(this.leases.keys().next().value as string);
    }
    return 0;
  }

  private recovered(): void {
    if (!this.down) return;
    const { since, batches, logged } = this.down;
    this.down = undefined;
    this.opts.metrics.rateLimitStoreUp.set(1);
    if (logged)
      this.opts.log.info(
        { downForMs: Date.now() - since, perProcessBatches: batches },
        'redis answers again: device rate limits are shared by the gateway replicas again',
      );
  }

  private fallBack(counts: ReadonlyMap<string, number>, err: unknown): number {
    this.opts.metrics.rateLimitFallbacks.inc();
    if (!this.down) {
      const now = Date.now();
      // A Redis that keeps timing out now and then is logged once a minute, not per outage.
      const logged = now - this.lastWarnAt >= OUTAGE_LOG_INTERVAL_MS;
      this.down = { since: now, batches: 0, logged };
      this.retryAt = now + this.retryAfterMs;
      this.opts.metrics.rateLimitStoreUp.set(0);
      this.opts.metrics.rateLimitOutages.inc();
      if (logged) {
        this.lastWarnAt = now;
        this.opts.log.warn(
          {
            err: err instanceof Error ? err.message : String(err),
            outagesNotLogged: this.outagesNotLogged,
          },
          'redis unavailable: device rate limits are per gateway process until it answers',
        );
        this.outagesNotLogged = 0;
      } else this.outagesNotLogged++;
    } else if (Date.now() >= this.retryAt) this.retryAt = Date.now() + this.retryAfterMs;
    this.down.batches++;
    return this.opts.local.take(counts);
  }
}

/**
 * The rate limiter's Redis connection: never queues (a command while disconnected fails at once and
 * the batch is decided per process), no command retries, `commandTimeoutMs` on every command,
 * reconnects at most 500 ms apart in the background. Resolves once connected or after `readyWaitMs`
 * (then the gateway starts with per-process limits, reported once).
 */
export async function connectRateLimitRedis(opts: {
  url: string;
  /** TLS for a `rediss://` URL (`redisTls(config)` of @sluice/config). Default none. */
  tls?: ClientTls | undefined;
  commandTimeoutMs: number;
  readyWaitMs: number;
  /** Where a failed TLS handshake is reported (an error naming the REDIS_TLS_* setting to fix). */
  log: Pick<Logger, 'error'>;
}): Promise<{ redis: Redis; stoppable: Stoppable }> {
  const redis = new Redis(opts.url, {
    ...(opts.tls ? { tls: opts.tls.options } : {}),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: 5_000,
    // How long a closed connection's socket may linger (ioredis default 2 s, which delays exit).
    disconnectTimeout: 500,
    retryStrategy: (times) => Math.min(times * 100, 500),
    connectionName: 'sluice-ingestion',
  });
  // Outages are reported by the limiter (once each), not per reconnect attempt; a TLS failure,
  // which needs a person, is reported here, explained.
  const tlsFailure = opts.tls ? tlsFailureReporter(opts.tls.peer, opts.log) : () => false;
  redis.on('error', (err) => void tlsFailure(err));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    redis.connect().catch(() => undefined),
    new Promise((r) => (timer = setTimeout(r, opts.readyWaitMs))),
  ]);
  clearTimeout(timer);
  return {
    redis,
    stoppable: {
      name: 'redis',
      stop: async () => {
        let t: NodeJS.Timeout | undefined;
        await Promise.race([
          redis.status === 'ready' ? redis.quit().catch(() => undefined) : undefined,
          new Promise((r) => (t = setTimeout(r, 2_000))),
        ]);
        clearTimeout(t);
        redis.disconnect();
      },
    },
  };
}

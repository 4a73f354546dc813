// Per-endpoint admission shared by every replica. One Lua script per attempt checks the endpoint's
// pause, drops expired leases, and takes concurrency leases each with a rate token (or none), on
// Redis's clock; a process with deliveries queued for the endpoint asks for as many as it has waiting. Leases carry an expiry and are renewed while held, so the slots of a replica that
// died free themselves within the lease time. A delivery that finds its endpoint busy waits in a
// bounded local queue and tries again (at once when this process gives a slot back, else after a
// short poll or the rate limiter's wait). While Redis cannot answer, the per-process EndpointGates
// decide instead (SharedStateHealth reports it).
import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import {
  EndpointGates,
  type Admission,
  type EndpointGatesOptions,
  type GateLimits,
  type Gates,
} from './endpoint-gate';
import type { SharedStateHealth } from './shared-state';

/**
 * KEYS: slots (sorted set lease → expiry ms), rate (theoretical arrival time, µs), pause.
 * ARGV: lease id base, max concurrency, emission interval µs, tolerance µs, lease ms, leases wanted,
 * then leases given back (removed first). Takes as many leases as are wanted, free and have a rate token (`<base>.1`, `<base>.2`, ...), each
 * with its token, or none. Returns {taken, why, ms}: why 0 all taken; 1 paused for ms; 2 every slot
 * held; 3 the next token is due in ms.
 */
const ACQUIRE = `
local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowMs = math.floor(nowUs / 1000)
for i = 7, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
local paused = redis.call('PTTL', KEYS[3])
if paused > 0 then return {0, 1, paused} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs)
local wanted = tonumber(ARGV[6])
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
if free <= 0 then return {0, 2, 0} end
local interval = tonumber(ARGV[3])
local tolerance = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < nowUs then tat = nowUs end
local tokens = math.floor((nowUs + tolerance - tat) / interval + 1e-9)
local n = math.min(wanted, free, tokens)
if n <= 0 then return {0, 3, math.ceil((tat + interval - tolerance - nowUs) / 1000)} end
tat = tat + n * interval
redis.call('SET', KEYS[2], string.format('%.0f', tat), 'PX', math.ceil((tat - nowUs) / 1000) + 1)
local leaseMs = tonumber(ARGV[5])
for i = 1, n do redis.call('ZADD', KEYS[1], nowMs + leaseMs, ARGV[1] .. '.' .. i) end
redis.call('PEXPIRE', KEYS[1], leaseMs + 1000)
if n == wanted then return {n, 0, 0} end
if n == free then return {n, 2, 0} end
return {n, 3, math.ceil((tat + interval - tolerance - nowUs) / 1000)}
`;

/** KEYS: the slots key of each lease. ARGV: lease ms, then the lease ids. Returns how many were still held. */
const RENEW = `
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[1])
local held = 0
for i, key in ipairs(KEYS) do
  held = held + redis.call('ZADD', key, 'XX', 'CH', nowMs + ms, ARGV[i + 1])
  redis.call('PEXPIRE', key, ms + 1000)
end
return held
`;

/** KEYS: pause. ARGV: ms. Keeps the longer of the current and the new pause. */
const PAUSE = `
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return 1
`;

interface ScriptedRedis extends Redis {
  whkAcquire(numKeys: number, ...args: Array<string | number>): Promise<[number, number, number]>;
  whkRenew(numKeys: number, ...args: Array<string | number>): Promise<number>;
  whkPause(numKeys: number, ...args: Array<string | number>): Promise<number>;
}

/** What one acquire round trip gave: leases taken (in order), and why not more. */
interface Attempt {
  leases: string[];
  why: 'none' | 'paused' | 'busy' | 'rate';
  /** Pause left, or wait for the next token, ms. */
  ms: number;
}

interface Waiter {
  limits: GateLimits;
  resolve: (a: Admission | Promise<Admission>) => void;
  timer: NodeJS.Timeout;
  settled: boolean;
}

class SharedGate {
  readonly queue: Waiter[] = [];
  /** The endpoint's pause as last seen (set here or read from Redis), so a paused endpoint costs no round trip. */
  pausedUntil = 0;
  pumping = false;
  /** A slot of the endpoint was given back here since the pump's last round trip began. */
  released = false;
  /** Leases given back while deliveries wait here: removed by the pump's next round trip. */
  readonly toRelease: string[] = [];
  /** Ends the pump's current wait (a slot was given back here). */
  wake: (() => void) | undefined;
}

export interface SharedEndpointGatesOptions extends EndpointGatesOptions {
  redis: Redis;
  health: SharedStateHealth;
  /** Key prefix of this namespace (`sharedStatePrefix()`). */
  prefix: string;
  /**
   * Lifetime of a concurrency slot's lease: renewed every third of it while held, so it only runs
   * out when its replica stopped (crash, SIGKILL, partition) — then the slot frees itself.
   */
  leaseMs: number;
  /** Wait before trying again while every slot of the endpoint is held elsewhere. Default 25 ms. */
  busyPollMs?: number;
}

export class SharedEndpointGates implements Gates {
  private readonly redis: ScriptedRedis;
  private readonly local: EndpointGates;
  private readonly gates = new Map<string, SharedGate>();
  /** Leases held by this process → their slots key (renewed together). */
  private readonly held = new Map<string, string>();
  private readonly leasePrefix = `${process.pid}.${randomBytes(4).toString('hex')}.`;
  private leaseSeq = 0;
  private readonly queueSize: number;
  private readonly maxQueueWaitMs: number;
  private readonly busyDelayMs: number;
  private readonly busyPollMs: number;
  private readonly renewTimer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly opts: SharedEndpointGatesOptions) {
    const redis = opts.redis as ScriptedRedis;
    if (!redis.whkAcquire) {
      redis.defineCommand('whkAcquire', { lua: ACQUIRE });
      redis.defineCommand('whkRenew', { lua: RENEW });
      redis.defineCommand('whkPause', { lua: PAUSE });
    }
    this.redis = redis;
    this.local = new EndpointGates(opts);
    this.queueSize = opts.queueSize ?? 64;
    this.maxQueueWaitMs = opts.maxQueueWaitMs ?? 5_000;
    this.busyDelayMs = opts.busyDelayMs ?? 1_000;
    this.busyPollMs = opts.busyPollMs ?? 25;
    this.renewTimer = setInterval(() => void this.renew(), Math.max(100, opts.leaseMs / 3));
    this.renewTimer.unref();
  }

  /** Leases this process holds in Redis now. */
  get heldLeases(): number {
    return this.held.size;
  }

  private keys(id: string) {
    const base = `${this.opts.prefix}ep:{${id}}:`;
    return { slots: `${base}slots`, rate: `${base}rate`, pause: `${base}pause` };
  }

  private gate(id: string): SharedGate {
    let g = this.gates.get(id);
    if (!g) this.gates.set(id, (g = new SharedGate()));
    return g;
  }

  private forgetIfIdle(id: string, g: SharedGate): void {
    if (g.queue.length === 0 && !g.pumping && g.pausedUntil <= Date.now()) this.gates.delete(id);
  }

  private busy(): Admission {
    return {
      type: 'defer',
      delayMs: Math.round(this.busyDelayMs * (0.75 + Math.random() * 0.5)),
      reason: 'busy',
    };
  }

  private paused(g: SharedGate): Admission {
    return {
      type: 'defer',
      delayMs: Math.max(0, g.pausedUntil - Date.now()) + Math.round(Math.random() * 250),
      reason: 'paused',
    };
  }

  acquire(id: string, limits: GateLimits): Promise<Admission> | Admission {
    if (this.closed) return { type: 'defer', delayMs: 0, reason: 'busy' };
    if (!this.opts.health.usable()) {
      this.opts.health.fellBack('endpoint_limits');
      return this.local.acquire(id, limits);
    }
    const g = this.gate(id);
    if (g.pausedUntil > Date.now()) return this.paused(g);
    if (g.queue.length > 0) {
      if (g.queue.length >= this.queueSize) return this.busy();
      return this.enqueue(id, g, limits);
    }
    this.forgetIfIdle(id, g);
    return this.firstTry(id, limits);
  }

  private async firstTry(id: string, limits: GateLimits): Promise<Admission> {
    let a: Attempt;
    try {
      a = await this.attempt(id, limits, 1);
    } catch (err) {
      this.opts.health.fellBack('endpoint_limits', err);
      return this.local.acquire(id, limits);
    }
    // The gate as it is now (it may have been dropped as idle meanwhile).
    const g = this.gate(id);
    if (a.leases.length > 0) {
      this.forgetIfIdle(id, g);
      return { type: 'go', lease: a.leases[0]! };
    }
    if (a.why === 'paused') {
      g.pausedUntil = Math.max(g.pausedUntil, Date.now() + a.ms);
      return this.paused(g);
    }
    if (this.closed || g.queue.length >= this.queueSize) {
      this.forgetIfIdle(id, g);
      return this.busy();
    }
    return this.enqueue(id, g, limits);
  }

  /**
   * One round trip: up to `wanted` leases, each with a rate token, and why not more; `giveBack`
   * leases are removed first (a slot handed from a finished delivery to a waiting one).
   */
  private async attempt(
    id: string,
    limits: GateLimits,
    wanted: number,
    giveBack: readonly string[] = [],
  ): Promise<Attempt> {
    const k = this.keys(id);
    const base = `${this.leasePrefix}${++this.leaseSeq}`;
    const intervalUs = 1e6 / limits.ratePerS;
    const toleranceUs = Math.max(1, limits.ratePerS) * intervalUs;
    const [taken, why, ms] = await this.redis.whkAcquire(
      3,
      k.slots,
      k.rate,
      k.pause,
      base,
      limits.maxConcurrency,
      intervalUs,
      toleranceUs,
      this.opts.leaseMs,
      wanted,
      ...giveBack,
    );
    this.opts.health.succeeded();
    const leases: string[] = [];
    for (let i = 1; i <= taken; i++) {
      const lease = `${base}.${i}`;
      if (this.closed) this.giveBack(id, k.slots, lease);
      else {
        this.held.set(lease, k.slots);
        leases.push(lease);
      }
    }
    return {
      leases,
      why: why === 1 ? 'paused' : why === 2 ? 'busy' : why === 3 ? 'rate' : 'none',
      ms,
    };
  }

  private enqueue(id: string, g: SharedGate, limits: GateLimits): Promise<Admission> {
    return new Promise<Admission>((resolve) => {
      const w: Waiter = {
        limits,
        resolve,
        settled: false,
        timer: setTimeout(() => {
          const i = g.queue.indexOf(w);
          if (i >= 0) g.queue.splice(i, 1);
          this.settle(w, this.busy());
        }, this.maxQueueWaitMs),
      };
      g.queue.push(w);
      void this.pump(id, g);
    });
  }

  private settle(w: Waiter, a: Admission | Promise<Admission>): boolean {
    if (w.settled) return false;
    w.settled = true;
    clearTimeout(w.timer);
    w.resolve(a);
    return true;
  }

  /**
   * Serves the endpoint's queue in order: each round trip takes as many leases as there are waiters
   * (up to the limit) and hands them out. Ends when the queue is empty: every waiter leaves it by a
   * `go`, a pause, a fallback, or its own deadline (maxQueueWaitMs).
   */
  private async pump(id: string, g: SharedGate): Promise<void> {
    if (g.pumping) return;
    g.pumping = true;
    try {
      while (g.queue.length > 0 && !this.closed) {
        const limits = g.queue[0]!.limits;
        g.released = false;
        const giveBack = g.toRelease.splice(0);
        let a: Attempt;
        try {
          a = await this.attempt(
            id,
            limits,
            Math.min(g.queue.length, limits.maxConcurrency),
            giveBack,
          );
        } catch (err) {
          this.opts.health.fellBack('endpoint_limits', err);
          for (const x of g.queue.splice(0)) this.settle(x, this.local.acquire(id, x.limits));
          break;
        }
        for (const lease of a.leases) {
          const w = g.queue.shift();
          // Waiters that left meanwhile (deadline) leave leases over: given back at once.
          if (!w || !this.settle(w, { type: 'go', lease })) this.release(id, { type: 'go', lease });
        }
        if (a.why === 'paused') {
          g.pausedUntil = Math.max(g.pausedUntil, Date.now() + a.ms);
          for (const x of g.queue.splice(0)) this.settle(x, this.paused(g));
          break;
        }
        if (a.why === 'none' || (a.why === 'busy' && g.released)) continue;
        // Bounded: a waiter's deadline may come first, and a slot given back here wakes it sooner.
        await this.wait(g, a.why === 'rate' ? Math.min(250, Math.max(1, a.ms)) : this.busyPollMs);
      }
    } finally {
      g.pumping = false;
      g.wake = undefined;
      const slots = this.keys(id).slots;
      for (const lease of g.toRelease.splice(0)) this.giveBack(id, slots, lease);
      this.forgetIfIdle(id, g);
    }
  }

  private wait(g: SharedGate, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        g.wake = undefined;
        resolve();
      }
      g.wake = done;
    });
  }

  release(id: string, admission?: Admission): void {
    const lease = admission?.type === 'go' ? admission.lease : undefined;
    if (lease === undefined) {
      this.local.release(id);
      return;
    }
    const slots = this.held.get(lease);
    if (slots === undefined) return;
    const g = this.gates.get(id);
    if (g && g.pumping && g.queue.length > 0 && !this.closed) {
      // Deliveries wait here: the pump's next round trip gives the slot back and takes it for them.
      this.held.delete(lease);
      g.toRelease.push(lease);
      g.released = true;
      g.wake?.();
      return;
    }
    this.giveBack(id, slots, lease);
  }

  private giveBack(id: string, slots: string, lease: string): void {
    this.held.delete(lease);
    this.redis
      .zrem(slots, lease)
      // Not given back: the lease runs out by itself within leaseMs.
      .catch((err: unknown) => this.opts.health.failed(err))
      .finally(() => {
        const g = this.gates.get(id);
        if (!g) return;
        g.released = true;
        g.wake?.();
      });
  }

  async pause(id: string, limits: GateLimits, untilMs: number): Promise<void> {
    this.local.pause(id, limits, untilMs);
    const g = this.gate(id);
    g.pausedUntil = Math.max(g.pausedUntil, untilMs);
    for (const x of g.queue.splice(0)) this.settle(x, this.paused(g));
    const ms = Math.ceil(untilMs - Date.now());
    if (ms <= 0) return;
    if (!this.opts.health.usable()) {
      this.opts.health.fellBack('endpoint_limits');
      return;
    }
    try {
      await this.redis.whkPause(1, this.keys(id).pause, ms);
      this.opts.health.succeeded();
    } catch (err) {
      this.opts.health.fellBack('endpoint_limits', err);
    }
  }

  /** Extends every lease held here (one round trip per 1,000 leases). */
  private async renew(): Promise<void> {
    // After close() the leases of the deliveries still finishing are kept alive until given back.
    if (this.closed && this.held.size === 0) clearInterval(this.renewTimer);
    if (this.held.size === 0 || !this.opts.health.usable()) return;
    const entries = [...this.held];
    for (let i = 0; i < entries.length; i += 1_000) {
      const part = entries.slice(i, i + 1_000);
      try {
        await this.redis.whkRenew(
          part.length,
          ...part.map(([, slots]) => slots),
          this.opts.leaseMs,
          ...part.map(([lease]) => lease),
        );
      } catch (err) {
        this.opts.health.failed(err);
        return;
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const g of this.gates.values()) {
      for (const w of g.queue.splice(0))
        this.settle(w, { type: 'defer', delayMs: 0, reason: 'busy' });
      g.wake?.();
    }
    this.local.close();
  }
}

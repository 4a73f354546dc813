// The state the dispatcher's replicas share, in Redis (docs/DECISIONS.md #28): per-endpoint
// concurrency leases, rate and Retry-After pause (shared-gates.ts) and "N consecutive" runs
// (consecutive.ts). Every operation is one Lua script in one round trip. While Redis cannot answer,
// each of them decides with its per-process state instead; SharedStateHealth logs that once per
// outage and meters every such decision.
import { tlsFailureReporter, type ClientTls } from '@sluice/config';
import { SluiceError } from '@sluice/errors';
import type { Logger } from '@sluice/observability';
import type { Stoppable } from '@sluice/runtime';
import Redis from 'ioredis';
import { Counter, Gauge, type Registry } from 'prom-client';
import { SHARED_STATE_METRICS } from './names';

/** Redis could not answer a shared-state operation; the caller decided per process. */
export class SharedStateUnavailableError extends SluiceError {
  override readonly name = 'SharedStateUnavailableError';
  readonly code = 'shared_state_unavailable';
  constructor(message: string, cause?: unknown) {
    super(message, { retriable: true, cause });
  }
}

/** Which shared limit fell back to its per-process form (the `state` label). */
export type SharedStateKind = 'endpoint_limits' | 'consecutive';

/** The key prefix of one namespace's shared state: `sluice:<namespace|default>:webhook:`. */
export function sharedStatePrefix(namespace: string): string {
  return `sluice:${namespace || 'default'}:webhook:`;
}

export interface SharedRedisOptions {
  url: string;
  /** TLS for a `rediss://` URL (`redisTls(config)` of @sluice/config). Default none. */
  tls?: ClientTls | undefined;
  /** Bound on every command; past it the operation falls back. */
  commandTimeoutMs: number;
  log: Logger;
}

/**
 * A Redis connection that never queues: no offline queue (a command while disconnected fails at
 * once and the caller falls back), no retries of a command, a command timeout, and reconnects at
 * most 500 ms apart forever in the background.
 */
export function connectSharedRedis(opts: SharedRedisOptions): {
  redis: Redis;
  stoppable: Stoppable;
} {
  const redis = new Redis(opts.url, {
    ...(opts.tls ? { tls: opts.tls.options } : {}),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: 5_000,
    // Commands issued in one event-loop turn (acquires and releases of many deliveries) go out as one write.
    enableAutoPipelining: true,
    // How long a closed connection's socket may linger (ioredis default 2 s, which delays exit).
    disconnectTimeout: 500,
    retryStrategy: (times) => Math.min(times * 100, 500),
    connectionName: 'sluice-webhook-dispatcher',
  });
  // Connection errors are reported by SharedStateHealth (once per outage), not per reconnect; a
  // TLS failure, which needs a person, is reported here, explained.
  const tlsFailure = opts.tls ? tlsFailureReporter(opts.tls.peer, opts.log) : () => false;
  redis.on('error', (err) => void tlsFailure(err));
  redis.connect().catch(() => undefined);
  return {
    redis,
    stoppable: {
      name: 'redis',
      stop: async () => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          redis.quit().catch(() => undefined),
          new Promise((r) => (timer = setTimeout(r, 2_000))),
        ]);
        clearTimeout(timer);
        redis.disconnect();
      },
    },
  };
}

/** Resolves when `redis` is ready or after `timeoutMs`, whichever is first; never rejects. */
export async function whenReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  let timer: NodeJS.Timeout | undefined;
  let onReady: (() => void) | undefined;
  const ready = await Promise.race([
    new Promise<boolean>((r) => {
      onReady = () => r(true);
      redis.once('ready', onReady);
    }),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (onReady) redis.off('ready', onReady);
  return ready;
}

/** Outages closer together than this are logged once (each is counted in the metrics). */
const OUTAGE_LOG_INTERVAL_MS = 60_000;

export interface SharedStateHealthOptions {
  redis: Redis;
  log: Logger;
  registry: Registry;
  /** After a failed round trip, decide per process for this long before trying Redis again. Default 1 s. */
  retryAfterMs?: number;
}

/**
 * Whether the shared state can be used now, and the one place that reports when it cannot: one
 * warning when Redis stops answering (at most one a minute), one line when it answers again, a
 * gauge, a counter of outages and one of the decisions made per process meanwhile.
 */
export class SharedStateHealth {
  private down: { since: number; fallbacks: number; logged: boolean } | undefined;
  private retryAt = 0;
  private lastWarnAt = Number.NEGATIVE_INFINITY;
  private outagesNotLogged = 0;
  private readonly retryAfterMs: number;
  private readonly up: Gauge;
  private readonly outages: Counter;
  private readonly fallbacks: Counter<'state'>;

  constructor(private readonly opts: SharedStateHealthOptions) {
    this.retryAfterMs = opts.retryAfterMs ?? 1_000;
    const registers = [opts.registry];
    this.up = new Gauge({
      name: SHARED_STATE_METRICS.up,
      help: '1 while Redis answers (endpoint limits and consecutive runs are global), 0 while they are per process',
      registers,
    });
    this.up.set(1);
    this.outages = new Counter({
      name: SHARED_STATE_METRICS.outages,
      help: 'Times Redis stopped answering (limits and runs were per process until it answered again)',
      registers,
    });
    this.fallbacks = new Counter({
      name: SHARED_STATE_METRICS.fallbacks,
      help: 'Decisions made with per-process state because Redis could not answer, by state',
      labelNames: ['state'],
      registers,
    });
  }

  get redis(): Redis {
    return this.opts.redis;
  }

  /** Whether to try Redis now: connected, and not inside the back-off after a failure. */
  usable(): boolean {
    return this.opts.redis.status === 'ready' && Date.now() >= this.retryAt;
  }

  isDown(): boolean {
    return this.down !== undefined;
  }

  /** A round trip was answered. */
  succeeded(): void {
    const down = this.down;
    if (!down) return;
    this.down = undefined;
    this.up.set(1);
    if (down.logged)
      this.opts.log.info(
        { downForMs: Date.now() - down.since, perProcessDecisions: down.fallbacks },
        'redis answers again: endpoint limits and consecutive runs are shared by the replicas again',
      );
  }

  /** A round trip failed (or could not be tried): back off, and report the outage once. */
  failed(err: unknown): void {
    const now = Date.now();
    this.retryAt = now + this.retryAfterMs;
    if (this.down) return;
    // A Redis that keeps timing out now and then is logged once a minute, not per outage.
    const logged = now - this.lastWarnAt >= OUTAGE_LOG_INTERVAL_MS;
    this.down = { since: now, fallbacks: 0, logged };
    this.up.set(0);
    this.outages.inc();
    if (!logged) {
      this.outagesNotLogged++;
      return;
    }
    this.lastWarnAt = now;
    this.opts.log.warn(
      {
        err: err instanceof Error ? err.message : String(err),
        outagesNotLogged: this.outagesNotLogged,
      },
      'redis unavailable: endpoint concurrency, rate and pause, and consecutive runs are per process until it answers',
    );
    this.outagesNotLogged = 0;
  }

  /** A decision was made with per-process state (counted; `err` marks the outage when given). */
  fellBack(state: SharedStateKind, err?: unknown): void {
    if (err !== undefined || !this.down)
      this.failed(err ?? new SharedStateUnavailableError(`redis is ${this.opts.redis.status}`));
    this.fallbacks.inc({ state });
    this.down!.fallbacks++;
  }
}

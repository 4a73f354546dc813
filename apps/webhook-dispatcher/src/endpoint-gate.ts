// Per-endpoint fairness: bounded concurrency, a token-bucket rate and a bounded wait queue per
// subscription, plus a pause set by Retry-After. A delivery that cannot get a slot is deferred
// (nak'ed with a delay by the caller), so one slow or dead endpoint never holds up another.
// EndpointGates keeps that state in this process; SharedEndpointGates (shared-gates.ts) keeps it in
// Redis for every replica and falls back to an EndpointGates while Redis cannot answer.

/** What an endpoint's limits are right now (read from the subscription on every acquire). */
export interface GateLimits {
  maxConcurrency: number;
  /** Requests per second; the bucket holds at most one second's worth (at least 1). */
  ratePerS: number;
}

/**
 * `go`: a slot and a rate token are taken; give the slot back with {@link Gates.release}, passing the
 * admission (its `lease` names the shared slot; absent for a per-process one).
 */
export type Admission =
  { type: 'go'; lease?: string } | { type: 'defer'; delayMs: number; reason: 'paused' | 'busy' };

/** Per-endpoint admission, per process ({@link EndpointGates}) or across replicas (SharedEndpointGates). */
export interface Gates {
  /** Resolves `go` (a slot is taken; call {@link release}) or `defer` with a delay. */
  acquire(id: string, limits: GateLimits): Promise<Admission> | Admission;
  /** Gives back the slot of a `go` admission. */
  release(id: string, admission?: Admission): void;
  /** Stops sending to the endpoint until `untilMs` (Retry-After); queued deliveries are deferred. Never rejects. */
  pause(id: string, limits: GateLimits, untilMs: number): void | Promise<void>;
  /** Defers every waiting delivery (shutdown). */
  close(): void;
}

interface Waiter {
  resolve: (a: Admission) => void;
  timer: NodeJS.Timeout;
}

class Gate {
  active = 0;
  tokens: number;
  refilledAt = Date.now();
  pausedUntil = 0;
  readonly queue: Waiter[] = [];
  pumpTimer: NodeJS.Timeout | undefined;

  constructor(public limits: GateLimits) {
    this.tokens = Math.max(1, limits.ratePerS);
  }

  refill(now: number): void {
    const cap = Math.max(1, this.limits.ratePerS);
    this.tokens = Math.min(
      cap,
      this.tokens + ((now - this.refilledAt) / 1000) * this.limits.ratePerS,
    );
    this.refilledAt = now;
  }

  canGo(now: number): boolean {
    if (this.active >= this.limits.maxConcurrency) return false;
    this.refill(now);
    return this.tokens >= 1;
  }

  take(): void {
    this.tokens -= 1;
    this.active += 1;
  }
}

export interface EndpointGatesOptions {
  /** Deliveries waiting per endpoint. Default 64. */
  queueSize?: number;
  /** Longest wait in the queue before the delivery is deferred instead. Default 5 s. */
  maxQueueWaitMs?: number;
  /** Delay for a delivery deferred because its endpoint is busy. Default 1 s (plus jitter). */
  busyDelayMs?: number;
}

export class EndpointGates implements Gates {
  private readonly gates = new Map<string, Gate>();
  private readonly queueSize: number;
  private readonly maxQueueWaitMs: number;
  private readonly busyDelayMs: number;

  constructor(opts: EndpointGatesOptions = {}) {
    this.queueSize = opts.queueSize ?? 64;
    this.maxQueueWaitMs = opts.maxQueueWaitMs ?? 5_000;
    this.busyDelayMs = opts.busyDelayMs ?? 1_000;
  }

  private gate(id: string, limits: GateLimits): Gate {
    let g = this.gates.get(id);
    if (!g) this.gates.set(id, (g = new Gate(limits)));
    else g.limits = limits;
    return g;
  }

  private busy(): Admission {
    return {
      type: 'defer',
      delayMs: Math.round(this.busyDelayMs * (0.75 + Math.random() * 0.5)),
      reason: 'busy',
    };
  }

  /** Resolves `go` (a slot is taken; call {@link release}) or `defer` with a delay. */
  acquire(id: string, limits: GateLimits): Promise<Admission> | Admission {
    const g = this.gate(id, limits);
    const now = Date.now();
    if (g.pausedUntil > now)
      return {
        type: 'defer',
        delayMs: g.pausedUntil - now + Math.round(Math.random() * 250),
        reason: 'paused',
      };
    if (g.queue.length === 0 && g.canGo(now)) {
      g.take();
      return { type: 'go' };
    }
    if (g.queue.length >= this.queueSize) return this.busy();
    return new Promise<Admission>((resolve) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          const i = g.queue.indexOf(waiter);
          if (i >= 0) g.queue.splice(i, 1);
          resolve(this.busy());
        }, this.maxQueueWaitMs),
      };
      g.queue.push(waiter);
      this.pump(id, g);
    });
  }

  release(id: string): void {
    const g = this.gates.get(id);
    if (!g) return;
    g.active = Math.max(0, g.active - 1);
    this.pump(id, g);
    if (g.active === 0 && g.queue.length === 0 && g.pausedUntil <= Date.now() && !g.pumpTimer)
      this.gates.delete(id);
  }

  /** Stops sending to the endpoint until `untilMs` (Retry-After); queued deliveries are deferred. */
  pause(id: string, limits: GateLimits, untilMs: number): void {
    const g = this.gate(id, limits);
    g.pausedUntil = Math.max(g.pausedUntil, untilMs);
    for (const w of g.queue.splice(0)) {
      clearTimeout(w.timer);
      w.resolve({ type: 'defer', delayMs: g.pausedUntil - Date.now(), reason: 'paused' });
    }
  }

  private pump(id: string, g: Gate): void {
    const now = Date.now();
    while (g.queue.length > 0 && g.pausedUntil <= now && g.canGo(now)) {
      const w = g.queue.shift()!;
      clearTimeout(w.timer);
      g.take();
      w.resolve({ type: 'go' });
    }
    if (g.queue.length > 0 && g.active < g.limits.maxConcurrency && !g.pumpTimer) {
      // Waiting for a token: come back when the next one is due.
      const wait = Math.max(1, Math.ceil(((1 - g.tokens) / g.limits.ratePerS) * 1000));
      g.pumpTimer = setTimeout(() => {
        g.pumpTimer = undefined;
        this.pump(id, g);
      }, wait);
    }
  }

  /** Defers every waiting delivery (shutdown). */
  close(): void {
    for (const g of this.gates.values()) {
      clearTimeout(g.pumpTimer);
      for (const w of g.queue.splice(0)) {
        clearTimeout(w.timer);
        w.resolve({ type: 'defer', delayMs: 0, reason: 'busy' });
      }
    }
    this.gates.clear();
  }
}

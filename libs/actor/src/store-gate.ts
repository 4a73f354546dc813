import { STORE_METRICS, type Logger } from '@sluice/observability';
import { Counter, Gauge, type Registry } from 'prom-client';

/** Options of a {@link StoreGate}. */
export interface StoreGateOptions {
  /** The store's name in logs and the `store` metric label (`redis`, `postgres`, `mongodb`). */
  store: string;
  /**
   * One cheap round trip that resolves when the store can serve writes again and throws while it
   * cannot (PING, `SELECT 1`, a guard script). Runs only while the gate is down.
   */
  probe: () => Promise<void>;
  /** Whether an error means the store is unavailable (rather than a bad input). Default: every error. */
  isOutage?: (err: unknown) => boolean;
  /** Probe interval while down: how soon a store that is back is noticed. Default 500 ms. */
  probeIntervalMs?: number;
  /** Bound on one probe. Default 2 s. */
  probeTimeoutMs?: number;
  /** Interval of the one summary line logged while the store stays down. Default 30 s. */
  summaryIntervalMs?: number;
  log: Logger;
  registry: Registry;
}

const byRegistry = new WeakMap<Registry, GateMetrics>();

interface GateMetrics {
  up: Gauge<'store'>;
  errors: Counter<'store'>;
  outages: Counter<'store'>;
  downSeconds: Counter<'store'>;
}

function gateMetrics(registry: Registry): GateMetrics {
  let m = byRegistry.get(registry);
  if (!m) {
    const registers = [registry];
    const labelNames = ['store'] as const;
    m = {
      up: new Gauge({
        name: STORE_METRICS.up,
        help: '1 while the store answers, 0 during an outage',
        labelNames,
        registers,
      }),
      errors: new Counter({
        name: STORE_METRICS.errors,
        help: 'Store operations that failed because the store was unavailable',
        labelNames,
        registers,
      }),
      outages: new Counter({
        name: STORE_METRICS.outages,
        help: 'Transitions of the store from up to down',
        labelNames,
        registers,
      }),
      downSeconds: new Counter({
        name: STORE_METRICS.downSeconds,
        help: 'Time the store spent down',
        labelNames,
        registers,
      }),
    };
    byRegistry.set(registry, m);
  }
  return m;
}

/**
 * The state of one store a service writes to, shared by its actors. A failed store operation marks it
 * down ({@link failure}); while down, a probe runs every `probeIntervalMs` and the gate reopens on the
 * first success, so a store that is back is noticed within about that interval, not at the next
 * scheduled retry. Logs one line when the store goes down, one summary per `summaryIntervalMs` while
 * it stays down, and one when it is back; every failure is counted in metrics instead of logged.
 *
 * Actors given the gate stop pulling while it is down and hold the batch that hit the outage, then
 * run it again at once when it reopens (see `ActorOptions.gates`).
 */
export class StoreGate {
  private down: { since: number; errors: number; lastSummary: number; err: unknown } | undefined;
  private probing: NodeJS.Timeout | undefined;
  private waiters: Array<() => void> = [];
  private closed = false;
  private outageCount = 0;
  private readonly metrics: GateMetrics;
  private readonly labels: { store: string };

  constructor(private readonly opts: StoreGateOptions) {
    this.metrics = gateMetrics(opts.registry);
    this.labels = { store: opts.store };
    this.metrics.up.set(this.labels, 1);
  }

  get store(): string {
    return this.opts.store;
  }

  isUp(): boolean {
    return this.down === undefined;
  }

  /** Outages seen so far (transitions from up to down). */
  get outages(): number {
    return this.outageCount;
  }

  /** Whether `err` means the store is unavailable. */
  isOutage(err: unknown): boolean {
    return this.opts.isOutage ? this.opts.isOutage(err) : true;
  }

  /**
   * Reports a failed store operation. Returns true when it is an outage: the gate is (now) down and
   * the caller should wait for {@link whenUp} rather than log or back off on its own.
   */
  failure(err: unknown): boolean {
    if (!this.isOutage(err)) return false;
    if (this.closed) return true; // shutting down: nothing to hold or log
    this.metrics.errors.inc(this.labels);
    const now = Date.now();
    if (this.down) {
      this.down.errors++;
      this.down.err = err;
      return true;
    }
    this.down = { since: now, errors: 1, lastSummary: now, err };
    this.outageCount++;
    this.metrics.up.set(this.labels, 0);
    this.metrics.outages.inc(this.labels);
    this.opts.log.warn(
      { store: this.opts.store, err },
      `${this.opts.store} unavailable; holding work until it answers again`,
    );
    this.scheduleProbe();
    return true;
  }

  /**
   * For code that handles store errors itself (no actor holding work): reports `err`, and logs it
   * with `msg` on `log` only when it is not an outage (an outage is logged once, by the gate).
   */
  warnUnlessOutage(
    log: Logger,
    err: unknown,
    msg: string,
    fields: Record<string, unknown> = {},
  ): void {
    if (!this.failure(err)) log.warn({ ...fields, err }, msg);
  }

  /** Resolves when the gate is up (at once if it is), or when it is closed. */
  whenUp(): Promise<void> {
    if (!this.down || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Stops probing and opens the gate for good, releasing every waiter (shutdown). */
  close(): void {
    this.closed = true;
    clearTimeout(this.probing);
    this.probing = undefined;
    this.down = undefined;
    this.release();
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private scheduleProbe(): void {
    if (this.closed || this.probing) return;
    this.probing = setTimeout(() => void this.runProbe(), this.opts.probeIntervalMs ?? 500);
  }

  private async runProbe(): Promise<void> {
    const down = this.down;
    if (!down || this.closed) {
      this.probing = undefined;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.opts.probe(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`probe exceeded ${this.opts.probeTimeoutMs ?? 2_000} ms`)),
            this.opts.probeTimeoutMs ?? 2_000,
          );
        }),
      ]);
    } catch (err) {
      down.err = err;
      const now = Date.now();
      if (now - down.lastSummary >= (this.opts.summaryIntervalMs ?? 30_000)) {
        down.lastSummary = now;
        this.opts.log.warn(
          {
            store: this.opts.store,
            downForMs: now - down.since,
            failedOperations: down.errors,
            lastError: (err as Error)?.message ?? String(err),
          },
          `${this.opts.store} still unavailable`,
        );
      }
      this.probing = undefined;
      this.scheduleProbe();
      return;
    } finally {
      clearTimeout(timer);
    }
    this.probing = undefined;
    const downForMs = Date.now() - down.since;
    this.down = undefined;
    this.metrics.up.set(this.labels, 1);
    this.metrics.downSeconds.inc(this.labels, downForMs / 1000);
    this.opts.log.info(
      { store: this.opts.store, downForMs, failedOperations: down.errors },
      `${this.opts.store} available again`,
    );
    this.release();
  }
}

/** PostgreSQL SQLSTATE classes of an unavailable server: 08 connection, 53 resources, 57 operator intervention. */
const UNAVAILABLE_SQLSTATE = /^(08|53|57)/;
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/**
 * Whether an error from a database driver means the server cannot be reached or cannot serve now
 * (network errno codes, PostgreSQL connection/resource/shutdown SQLSTATEs, node-postgres messages of a
 * lost connection), as opposed to a statement the server refused.
 */
export function isConnectionLoss(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (UNAVAILABLE_SQLSTATE.test(code) || NETWORK_CODES.has(code)) return true;
  const msg = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable|timeout exceeded when trying to connect/i.test(
    msg,
  );
}

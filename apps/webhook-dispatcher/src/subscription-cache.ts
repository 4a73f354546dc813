// The subscriptions every part reads on the hot path, held in memory: replaced on every change made
// through this process's API and re-read from PostgreSQL periodically (changes via other replicas).
import type { StoreGate } from '@sluice/actor';
import type { Logger } from '@sluice/observability';
import type { AlertFilter, DetectionFilter, RollupFilter, TelemetryFilter } from './filters';
import type { Store, Subscription } from './store';

export interface Snapshot {
  byId: ReadonlyMap<string, Subscription>;
  telemetry: ReadonlyArray<Subscription & { filter: TelemetryFilter }>;
  rollup: ReadonlyArray<Subscription & { filter: RollupFilter }>;
  detection: ReadonlyArray<Subscription & { filter: DetectionFilter }>;
  alert: ReadonlyArray<Subscription & { filter: AlertFilter }>;
}

function index(subs: Subscription[]): Snapshot {
  const enabled = subs.filter((s) => s.enabled);
  return {
    byId: new Map(subs.map((s) => [s.id, s])),
    telemetry: enabled.filter(
      (s): s is Subscription & { filter: TelemetryFilter } => s.filter.type === 'telemetry',
    ),
    rollup: enabled.filter(
      (s): s is Subscription & { filter: RollupFilter } => s.filter.type === 'rollup',
    ),
    detection: enabled.filter(
      (s): s is Subscription & { filter: DetectionFilter } => s.filter.type === 'detection',
    ),
    alert: enabled.filter(
      (s): s is Subscription & { filter: AlertFilter } => s.filter.type === 'alert',
    ),
  };
}

export class SubscriptionCache {
  private snap: Snapshot = index([]);
  private timer: NodeJS.Timeout | undefined;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly refreshMs: number,
    /** PostgreSQL's gate: an outage is logged once there, not per refresh. */
    private readonly storeGate?: StoreGate,
  ) {}

  get snapshot(): Snapshot {
    return this.snap;
  }

  /** Loads once (throws if PostgreSQL is unreachable), then refreshes every `refreshMs`. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((err) =>
        this.storeGate
          ? this.storeGate.warnUnlessOutage(
              this.log,
              err,
              'subscription refresh failed; keeping the last snapshot',
            )
          : this.log.warn({ err }, 'subscription refresh failed; keeping the last snapshot'),
      );
    }, this.refreshMs);
    this.timer.unref();
  }

  /** Re-reads every subscription now (coalesces concurrent calls). */
  refresh(): Promise<void> {
    this.loading ??= this.store
      .listSubscriptions()
      .then((subs) => {
        this.snap = index(subs);
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }

  /** The subscription, reading PostgreSQL when the snapshot does not know it (created on another replica). */
  async get(id: string): Promise<Subscription | undefined> {
    const known = this.snap.byId.get(id);
    if (known) return known;
    const fresh = await this.store.getSubscription(id);
    if (fresh) await this.refresh();
    return fresh;
  }

  /** Applies a local change at once (the next refresh confirms it). */
  put(sub: Subscription): void {
    const all = new Map(this.snap.byId);
    all.set(sub.id, sub);
    this.snap = index([...all.values()]);
  }

  remove(id: string): void {
    const all = new Map(this.snap.byId);
    all.delete(id);
    this.snap = index([...all.values()]);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

// The attempt log in PostgreSQL: failures are written before the delivery is nak'ed (the attempt
// number of the next try is read back from it after a restart); successes are batched. Pruned by
// age and by a per-subscription row cap.
import type { StoreGate } from '@sluice/actor';
import type { Logger } from '@sluice/observability';
import type { AttemptRecord, Store } from './store';

export interface AttemptLogOptions {
  /** Rows older than this are deleted. */
  retentionMs: number;
  /** Newest rows kept per subscription. */
  perSubscription: number;
  /** Flush interval of buffered success rows. Default 250 ms. */
  flushMs?: number;
  /** Buffered rows beyond this are dropped (logged and counted). Default 20 000. */
  maxBuffered?: number;
  /** Prune interval. Default 60 s. */
  pruneEveryMs?: number;
}

export class AttemptLog {
  private buffer: AttemptRecord[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** Success rows lost because the buffer was full (PostgreSQL slow or down). */
  droppedRows = 0;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: AttemptLogOptions,
    /** PostgreSQL's gate: an outage is logged once there, not per flush. */
    private readonly storeGate?: StoreGate,
  ) {}

  private warn(err: unknown, msg: string, fields: Record<string, unknown> = {}): void {
    if (this.storeGate) this.storeGate.warnUnlessOutage(this.log, err, msg, fields);
    else this.log.warn({ ...fields, err }, msg);
  }

  start(): void {
    this.flushTimer = setInterval(() => void this.flush(), this.opts.flushMs ?? 250);
    this.flushTimer.unref();
    this.pruneTimer = setInterval(() => {
      this.store
        .pruneAttempts(this.opts.retentionMs, this.opts.perSubscription)
        .catch((err) => this.warn(err, 'attempt log prune failed'));
    }, this.opts.pruneEveryMs ?? 60_000);
    this.pruneTimer.unref();
  }

  /** Buffers a row (successes); written within the flush interval. */
  add(row: AttemptRecord): void {
    if (this.buffer.length >= (this.opts.maxBuffered ?? 20_000)) {
      this.droppedRows++;
      if (this.droppedRows % 1000 === 1)
        this.log.warn(
          { dropped: this.droppedRows },
          'attempt log buffer full; dropping success rows',
        );
      return;
    }
    this.buffer.push(row);
  }

  /** Writes a row now (failures): resolves once it is durable. */
  write(row: AttemptRecord): Promise<void> {
    return this.store.insertAttempts([row]);
  }

  flush(): Promise<void> {
    if (this.flushing || this.buffer.length === 0) return this.flushing ?? Promise.resolve();
    const rows = this.buffer.splice(0, 2_000);
    this.flushing = this.store
      .insertAttempts(rows)
      .catch((err) => {
        this.warn(err, 'attempt log write failed; will retry', { rows: rows.length });
        this.buffer.unshift(
          ...rows.slice(0, Math.max(0, (this.opts.maxBuffered ?? 20_000) - this.buffer.length)),
        );
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  async stop(): Promise<void> {
    clearInterval(this.flushTimer);
    clearInterval(this.pruneTimer);
    for (let i = 0; i < 20 && (this.buffer.length > 0 || this.flushing); i++) await this.flush();
  }
}

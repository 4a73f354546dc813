import { SluiceError } from '@sluice/errors';

/** A byte budget acquire did not get within its wait. */
export class BudgetTimeoutError extends SluiceError {
  override readonly name = 'BudgetTimeoutError';
  readonly code = 'budget_timeout';
  constructor(message: string) {
    super(message, { retriable: true, httpStatus: 429 });
  }
}

interface Waiter {
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Counting semaphore over bytes awaiting a JetStream ack. Waiters are served in FIFO order so a large
 * batch is not starved by small ones; every wait is bounded.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiters: Waiter[] = [];
  /** Highest use (plus waiting demand) since the last {@link takePeak}. */
  private peak = 0;

  constructor(readonly capacity: number) {}

  get inUse(): number {
    return this.used;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * The highest share of the capacity in use since the last call, counting bytes waiting for it
   * (so a budget with waiters reads above 1), then starts a new window at the current use.
   */
  takePeak(): number {
    const p = this.peak;
    this.peak = this.used + this.waitingBytes();
    return p / this.capacity;
  }

  private waitingBytes(): number {
    let n = 0;
    for (const w of this.waiters) n += w.bytes;
    return n;
  }

  /** Resolves once `bytes` are reserved; rejects with {@link BudgetTimeoutError} after `waitMs`. */
  acquire(bytes: number, waitMs: number): Promise<void> {
    const n = Math.min(bytes, this.capacity);
    if (this.waiters.length === 0 && this.used + n <= this.capacity) {
      this.used += n;
      if (this.used > this.peak) this.peak = this.used;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes: n,
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(
            new BudgetTimeoutError(`no in-flight capacity for ${bytes} bytes within ${waitMs} ms`),
          );
          this.pump();
        }, waitMs),
      };
      this.waiters.push(waiter);
      const demand = this.used + this.waitingBytes();
      if (demand > this.peak) this.peak = demand;
    });
  }

  release(bytes: number): void {
    this.used -= Math.min(bytes, this.capacity);
    if (this.used < 0) this.used = 0;
    this.pump();
  }

  private pump(): void {
    while (this.waiters.length > 0 && this.used + this.waiters[0]!.bytes <= this.capacity) {
      const w = this.waiters.shift()!;
      clearTimeout(w.timer);
      this.used += w.bytes;
      w.resolve();
    }
  }
}

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

  constructor(readonly capacity: number) {}

  get inUse(): number {
    return this.used;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Resolves once `bytes` are reserved; rejects with {@link BudgetTimeoutError} after `waitMs`. */
  acquire(bytes: number, waitMs: number): Promise<void> {
    const n = Math.min(bytes, this.capacity);
    if (this.waiters.length === 0 && this.used + n <= this.capacity) {
      this.used += n;
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

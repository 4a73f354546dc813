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
 * Token bucket per device id. {@link take} is all-or-nothing over one batch: either every device's
 * events fit and all are taken, or nothing is taken and the wait until they would fit is returned.
 */
export class DeviceRateLimiter {
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

// Roll-up freshness: how long after a window's end its roll-up was seen on the ROLLUPS subjects, over
// a sliding window of recent roll-ups (bounded), summarised as p50/p99.

/** Keeps the last `capacity` freshness observations (ms) and their quantiles. */
export class FreshnessWindow {
  private readonly values: number[] = [];
  private next = 0;
  private seen = 0;

  /** @param capacity most observations kept. Default 2000. */
  constructor(private readonly capacity = 2000) {}

  add(ms: number): void {
    this.seen++;
    if (this.values.length < this.capacity) this.values.push(ms);
    else this.values[this.next] = ms;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Observations ever added. */
  get count(): number {
    return this.seen;
  }

  /** The `q` quantile (0…1) of the kept observations (nearest rank), or null with none. */
  quantile(q: number): number | null {
    if (this.values.length === 0) return null;
    const sorted = [...this.values].sort((a, b) => a - b);
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return sorted[rank]!;
  }
}

/**
 * The ids of records a destination acknowledged recently, bounded to `capacity` (the oldest are
 * forgotten first). Sinks of destinations that cannot deduplicate by themselves (message brokers,
 * files) skip a redelivered record found here, so a batch retried after a partial failure, or
 * redelivered by JetStream, does not publish again what was already acknowledged. After a restart,
 * or once an id is forgotten, a redelivery is written again: a duplicate, recognisable by its id.
 */
export class RecentIds {
  private readonly ids = new Set<string>();

  /** `capacity` 0 remembers nothing. */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0)
      throw new RangeError(`RecentIds capacity must be a whole number >= 0, got ${capacity}`);
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (this.capacity === 0) return;
    // Re-adding moves the id to the newest end.
    this.ids.delete(id);
    this.ids.add(id);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value!);
  }

  get size(): number {
    return this.ids.size;
  }
}

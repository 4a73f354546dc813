import type { Event } from '@sluice/contracts';

/**
 * A double-ended queue of events with their estimated size, emit sequence and emit time, in parallel
 * arrays (no object per entry). Grows by doubling up to `maxCapacity`; push/shift/unshift are O(1)
 * amortized.
 */
export class Ring {
  private events: Array<Event | undefined>;
  private sizes: Float64Array;
  private seqs: Float64Array;
  private times: Float64Array;
  private head = 0;
  private count = 0;
  /** Sum of the sizes held. */
  bytes = 0;

  constructor(
    private readonly maxCapacity: number,
    initialCapacity = 64,
  ) {
    const cap = Math.max(1, Math.min(initialCapacity, maxCapacity));
    this.events = new Array<Event | undefined>(cap);
    this.sizes = new Float64Array(cap);
    this.seqs = new Float64Array(cap);
    this.times = new Float64Array(cap);
  }

  get length(): number {
    return this.count;
  }

  private get capacity(): number {
    return this.sizes.length;
  }

  private grow(): void {
    const cap = this.capacity;
    if (cap >= this.maxCapacity)
      throw new RangeError(`ring is full (${cap}); the buffer bound should have prevented this`);
    const next = Math.min(cap * 2, this.maxCapacity);
    const events = new Array<Event | undefined>(next);
    const sizes = new Float64Array(next);
    const seqs = new Float64Array(next);
    const times = new Float64Array(next);
    for (let i = 0; i < this.count; i++) {
      const j = (this.head + i) % cap;
      events[i] = this.events[j];
      sizes[i] = this.sizes[j]!;
      seqs[i] = this.seqs[j]!;
      times[i] = this.times[j]!;
    }
    this.events = events;
    this.sizes = sizes;
    this.seqs = seqs;
    this.times = times;
    this.head = 0;
  }

  push(event: Event, size: number, seq: number, time: number): void {
    if (this.count === this.capacity) this.grow();
    const i = (this.head + this.count) % this.capacity;
    this.events[i] = event;
    this.sizes[i] = size;
    this.seqs[i] = seq;
    this.times[i] = time;
    this.count++;
    this.bytes += size;
  }

  /** Puts an event back in front (it is older than everything held). */
  unshift(event: Event, size: number, seq: number, time: number): void {
    if (this.count === this.capacity) this.grow();
    this.head = (this.head - 1 + this.capacity) % this.capacity;
    this.events[this.head] = event;
    this.sizes[this.head] = size;
    this.seqs[this.head] = seq;
    this.times[this.head] = time;
    this.count++;
    this.bytes += size;
  }

  frontEvent(): Event {
    return this.events[this.head]!;
  }
  frontSize(): number {
    return this.sizes[this.head]!;
  }
  frontSeq(): number {
    return this.seqs[this.head]!;
  }
  frontTime(): number {
    return this.times[this.head]!;
  }

  /** Removes the front entry (read it with the front* accessors first). */
  shift(): void {
    if (this.count === 0) return;
    this.bytes -= this.sizes[this.head]!;
    this.events[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    if (this.count === 0) this.bytes = 0;
  }

  /** Smallest sequence held (entries are in sequence order except after an unshift of older ones). */
  minSeq(): number {
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < this.count; i++) {
      const s = this.seqs[(this.head + i) % this.capacity]!;
      if (s < min) min = s;
    }
    return min;
  }

  /** Every event held, oldest first (for close and tests). */
  *entries(): IterableIterator<{ event: Event; size: number; seq: number }> {
    for (let i = 0; i < this.count; i++) {
      const j = (this.head + i) % this.capacity;
      yield { event: this.events[j]!, size: this.sizes[j]!, seq: this.seqs[j]! };
    }
  }
}

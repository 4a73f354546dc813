import type { Event } from '@sluice/contracts';
import type { ClassIndex, DropReason } from './priority';
import { Ring } from './ring';

/**
 * A batch cut from the buffer. Its id and events are fixed once cut, so every resend carries the
 * same batch id and the same bytes (the gateway's duplicate window then drops the resend). Only a
 * batch evicted from while waiting to be resent is dissolved; its remaining events go back to the
 * queue and later leave under a new batch id, with their own event ids unchanged.
 */
export interface SealedBatch {
  readonly id: string;
  readonly cls: ClassIndex;
  readonly events: Event[];
  readonly sizes: number[];
  readonly seqs: number[];
  readonly times: number[];
  /** Sum of the estimated sizes. */
  readonly bytes: number;
  state: 'ready' | 'inflight';
  /** Not sent again before this time (a RETRY answer or a reconnect back-off). */
  notBefore: number;
  /** Times sent. */
  attempts: number;
  /** The encoded IngestRequest, fixed at the first send. */
  encoded: Uint8Array | undefined;
  /** When last sent. */
  sentAt: number;
}

/** Bounds and batching of {@link PriorityBuffer}. */
export interface BufferLimits {
  maxEvents: number;
  maxBytes: number;
  maxBatchEvents: number;
  maxBatchBytes: number;
  /** How long the oldest event of each class may wait for a fuller batch, ms (index = class). */
  lingerMs: readonly [number, number, number];
}

/** What the buffer tells its owner. */
export interface BufferHooks {
  /** An event left the buffer unacknowledged. */
  drop(event: Event, cls: ClassIndex, reason: DropReason, seq: number): void;
  /** A fresh batch id. */
  batchId(): string;
}

const CLASSES: readonly ClassIndex[] = [0, 1, 2];

/**
 * The bounded priority buffer behind `emit()`: one FIFO per priority class plus the batches cut from
 * them that are not yet acknowledged. Everything held counts against both bounds (events and
 * estimated bytes), in flight or not, until the gateway acknowledges it.
 *
 * When an event does not fit, the oldest event of the lowest class that has an evictable one is
 * evicted, repeatedly; when that class is higher than the new event's, the new event is refused.
 * Batches in flight (sent, ack awaited) are never evicted: their outcome is unknown.
 *
 * Pure: time is passed in, nothing here touches the network or timers.
 */
export class PriorityBuffer {
  private readonly rings: [Ring, Ring, Ring];
  private readonly sealed: SealedBatch[] = [];
  private readonly ready: [number, number, number] = [0, 0, 0];
  /** Events held (queued, ready and in flight). */
  events = 0;
  /** Estimated bytes held. */
  bytes = 0;
  /** Batches sent and not answered. */
  inFlightBatches = 0;

  constructor(
    readonly limits: BufferLimits,
    private readonly hooks: BufferHooks,
  ) {
    this.rings = [
      new Ring(limits.maxEvents),
      new Ring(limits.maxEvents),
      new Ring(limits.maxEvents),
    ];
  }

  /** Events of class `cls` queued and not yet cut into a batch. */
  queuedIn(cls: ClassIndex): number {
    return this.rings[cls].length;
  }

  /** Events held per class (queued, ready and in flight). */
  countByClass(): [number, number, number] {
    const out: [number, number, number] = [
      this.rings[0].length,
      this.rings[1].length,
      this.rings[2].length,
    ];
    for (const b of this.sealed) out[b.cls] += b.events.length;
    return out;
  }

  /**
   * Takes `event` of class `cls` (estimated `size` bytes), evicting lower or equal classes' oldest
   * events when full. O(1) amortized; false when refused (the hook has been told why).
   */
  offer(event: Event, cls: ClassIndex, size: number, seq: number, now: number): boolean {
    const l = this.limits;
    if (size > l.maxBatchBytes || size > l.maxBytes) {
      this.hooks.drop(event, cls, 'too_large', seq);
      return false;
    }
    // Bounded: each round removes one held event, and at most `events` are held.
    while (this.events + 1 > l.maxEvents || this.bytes + size > l.maxBytes) {
      const victim = this.victimClass();
      if (victim === undefined || victim < cls) {
        this.hooks.drop(event, cls, 'buffer_full', seq);
        return false;
      }
      this.evictOldest(victim);
    }
    this.rings[cls].push(event, size, seq, now);
    this.events++;
    this.bytes += size;
    return true;
  }

  /** The lowest class (highest index) holding an evictable event: queued, or in a batch not in flight. */
  private victimClass(): ClassIndex | undefined {
    for (let c = 2; c >= 0; c--) {
      if (this.rings[c]!.length > 0 || this.ready[c]! > 0) return c as ClassIndex;
    }
    return undefined;
  }

  private evictOldest(cls: ClassIndex): void {
    const ring = this.rings[cls];
    let oldest: SealedBatch | undefined;
    if (this.ready[cls] > 0) {
      for (const b of this.sealed)
        if (b.cls === cls && b.state === 'ready') {
          oldest = b;
          break;
        }
    }
    if (oldest && (ring.length === 0 || oldest.seqs[0]! < ring.frontSeq())) this.dissolve(oldest);
    const event = ring.frontEvent();
    const size = ring.frontSize();
    const seq = ring.frontSeq();
    ring.shift();
    this.events--;
    this.bytes -= size;
    this.hooks.drop(event, cls, 'evicted', seq);
  }

  /** Puts a ready batch's events back in front of its class's queue (the batch id is abandoned). */
  private dissolve(b: SealedBatch): void {
    this.removeSealed(b);
    const ring = this.rings[b.cls];
    for (let i = b.events.length - 1; i >= 0; i--)
      ring.unshift(b.events[i]!, b.sizes[i]!, b.seqs[i]!, b.times[i]!);
  }

  private removeSealed(b: SealedBatch): void {
    const i = this.sealed.indexOf(b);
    if (i < 0) return;
    this.sealed.splice(i, 1);
    if (b.state === 'ready') this.ready[b.cls]--;
  }

  /** Whether the oldest queued event of `cls` may leave now. */
  private due(cls: ClassIndex, now: number, force: boolean): boolean {
    const ring = this.rings[cls];
    if (ring.length === 0) return false;
    const l = this.limits;
    return (
      force ||
      ring.length >= l.maxBatchEvents ||
      ring.bytes >= l.maxBatchBytes ||
      now - ring.frontTime() >= l.lingerMs[cls]
    );
  }

  /**
   * The next batch to send, highest class first: a batch waiting to be resent (oldest first), else a
   * new batch cut from a queue that is due (full batch, or its oldest event waited its linger, or
   * `force`). A class with a batch waiting to be resent cuts no new one until it is sent. Returns the
   * batch in state `ready`; the caller calls {@link markSent} when it is written.
   */
  next(now: number, force: boolean): SealedBatch | undefined {
    for (const c of CLASSES) {
      if (this.ready[c] > 0) {
        for (const b of this.sealed)
          if (b.cls === c && b.state === 'ready' && b.notBefore <= now) return b;
        continue;
      }
      if (this.due(c, now, force)) return this.cut(c);
    }
    return undefined;
  }

  /** When {@link next} may next return a batch (ms, same clock); Infinity when nothing is held but in flight. */
  nextDueAt(now: number, force: boolean): number {
    let at = Number.POSITIVE_INFINITY;
    for (const c of CLASSES) {
      if (this.ready[c] > 0) {
        for (const b of this.sealed)
          if (b.cls === c && b.state === 'ready' && b.notBefore < at) at = b.notBefore;
        continue;
      }
      const ring = this.rings[c];
      if (ring.length === 0) continue;
      const t = this.due(c, now, force) ? now : ring.frontTime() + this.limits.lingerMs[c];
      if (t < at) at = t;
    }
    return at;
  }

  private cut(cls: ClassIndex): SealedBatch {
    const ring = this.rings[cls];
    const l = this.limits;
    const events: Event[] = [];
    const sizes: number[] = [];
    const seqs: number[] = [];
    const times: number[] = [];
    let bytes = 0;
    while (
      ring.length > 0 &&
      events.length < l.maxBatchEvents &&
      (events.length === 0 || bytes + ring.frontSize() <= l.maxBatchBytes)
    ) {
      events.push(ring.frontEvent());
      sizes.push(ring.frontSize());
      seqs.push(ring.frontSeq());
      times.push(ring.frontTime());
      bytes += ring.frontSize();
      ring.shift();
    }
    return this.addSealed(cls, events, sizes, seqs, times, bytes);
  }

  private addSealed(
    cls: ClassIndex,
    events: Event[],
    sizes: number[],
    seqs: number[],
    times: number[],
    bytes: number,
  ): SealedBatch {
    const b: SealedBatch = {
      id: this.hooks.batchId(),
      cls,
      events,
      sizes,
      seqs,
      times,
      bytes,
      state: 'ready',
      notBefore: 0,
      attempts: 0,
      encoded: undefined,
      sentAt: 0,
    };
    this.sealed.push(b);
    this.ready[cls]++;
    return b;
  }

  markSent(b: SealedBatch, now: number): void {
    if (b.state === 'ready') this.ready[b.cls]--;
    b.state = 'inflight';
    b.attempts++;
    b.sentAt = now;
    this.inFlightBatches++;
  }

  /** An in-flight batch is to be sent again, not before `notBefore`. */
  requeue(b: SealedBatch, notBefore: number): void {
    if (b.state !== 'inflight') return;
    b.state = 'ready';
    b.notBefore = notBefore;
    this.ready[b.cls]++;
    this.inFlightBatches--;
  }

  /** The gateway answered `b` for good (stored, or refused as invalid): it leaves the buffer. */
  release(b: SealedBatch): void {
    if (!this.sealed.includes(b)) return;
    if (b.state === 'inflight') this.inFlightBatches--;
    this.removeSealed(b);
    this.events -= b.events.length;
    this.bytes -= b.bytes;
  }

  /**
   * Replaces a ready batch that was never sent by two halves with new ids (its encoding was larger
   * than a request may be). Returns the first half.
   */
  split(b: SealedBatch): SealedBatch {
    if (b.state !== 'ready' || b.attempts > 0 || b.events.length < 2)
      throw new RangeError('only a ready, never sent batch of 2+ events can be split');
    const i = this.sealed.indexOf(b);
    this.removeSealed(b);
    const half = b.events.length >> 1;
    const part = (from: number, to: number) => {
      const sizes = b.sizes.slice(from, to);
      return this.addSealed(
        b.cls,
        b.events.slice(from, to),
        sizes,
        b.seqs.slice(from, to),
        b.times.slice(from, to),
        sizes.reduce((a, s) => a + s, 0),
      );
    };
    const first = part(0, half);
    const second = part(half, b.events.length);
    // Keep the halves where the batch was, so age order among sealed batches holds.
    this.sealed.splice(this.sealed.indexOf(first), 2);
    this.sealed.splice(i, 0, first, second);
    return first;
  }

  /** Drops a batch that cannot be sent (one event alone larger than a request may be). */
  dropUnsendable(b: SealedBatch, reason: DropReason): void {
    this.release(b);
    for (let i = 0; i < b.events.length; i++)
      this.hooks.drop(b.events[i]!, b.cls, reason, b.seqs[i]!);
  }

  /** Drops everything held (close): returns how many events. */
  dropAll(reason: DropReason): number {
    let n = 0;
    for (const c of CLASSES) {
      const ring = this.rings[c];
      while (ring.length > 0) {
        const event = ring.frontEvent();
        const seq = ring.frontSeq();
        ring.shift();
        this.hooks.drop(event, c, reason, seq);
        n++;
      }
    }
    for (const b of this.sealed.splice(0)) {
      for (let i = 0; i < b.events.length; i++)
        this.hooks.drop(b.events[i]!, b.cls, reason, b.seqs[i]!);
      n += b.events.length;
    }
    this.ready.fill(0);
    this.inFlightBatches = 0;
    this.events = 0;
    this.bytes = 0;
    return n;
  }

  /** Every event held, with its class, oldest first per class (tests, diagnostics). */
  snapshot(): Array<{
    event: Event;
    cls: ClassIndex;
    seq: number;
    state: 'queued' | 'ready' | 'inflight';
  }> {
    const out: Array<{
      event: Event;
      cls: ClassIndex;
      seq: number;
      state: 'queued' | 'ready' | 'inflight';
    }> = [];
    for (const b of this.sealed)
      b.events.forEach((event, i) =>
        out.push({ event, cls: b.cls, seq: b.seqs[i]!, state: b.state }),
      );
    for (const c of CLASSES)
      for (const e of this.rings[c].entries())
        out.push({ event: e.event, cls: c, seq: e.seq, state: 'queued' });
    return out;
  }
}

// Load generation for benchmarks: pre-encoded batches whose batch id is patched per send, so the
// generator spends its CPU on sending, not on building events.
import { randomBytes } from 'node:crypto';
import type { EventBatch } from '@sluice/contracts';
import { Fleet, type FleetOptions } from './fleet';
import type { OutBatch, Sender } from './transports';
import { encodeRequest } from './transports';
import type { RunStats } from './stats';

const ID_LENGTH = 24;

/** Encoded IngestRequests of a fleet's real batches, re-sent with fresh batch ids. */
export class TemplatePool {
  private readonly templates: Array<{
    bytes: Buffer;
    offset: number;
    events: number;
    batch: EventBatch;
  }> = [];
  private readonly prefix = `L${randomBytes(4).toString('hex')}-`;
  private counter = 0;
  private next_ = 0;

  /** Builds `count` templates of `batchSize` events from a fleet (`now` = event time base). */
  constructor(fleet: Partial<FleetOptions>, count: number, now = Date.now()) {
    const f = new Fleet({ ...fleet, flushMs: 1e12 });
    // Advance simulated time until enough full batches exist.
    const placeholder = 'X'.repeat(ID_LENGTH);
    for (
      let t = now - 60_000, guard = 0;
      this.templates.length < count && guard < 100_000;
      t += 50, guard++
    ) {
      for (const b of f.tick(t)) {
        if (this.templates.length >= count) break;
        const bytes = encodeRequest({ batchId: placeholder, events: b.batch.events });
        const offset = bytes.indexOf(placeholder, 0, 'latin1');
        this.templates.push({ bytes, offset, events: b.batch.events.length, batch: b.batch });
      }
    }
    if (this.templates.length === 0)
      throw new Error('the fleet produced no batch; raise devices or sensor rates');
  }

  get size(): number {
    return this.templates.length;
  }

  /** Encoded size of the templates, bytes (for the raw-publish baseline). */
  get templateBatches(): ReadonlyArray<{ bytes: Buffer; events: number; batch: EventBatch }> {
    return this.templates;
  }

  nextId(): string {
    return `${this.prefix}${(this.counter++).toString(36).padStart(ID_LENGTH - this.prefix.length, '0')}`;
  }

  /** A template with a fresh batch id (a new buffer: the previous one may still be in flight). */
  next(): OutBatch {
    const t = this.templates[this.next_++ % this.templates.length]!;
    const bytes = Buffer.allocUnsafe(t.bytes.length);
    t.bytes.copy(bytes);
    const batchId = this.nextId();
    bytes.write(batchId, t.offset, 'latin1');
    return { batchId, events: t.events, bytes };
  }
}

/** Options of {@link generateLoad}. */
export interface LoadOptions {
  sender: Sender;
  pool: TemplatePool;
  stats: RunStats;
  seconds: number;
  /** Offered events/s; undefined = as fast as the sender accepts (closed loop). */
  rate?: number | undefined;
  /** Called once a second with the stats (live line). */
  onSecond?: (second: number) => void;
  signal?: AbortSignal;
}

/** Drives `sender` for `seconds`; resolves after the in-flight batches are answered (bounded). */
export async function generateLoad(opts: LoadOptions): Promise<number> {
  const { sender, pool, stats } = opts;
  const start = performance.now();
  const end = start + opts.seconds * 1000;
  let credit = 0;
  let last = start;
  let nextSecond = start + 1000;
  let second = 0;
  const batchEvents = pool.templateBatches[0]!.events;
  while (performance.now() < end && !opts.signal?.aborted) {
    const now = performance.now();
    if (opts.rate === undefined) {
      while (sender.trySend(pool.next()));
    } else {
      credit += ((now - last) / 1000) * opts.rate;
      // Cap credit at one second of load so a stall does not turn into an unbounded burst.
      credit = Math.min(credit, opts.rate);
      while (credit >= batchEvents) {
        credit -= batchEvents;
        if (!sender.trySend(pool.next())) stats.skipped++;
      }
    }
    last = now;
    if (now >= nextSecond) {
      nextSecond += 1000;
      opts.onSecond?.(++second);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const elapsed = (performance.now() - start) / 1000;
  await sender.drain(10_000);
  return elapsed;
}

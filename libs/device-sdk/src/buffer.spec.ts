import type { Event } from '@sluice/contracts';
import { PriorityBuffer, type BufferLimits } from './buffer';
import type { ClassIndex, DropReason } from './priority';

const ev = (id: string): Event => ({
  kind: {
    $case: 'telemetry',
    value: {
      eventId: id,
      deviceId: 'd',
      eventTime: new Date(0),
      sensorType: 's',
      value: 1,
      unit: 'u',
      firmwareVersion: '',
      region: 'r',
      schemaVersion: 0,
      attributes: {},
    },
  },
});
const idOf = (e: Event) => e.kind!.value.eventId;

function setup(limits: Partial<BufferLimits> = {}) {
  const drops: Array<{ id: string; cls: ClassIndex; reason: DropReason }> = [];
  let ids = 0;
  const buf = new PriorityBuffer(
    {
      maxEvents: 10,
      maxBytes: 1_000_000,
      maxBatchEvents: 4,
      maxBatchBytes: 100_000,
      lingerMs: [0, 20, 20],
      ...limits,
    },
    {
      drop: (e, cls, reason) => drops.push({ id: idOf(e), cls, reason }),
      batchId: () => `b${ids++}`,
    },
  );
  let seq = 0;
  // A fake clock: every offer is at `now`, which the test moves by hand.
  let now = 1_000;
  const offer = (id: string, cls: ClassIndex, size = 10) =>
    buf.offer(ev(id), cls, size, ++seq, now);
  return {
    buf,
    drops,
    offer,
    advance: (ms: number) => (now += ms),
    get now() {
      return now;
    },
  };
}

const held = (buf: PriorityBuffer) => buf.snapshot().map((s) => idOf(s.event));

describe('PriorityBuffer bounds and eviction', () => {
  it('stays within its event bound, evicting the oldest of the lowest class and counting each drop', () => {
    const t = setup({ maxEvents: 5 });
    for (let i = 0; i < 5; i++) expect(t.offer(`bulk-${i}`, 2)).toBe(true);
    expect(t.offer('normal-0', 1)).toBe(true);
    expect(t.offer('bulk-5', 2)).toBe(true);
    expect(t.buf.events).toBe(5);
    expect(t.drops).toEqual([
      { id: 'bulk-0', cls: 2, reason: 'evicted' },
      { id: 'bulk-1', cls: 2, reason: 'evicted' },
    ]);
    expect(held(t.buf).sort()).toEqual(['bulk-2', 'bulk-3', 'bulk-4', 'bulk-5', 'normal-0']);
  });

  it('stays within its byte bound', () => {
    const t = setup({ maxEvents: 1000, maxBytes: 100 });
    for (let i = 0; i < 20; i++) t.offer(`b-${i}`, 2, 30);
    expect(t.buf.bytes).toBeLessThanOrEqual(100);
    expect(t.buf.events).toBe(3);
    expect(held(t.buf)).toEqual(['b-17', 'b-18', 'b-19']);
    expect(t.drops.filter((d) => d.reason === 'evicted')).toHaveLength(17);
  });

  it('keeps safety events: bulk goes first, then the oldest safety event, never a safety event for bulk', () => {
    const t = setup({ maxEvents: 4 });
    t.offer('bulk-0', 2);
    t.offer('bulk-1', 2);
    t.offer('safety-0', 0);
    t.offer('safety-1', 0);
    expect(t.offer('safety-2', 0)).toBe(true);
    expect(t.offer('safety-3', 0)).toBe(true);
    expect(held(t.buf)).toEqual(['safety-0', 'safety-1', 'safety-2', 'safety-3']);
    // Full of safety events: a bulk or normal event is refused, a safety one evicts the oldest.
    expect(t.offer('bulk-2', 2)).toBe(false);
    expect(t.offer('normal-0', 1)).toBe(false);
    expect(t.offer('safety-4', 0)).toBe(true);
    expect(held(t.buf)).toEqual(['safety-1', 'safety-2', 'safety-3', 'safety-4']);
    expect(t.drops).toEqual([
      { id: 'bulk-0', cls: 2, reason: 'evicted' },
      { id: 'bulk-1', cls: 2, reason: 'evicted' },
      { id: 'bulk-2', cls: 2, reason: 'buffer_full' },
      { id: 'normal-0', cls: 1, reason: 'buffer_full' },
      { id: 'safety-0', cls: 0, reason: 'evicted' },
    ]);
  });

  it('refuses an event larger than a batch may be', () => {
    const t = setup({ maxBatchBytes: 50 });
    expect(t.offer('big', 0, 51)).toBe(false);
    expect(t.drops).toEqual([{ id: 'big', cls: 0, reason: 'too_large' }]);
    expect(t.buf.events).toBe(0);
  });

  it('never evicts a batch in flight; refuses when everything held is in flight', () => {
    const t = setup({ maxEvents: 4, maxBatchEvents: 4 });
    for (let i = 0; i < 4; i++) t.offer(`bulk-${i}`, 2);
    const b = t.buf.next(t.now, true)!;
    t.buf.markSent(b, t.now);
    expect(t.offer('safety-0', 0)).toBe(false);
    expect(t.drops).toEqual([{ id: 'safety-0', cls: 0, reason: 'buffer_full' }]);
    expect(t.buf.events).toBe(4);
  });

  it('evicts from a batch waiting for its resend, whose other events leave later under a new batch id', () => {
    const t = setup({ maxEvents: 4, maxBatchEvents: 3 });
    for (let i = 0; i < 4; i++) t.offer(`n-${i}`, 1);
    const b = t.buf.next(t.now, true)!;
    expect(b.events.map(idOf)).toEqual(['n-0', 'n-1', 'n-2']);
    t.buf.markSent(b, t.now);
    t.buf.requeue(b, t.now + 1_000);
    expect(t.offer('s-0', 0)).toBe(true);
    expect(t.drops).toEqual([{ id: 'n-0', cls: 1, reason: 'evicted' }]);
    const s = t.buf.next(t.now, true)!;
    expect(s.events.map(idOf)).toEqual(['s-0']);
    t.buf.markSent(s, t.now);
    const again = t.buf.next(t.now, true)!;
    expect(again.id).not.toBe(b.id);
    expect(again.events.map(idOf)).toEqual(['n-1', 'n-2', 'n-3']);
  });

  it('holds any number of offers within the bound (ring growth and wrap-around)', () => {
    const t = setup({ maxEvents: 1000, maxBatchEvents: 100 });
    for (let i = 0; i < 50_000; i++) t.offer(`e-${i}`, (i % 3) as ClassIndex);
    expect(t.buf.events).toBe(1000);
    const counts = t.buf.countByClass();
    expect(counts).toEqual([1000, 0, 0]);
    expect(held(t.buf)[0]).toBe('e-47001');
    expect(t.drops).toHaveLength(49_000);
  });
});

describe('PriorityBuffer batching', () => {
  it('cuts safety batches first, then normal, then bulk', () => {
    const t = setup({ maxEvents: 100 });
    t.offer('bulk-0', 2);
    t.offer('normal-0', 1);
    t.offer('safety-0', 0);
    t.offer('safety-1', 0);
    const order: string[][] = [];
    for (let b = t.buf.next(t.now, true); b; b = t.buf.next(t.now, true)) {
      order.push(b.events.map(idOf));
      t.buf.markSent(b, t.now);
    }
    expect(order).toEqual([['safety-0', 'safety-1'], ['normal-0'], ['bulk-0']]);
  });

  it('waits for the linger or a full batch, and says when the next batch is due', () => {
    const t = setup({ maxEvents: 100, maxBatchEvents: 3, lingerMs: [0, 20, 50] });
    t.offer('n-0', 1);
    t.offer('b-0', 2);
    expect(t.buf.next(t.now, false)).toBeUndefined();
    expect(t.buf.nextDueAt(t.now, false)).toBe(t.now + 20);
    t.advance(20);
    const send = () => {
      const b = t.buf.next(t.now, false);
      if (b) t.buf.markSent(b, t.now);
      return b?.events.map(idOf);
    };
    expect(send()).toEqual(['n-0']);
    expect(t.buf.nextDueAt(t.now, false)).toBe(t.now + 30);
    t.offer('b-1', 2);
    t.offer('b-2', 2);
    expect(send()).toEqual(['b-0', 'b-1', 'b-2']);
    t.offer('s-0', 0);
    expect(t.buf.nextDueAt(t.now, false)).toBe(t.now);
    expect(send()).toEqual(['s-0']);
  });

  it('cuts batches by bytes', () => {
    const t = setup({ maxEvents: 100, maxBatchEvents: 100, maxBatchBytes: 25 });
    for (let i = 0; i < 5; i++) t.offer(`e-${i}`, 1, 10);
    expect(t.buf.next(t.now, true)!.events.map(idOf)).toEqual(['e-0', 'e-1']);
  });

  it('resends a batch with the same id after a requeue, not before its time, and releases it on ack', () => {
    const t = setup({ maxEvents: 100 });
    t.offer('e-0', 1);
    t.offer('e-1', 1);
    const b = t.buf.next(t.now, true)!;
    t.buf.markSent(b, t.now);
    expect(t.buf.inFlightBatches).toBe(1);
    t.buf.requeue(b, t.now + 100);
    t.offer('e-2', 1);
    // The class waits for its resend: no new batch is cut ahead of it.
    expect(t.buf.next(t.now, true)).toBeUndefined();
    expect(t.buf.nextDueAt(t.now, true)).toBe(t.now + 100);
    t.advance(100);
    const again = t.buf.next(t.now, true)!;
    expect(again).toBe(b);
    expect(again.id).toBe(b.id);
    t.buf.markSent(again, t.now);
    expect(again.attempts).toBe(2);
    t.buf.release(again);
    expect(t.buf.events).toBe(1);
    expect(t.buf.inFlightBatches).toBe(0);
    expect(t.buf.next(t.now, true)!.events.map(idOf)).toEqual(['e-2']);
  });

  it('splits a never sent batch in two with new ids, in place', () => {
    const t = setup({ maxEvents: 100 });
    for (let i = 0; i < 4; i++) t.offer(`e-${i}`, 1);
    const b = t.buf.next(t.now, true)!;
    const first = t.buf.split(b);
    expect(first.events.map(idOf)).toEqual(['e-0', 'e-1']);
    expect(first.id).not.toBe(b.id);
    expect(t.buf.next(t.now, true)).toBe(first);
    t.buf.markSent(first, t.now);
    const second = t.buf.next(t.now, true)!;
    expect(second.events.map(idOf)).toEqual(['e-2', 'e-3']);
    expect(t.buf.events).toBe(4);
  });

  it('drops everything held on dropAll, in flight included', () => {
    const t = setup({ maxEvents: 100, maxBatchEvents: 2 });
    for (let i = 0; i < 5; i++) t.offer(`e-${i}`, 1);
    t.buf.markSent(t.buf.next(t.now, true)!, t.now);
    expect(t.buf.dropAll('closed')).toBe(5);
    expect(t.drops.map((d) => d.reason)).toEqual(Array(5).fill('closed'));
    expect([t.buf.events, t.buf.bytes, t.buf.inFlightBatches]).toEqual([0, 0, 0]);
  });
});

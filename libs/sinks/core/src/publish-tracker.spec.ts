import { PublishTracker } from './publish-tracker';
import { RecentIds } from './recent-ids';

function deferred() {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('PublishTracker', () => {
  it('publishes a record once while in flight, skips it once acked, publishes again after a failure', async () => {
    const recent = new RecentIds(10);
    const t = new PublishTracker(10, recent);
    const first = deferred();
    let calls = 0;
    const publish = () => (calls++, first.promise);
    const a = t.ack('e1', publish)!;
    const b = t.ack('e1', publish)!;
    expect(b).toBe(a);
    await tick();
    expect(calls).toBe(1);
    first.resolve();
    await a;
    expect(t.ack('e1', publish)).toBeUndefined();
    expect(recent.has('e1')).toBe(true);

    const failing = deferred();
    const f = t.ack('e2', () => failing.promise)!;
    failing.reject(new Error('refused'));
    await expect(f).rejects.toThrow('refused');
    expect(recent.has('e2')).toBe(false);
    expect(t.ack('e2', () => Promise.resolve())).toBeDefined();
  });

  it('keeps at most maxInFlight publishes waiting for acks', async () => {
    const t = new PublishTracker(2, new RecentIds(0));
    const acks = [deferred(), deferred(), deferred()];
    let started = 0;
    const all = acks.map((d, i) => t.ack(`e${i}`, () => (started++, d.promise))!);
    await tick();
    expect(started).toBe(2);
    acks[0]!.resolve();
    await tick();
    expect(started).toBe(3);
    acks[1]!.resolve();
    acks[2]!.resolve();
    await Promise.all(all);
    expect(t.inFlight).toBe(0);
    t.setLimit(5);
    expect(() => t.setLimit(0)).toThrow(RangeError);
  });
});

// The leader lease against the real NATS (KV bucket with max_age as the TTL) and the journal's claim
// against a real filesystem store: acquisition, renewal, takeover after expiry, release, a late
// renewal kept while the key is still ours, a lost reply, terms, and the fencing that stops a holder
// from writing once its lease is gone.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { natsFixture, sleep, uniqueId, waitFor, type NatsFixture } from '@sluice/testing';
import { FsStore, journalKey } from '@sluice/archive';
import { Journal } from './journal';
import {
  fencedStore,
  Lease,
  LEASE_KEY,
  leaseBucket,
  LeaseLapsedError,
  LeaseLostError,
  type LeaseValue,
} from './lease';

const log = createLogger({
  service: 'archiver-lease-test',
  level: 'silent',
  hashDeviceId: createDeviceHasher('archiver-test-key-0123'),
});
const TTL = 2_000;

describe('archiver leader lease (NATS KV)', () => {
  let nats: NatsFixture;
  const dirs: string[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterAll(async () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await nats.cleanup();
  });

  function bucket(): string {
    const b = leaseBucket(uniqueId('lease'), 'archiver');
    nats.track(`KV_${b}`);
    return b;
  }

  async function replica(b: string, ttlMs = TTL): Promise<Lease> {
    const l = new Lease({ nc: nats.nc, bucket: b, ttlMs, log });
    await l.open();
    return l;
  }

  function store(): FsStore {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-lease-'));
    dirs.push(dir);
    return new FsStore({ root: dir });
  }

  it('names one bucket per namespace and durable', () => {
    expect(leaseBucket('', 'archiver')).toBe('archiver-lease_archiver');
    expect(leaseBucket('staging', 'archiver-eu')).toBe('staging_archiver-lease_archiver-eu');
    expect(leaseBucket('staging', 'a')).not.toBe(leaseBucket('staging', 'b'));
  });

  it('one replica acquires; the others see it held, also while it renews past the TTL', async () => {
    const b = bucket();
    const [a, c, d] = [await replica(b), await replica(b), await replica(b)];
    expect(await a.acquire()).toBe(true);
    expect(a.role).toBe('leader');
    expect(a.isFresh()).toBe(true);
    expect(await c.acquire()).toBe(false);
    expect(c.otherHolder).toBe(a.holder);
    expect(await d.acquire()).toBe(false);

    // Renewed every third of the TTL for twice the TTL: still its lease, nobody else's.
    for (let i = 0; i < 6; i++) {
      await sleep(TTL / 3);
      await a.renew();
      expect(a.role).toBe('leader');
      expect(await c.acquire()).toBe(false);
    }
    const entry = await (await new Kvm(nats.nc).open(b)).get(LEASE_KEY);
    expect(JSON.parse(entry!.string())).toMatchObject({ holder: a.holder });
    await a.release();
  });

  it('a holder that stops renewing: no longer fresh, then a standby takes over, and its own late renewal loses it', async () => {
    const b = bucket();
    const [a, c] = [await replica(b), await replica(b)];
    const lost: LeaseLostError[] = [];
    a.onLost((e) => lost.push(e));
    expect(await a.acquire()).toBe(true);

    // The standby keeps trying as it would every ttl/3; whenever it wins, the old holder must
    // already count itself out (its validity ends a quarter of the TTL before the key expires).
    let oldFreshAtTakeover: boolean | undefined;
    await waitFor(
      'takeover',
      async () => {
        const won = await c.acquire();
        if (won) oldFreshAtTakeover = a.isFresh();
        return won;
      },
      { timeoutMs: 5 * TTL, intervalMs: TTL / 3 },
    );
    expect(oldFreshAtTakeover).toBe(false);
    expect(c.role).toBe('leader');
    await a.renew();
    expect(a.role).toBe('lost');
    expect(lost).toHaveLength(1);
    expect(() => a.assertHeld()).toThrow(LeaseLostError);
    // The late renewal changed nothing: the lease is the new holder's.
    await c.renew();
    expect(c.role).toBe('leader');
    await c.release();
  });

  it('release on stop: a standby acquires at once and may write at once', async () => {
    const b = bucket();
    const [a, c] = [await replica(b), await replica(b)];
    expect(await a.acquire()).toBe(true);
    expect(await c.acquire()).toBe(false);
    await a.release();
    expect(a.role).toBe('released');
    expect(a.isFresh()).toBe(false);
    const entry = await (await new Kvm(nats.nc).open(b)).get(LEASE_KEY);
    expect(JSON.parse(entry!.string())).toMatchObject({ holder: a.holder, released: true });
    expect(await c.acquire()).toBe(true);
    expect(c.waitMs).toBe(0);
    expect(c.isFresh()).toBe(true);
    // The released one does not lose anything or come back by itself.
    await a.renew();
    expect(a.role).toBe('released');
    await c.release();
  });

  it('fencing: once a renewal fails (the key was deleted under it) the store refuses every write', async () => {
    const b = bucket();
    const a = await replica(b);
    expect(await a.acquire()).toBe(true);
    const s = store();
    const fenced = fencedStore(s, a);
    await fenced.put('before', Buffer.from('x'));

    await (await new Kvm(nats.nc).open(b)).delete(LEASE_KEY);
    await a.renew();
    expect(a.role).toBe('lost');
    await expect(fenced.put('after', Buffer.from('x'))).rejects.toBeInstanceOf(LeaseLostError);
    await expect(fenced.putIfVersion('after', Buffer.from('x'), null)).rejects.toBeInstanceOf(
      LeaseLostError,
    );
    await expect(fenced.delete('before')).rejects.toBeInstanceOf(LeaseLostError);
    expect(await s.get('after')).toBeUndefined();
    expect(await s.get('before')).toBeDefined();
    // Reads still work (nothing to fence there).
    expect(await fenced.get('before')).toBeDefined();
  });

  it('fencing: a holder whose renewals stopped refuses writes once its validity ends, before anyone can take over; a late renewal while the key is still its own keeps the lease', async () => {
    // A longer TTL: the late renewal must be sent between the end of the validity (3/4 TTL) and the
    // key's expiry (1 TTL), whatever the machine's load.
    const ttl = 8_000;
    const b = bucket();
    const [a, c] = [await replica(b, ttl), await replica(b, ttl)];
    expect(await a.acquire()).toBe(true);
    const fenced = fencedStore(store(), a);
    await waitFor('validity over', () => !a.isFresh(), { timeoutMs: 2 * ttl, intervalMs: 20 });
    // The key has not expired yet: nobody holds it but the stale holder, which no longer writes.
    expect(await c.acquire()).toBe(false);
    await expect(fenced.put('late', Buffer.from('x'))).rejects.toBeInstanceOf(LeaseLapsedError);
    // Paused, not lost: its next renewal finds the key at its revision and keeps it.
    expect(a.role).toBe('leader');
    expect(await a.renew()).toMatchObject({ outcome: 'renewed', late: true });
    expect(a.isFresh()).toBe(true);
    await fenced.put('after', Buffer.from('x'));
    expect(await c.acquire()).toBe(false);
    await a.release();
  });

  it('a renewal whose reply was lost: the next one finds its own later revision and keeps the lease; a revision of anyone else loses it', async () => {
    const b = bucket();
    const [a, c] = [await replica(b), await replica(b)];
    expect(await a.acquire()).toBe(true);
    const kv = await new Kvm(nats.nc).open(b);
    const mine = (await kv.get(LEASE_KEY))!;
    // What a's renewal would have written, landed without a's knowing it.
    await kv.update(LEASE_KEY, mine.string(), mine.revision);
    expect(await a.renew()).toMatchObject({ outcome: 'renewed' });
    expect(a.role).toBe('leader');
    expect(await c.acquire()).toBe(false);

    // Someone else's value at a later revision (the key changed hands): lost.
    const now = (await kv.get(LEASE_KEY))!;
    const other: LeaseValue = { ...(JSON.parse(now.string()) as LeaseValue), holder: 'other' };
    await kv.update(LEASE_KEY, JSON.stringify(other), now.revision);
    expect(await a.renew()).toMatchObject({ outcome: 'lost' });
    expect(a.role).toBe('lost');
  });

  it("terms: a holder that lost the lease and leads again has a new term; the old term's writes stay refused", async () => {
    const b = bucket();
    const a = await replica(b);
    expect(await a.acquire()).toBe(true);
    const firstTerm = a.term;
    const s = store();
    const oldTerm = fencedStore(s, a.termGuard());
    await oldTerm.put('first', Buffer.from('x'));

    // Another holder took the lease and gave it back (released): a loses it, then takes it again.
    const kv = await new Kvm(nats.nc).open(b);
    const entry = (await kv.get(LEASE_KEY))!;
    const released: LeaseValue = {
      ...(JSON.parse(entry.string()) as LeaseValue),
      holder: 'other',
      released: true,
    };
    await kv.update(LEASE_KEY, JSON.stringify(released), entry.revision);
    await a.renew();
    expect(a.role).toBe('lost');
    expect(await a.acquire()).toBe(false);
    a.standBy();
    expect(a.role).toBe('standby');
    expect(await a.acquire()).toBe(true);
    expect(a.term).toBeGreaterThan(firstTerm);
    expect(a.isFresh()).toBe(true);

    await expect(oldTerm.put('late', Buffer.from('x'))).rejects.toBeInstanceOf(LeaseLostError);
    expect(() => a.termGuard().assertHeld()).not.toThrow();
    await fencedStore(s, a.termGuard()).put('second', Buffer.from('x'));
    expect(await s.get('late')).toBeUndefined();
    expect(await s.get('second')).toBeDefined();
    await a.release();
  });

  it('a key deleted by hand: the next holder writes only once the old holder has stopped counting on it', async () => {
    const b = bucket();
    const [a, c] = [await replica(b), await replica(b)];
    expect(await a.acquire()).toBe(true);
    await (await new Kvm(nats.nc).open(b)).delete(LEASE_KEY);
    // The old holder has not renewed since (paused, say): it still counts on its lease.
    expect(await c.acquire()).toBe(true);
    expect(a.isFresh()).toBe(true);
    expect(c.isFresh()).toBe(false);
    expect(c.waitMs).toBeGreaterThan(0);
    expect(() => c.assertHeld()).toThrow(LeaseLostError);
    // Not lost: it only waits.
    expect(c.role).toBe('leader');
    let oldFreshWhenWritable: boolean | undefined;
    await waitFor(
      'the new holder writable',
      async () => {
        await c.renew();
        if (!c.isFresh()) return false;
        oldFreshWhenWritable = a.isFresh();
        return true;
      },
      { timeoutMs: 3 * TTL, intervalMs: TTL / 3 },
    );
    expect(oldFreshWhenWritable).toBe(false);
    await a.renew();
    expect(a.role).toBe('lost');
    await c.release();
  });

  it('an existing bucket keeps its own TTL', async () => {
    const b = bucket();
    const a = await replica(b, 3_000);
    const c = await replica(b, 7_000);
    expect(a.ttlMs).toBe(3_000);
    expect(c.ttlMs).toBe(3_000);
    expect(c.marginMs).toBe(750);
  });
});

describe('archiver journal claim', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("a deposed leader's journal write fails and reports the takeover; the successor's journal stays", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    dirs.push(dir);
    const s = new FsStore({ root: dir });
    const created = new Date().toISOString();
    const taken: LeaseLostError[] = [];
    const old = await Journal.load(s, 'archiver', 'T', created, {
      holder: 'old',
      onTakenOver: (e) => taken.push(e),
    });
    await old.begin({ seqs: [[1, 5]], objects: [], startedAt: created });
    await old.commit([[1, 5]], undefined);

    const next = await Journal.load(s, 'archiver', 'T', created, { holder: 'new' });
    expect(next.isCommitted(3)).toBe(true);
    const written = await s.get(journalKey('archiver'));

    await expect(
      old.begin({ seqs: [[6, 9]], objects: [], startedAt: created }),
    ).rejects.toBeInstanceOf(LeaseLostError);
    expect(taken).toHaveLength(1);
    expect(taken[0]!.message).toContain('archiver new');
    expect(await s.get(journalKey('archiver'))).toEqual(written);

    await next.begin({ seqs: [[6, 9]], objects: [], startedAt: created });
    await next.commit([[6, 9]], undefined);
    const state = JSON.parse(
      Buffer.from((await s.get(journalKey('archiver')))!).toString('utf8'),
    ) as { holder: string; committed: unknown };
    expect(state.holder).toBe('new');
  });
});

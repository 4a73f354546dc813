import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { SluiceError } from '@sluice/errors';
import { NotProvisionedError } from '@sluice/jetstream';
import type { Logger } from '@sluice/observability';
import type { ObjectStore } from '@sluice/archive';

/** The one key of a lease bucket. */
export const LEASE_KEY = 'leader';

/**
 * This process lost (or never held) the lease it needs to write: it must not write the archive any
 * more. Not retriable: the leader steps down (its consumer stops, its segments are redelivered) and
 * becomes a standby; a replica that acquires the lease afterwards takes over.
 */
export class LeaseLostError extends SluiceError {
  override readonly name = 'LeaseLostError';
  readonly code = 'archiver_lease_lost';
}

/**
 * The lease's validity ran out before a renewal came back (a stalled event loop, a slow NATS): no
 * write until the next renewal, whose compare-and-swap at our revision proves nobody held the lease
 * meanwhile. Retriable; a renewal that is refused loses the lease ({@link LeaseLostError}).
 */
export class LeaseLapsedError extends SluiceError {
  override readonly name = 'LeaseLapsedError';
  readonly code = 'archiver_lease_lapsed';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, retriable: true });
  }
}

/** The lease bucket is unusable as it is (no max_age: a lease in it would never expire). */
export class LeaseBucketError extends SluiceError {
  override readonly name = 'LeaseBucketError';
  readonly code = 'archiver_lease_bucket';
}

/**
 * KV bucket of the leader lease of one durable consumer in one namespace (stream `KV_<bucket>`):
 * `archiver-lease_<durable>`, prefixed by `<namespace>_` outside the canonical namespace and
 * suffixed by `_<region>` in a regional deployment (SLUICE_REGION), whose archivers consume their
 * own region's clean stream and must not take turns with another region's.
 */
export function leaseBucket(namespace: string, durable: string, region?: string): string {
  return `${namespace ? `${namespace}_` : ''}archiver-lease_${durable}${region ? `_${region}` : ''}`;
}

/** This process's identity in a lease: host name, process id and a random part (pids repeat in containers). */
export function replicaId(): string {
  return `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
}

/** What the lease key holds (JSON), for people reading it with `nats kv get`. */
export interface LeaseValue {
  holder: string;
  /** When this holder acquired the lease (ISO 8601, its clock). */
  acquiredAt: string;
  /** When it last renewed it (ISO 8601, its clock). */
  renewedAt: string;
  /** Set by a holder that gave the lease back on a clean stop: the next one may take it at once. */
  released?: boolean;
}

export interface LeaseOptions {
  nc: NatsConnection;
  /** The KV bucket (see {@link leaseBucket}). */
  bucket: string;
  /**
   * How long the lease outlives the last renewal: the bucket's `max_age`, set when this process
   * creates the bucket. An existing bucket's own `max_age` wins (logged when it differs). Required.
   */
  ttlMs: number;
  /** This replica's identity. Default {@link replicaId}. */
  holder?: string;
  /** Only open an existing bucket, never create it (`NATS_PROVISION=false`). Default false. */
  bindOnly?: boolean;
  log: Logger;
}

export type LeaseRole = 'standby' | 'leader' | 'lost' | 'released';

/** What a renewal observed, for metrics and logs. */
export interface RenewalResult {
  /** `renewed`: still ours (`late` when sent past the validity); `lost`; `failed`: no answer, retried. */
  outcome: 'renewed' | 'lost' | 'failed';
  /** Sent after the validity had run out (writes were refused until it came back). */
  late: boolean;
  /** Round trip of the KV update. */
  ms: number;
}

/** The write check of one term of leadership (see {@link Lease.termGuard}). */
export interface LeaseGuard {
  assertHeld(): void;
  isFresh(): boolean;
}

const now = () => performance.now();

function wrongLastSequence(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

function parseValue(raw: string): Partial<LeaseValue> {
  try {
    return JSON.parse(raw) as Partial<LeaseValue>;
  } catch {
    return {};
  }
}

/**
 * A leader lease in a NATS KV bucket whose `max_age` is the lease's time to live (nats-server 2.9
 * has no per-key TTL): a create (expecting no entry) acquires it when the key is absent (never written,
 * or expired), `update` at the last revision renews it, and an update to a value marked `released`
 * gives it back, which the next holder takes over by `update` at that revision.
 *
 * The holder counts the lease as its own only until `ttl − margin` (margin = ttl/4) after it *sent*
 * its last successful renewal: the server stamps the entry no earlier than that, so the key cannot
 * expire (and no one else can acquire it) before then. Past that point writes are refused
 * ({@link LeaseLapsedError}) but the lease is not given up: a renewal sent late still succeeds only
 * if the key is at our revision, i.e. it neither expired nor changed hands meanwhile, and then the
 * validity starts again from its sending. A renewal refused at our revision (expired, taken over,
 * deleted) loses the lease: {@link role} becomes `lost` and {@link onLost} listeners run. A renewal
 * that gets no answer is retried at the next tick (a lost reply whose update landed is recognised by
 * our holder and acquisition time in the key).
 *
 * Every acquisition starts a new {@link term}; {@link termGuard} fences one term's writes, so a term's
 * late writes stay refused even when this replica leads again. After a loss, {@link standBy} makes
 * the replica a candidate again.
 *
 * A key that was deleted or purged (by hand: a release never deletes) says nothing about when its
 * holder last renewed, so whoever acquires it after that waits a whole TTL before it may write: by
 * then any previous holder's validity has run out.
 */
export class Lease {
  readonly holder: string;
  private role_: LeaseRole = 'standby';
  private term_ = 0;
  private kv: KV | undefined;
  private ttl: number;
  private revision = 0;
  private acquiredAt = '';
  private validUntil = 0;
  /** Writes wait until then after taking over a deleted key (see the class). */
  private writableFrom = 0;
  private lostError: LeaseLostError | undefined;
  private readonly listeners: Array<(err: LeaseLostError) => void> = [];
  /** Holder of the lease as last seen by a failed acquisition (for the logs). */
  private seenHolder: string | undefined;

  constructor(private readonly opts: LeaseOptions) {
    this.holder = opts.holder ?? replicaId();
    this.ttl = opts.ttlMs;
  }

  get role(): LeaseRole {
    return this.role_;
  }

  get bucket(): string {
    return this.opts.bucket;
  }

  /** The lease's time to live in effect (the bucket's `max_age`) once {@link open}ed. */
  get ttlMs(): number {
    return this.ttl;
  }

  /** What counts as too late: a renewal sent later than `ttl − margin` after the last one. */
  get marginMs(): number {
    return this.ttl / 4;
  }

  /** Incremented by every acquisition: which leadership a write belongs to. */
  get term(): number {
    return this.term_;
  }

  /** Another replica's id when the last acquisition failed because it holds the lease. */
  get otherHolder(): string | undefined {
    return this.seenHolder;
  }

  /** Creates the bucket (or opens it, with `bindOnly`) and reads its TTL. */
  async open(): Promise<void> {
    const kvm = new Kvm(this.opts.nc);
    const bucket = this.opts.bucket;
    const kv = this.opts.bindOnly
      ? await kvm.open(bucket)
      : await kvm.create(bucket, { ttl: this.opts.ttlMs, history: 1 });
    let status;
    try {
      status = await kv.status();
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)
        throw new NotProvisionedError(`KV_${bucket}`);
      throw err;
    }
    if (!(status.ttl > 0))
      throw new LeaseBucketError(
        `KV bucket ${bucket} has no max_age, so a lease in it would never expire: delete it while no archiver of this durable runs, and start again`,
      );
    if (status.ttl !== this.opts.ttlMs)
      this.opts.log.warn(
        { bucket, bucketTtlMs: status.ttl, configuredTtlMs: this.opts.ttlMs },
        "the lease bucket exists with another max_age: using the bucket's (delete the bucket while no archiver of this durable runs to change it)",
      );
    this.ttl = status.ttl;
    this.kv = kv;
  }

  /**
   * Holds the lease, within its validity and past any wait after a takeover: the only state in which
   * the archive may be written. With `term`: and still in that term.
   */
  isFresh(term?: number): boolean {
    const t = now();
    return (
      this.role_ === 'leader' &&
      (term === undefined || term === this.term_) &&
      t < this.validUntil &&
      t >= this.writableFrom
    );
  }

  /** How long a new holder still waits before it may write (0 when it may, or holds nothing). */
  get waitMs(): number {
    return this.role_ === 'leader' ? Math.max(0, this.writableFrom - now()) : 0;
  }

  /**
   * Throws unless {@link isFresh} (in `term`, when given): {@link LeaseLapsedError} while the lease
   * waits for a late renewal, {@link LeaseLostError} otherwise.
   */
  assertHeld(term?: number): void {
    if (this.isFresh(term)) return;
    if (term !== undefined && term !== this.term_)
      throw new LeaseLostError(
        `lease ${this.opts.bucket}: term ${term} of this archiver is over (now ${this.role_} in term ${this.term_})`,
      );
    if (this.role_ === 'leader' && now() >= this.validUntil)
      throw new LeaseLapsedError(
        `lease ${this.opts.bucket} not renewed within ${Math.round(this.ttl - this.marginMs)} ms: no write until a renewal confirms it`,
      );
    throw (
      this.lostError ??
      new LeaseLostError(
        this.role_ === 'leader'
          ? `lease ${this.opts.bucket} was taken over from a deleted key: no write for ${Math.round(this.waitMs)} ms more`
          : `this archiver does not hold lease ${this.opts.bucket} (${this.role_})`,
      )
    );
  }

  /** The write check of the current term: refuses for good once this term's leadership ends. */
  termGuard(): LeaseGuard {
    const term = this.term_;
    return { assertHeld: () => this.assertHeld(term), isFresh: () => this.isFresh(term) };
  }

  /** Called once when the lease is lost (not when it is released). */
  onLost(listener: (err: LeaseLostError) => void): void {
    this.listeners.push(listener);
  }

  /**
   * One attempt to become the holder: true when this replica now holds the lease. False when another
   * holds it; throws when NATS did not answer (the caller tries again later).
   */
  async acquire(): Promise<boolean> {
    if (this.role_ !== 'standby') return this.role_ === 'leader';
    const kv = this.bucketKv();
    let sentAt = now();
    const acquiredAt = new Date().toISOString();
    let waitMs = 0;
    try {
      this.revision = await kv.put(LEASE_KEY, this.value(acquiredAt), { previousSeq: 0 });
    } catch (err) {
      if (!wrongLastSequence(err)) throw err;
      const entry = await kv.get(LEASE_KEY);
      if (!entry) return false;
      const current = entry.operation === 'PUT' ? parseValue(entry.string()) : {};
      if (entry.operation !== 'PUT') {
        // Deleted or purged by hand: its last holder may still count on it for up to a TTL.
        waitMs = this.ttl;
      } else if (!current.released && current.holder !== this.holder) {
        this.seenHolder = current.holder;
        return false;
      }
      // Released, or our own create whose reply was lost: taken on at its revision.
      sentAt = now();
      try {
        this.revision = await kv.update(LEASE_KEY, this.value(acquiredAt), entry.revision);
      } catch (e) {
        if (wrongLastSequence(e)) return false;
        throw e;
      }
    }
    this.seenHolder = undefined;
    this.acquiredAt = acquiredAt;
    this.validUntil = sentAt + this.ttl - this.marginMs;
    this.writableFrom = now() + waitMs;
    this.term_++;
    this.role_ = 'leader';
    return true;
  }

  /** After a loss: a candidate again (a standby; the next {@link acquire} may start a new term). */
  standBy(): void {
    if (this.role_ !== 'lost') return;
    this.role_ = 'standby';
    this.lostError = undefined;
  }

  /**
   * Renews a held lease by compare-and-swap at our revision, also when sent late (see the class): a
   * refusal loses it, no answer leaves it to the next renewal. Undefined when not leading.
   */
  async renew(): Promise<RenewalResult | undefined> {
    if (this.role_ !== 'leader') return undefined;
    const term = this.term_;
    const sentAt = now();
    const late = sentAt >= this.validUntil;
    const validityMs = this.ttl - this.marginMs;
    const kv = this.bucketKv();
    let rev: number;
    try {
      // Waits as long as the reply could still extend the validity.
      rev = await kv.update(LEASE_KEY, this.value(this.acquiredAt), this.revision, validityMs);
    } catch (err) {
      const ms = now() - sentAt;
      if (this.role_ !== 'leader' || term !== this.term_) return { outcome: 'lost', late, ms };
      if (!wrongLastSequence(err)) {
        this.opts.log.warn(
          { err, bucket: this.opts.bucket, late, ms: Math.round(ms) },
          'lease renewal got no answer; retrying at the next renewal (no write once its validity ends)',
        );
        return { outcome: 'failed', late, ms };
      }
      const adopted = await this.ownLaterRevision().catch(() => undefined);
      if (adopted === undefined) {
        this.lose(
          new LeaseLostError(
            `lease ${this.opts.bucket} was taken over or expired (renewal refused at revision ${this.revision}${late ? `, sent ${Math.round(sentAt - this.validUntil)} ms past its validity` : ''})`,
            { cause: err },
          ),
        );
        return { outcome: 'lost', late, ms };
      }
      // An earlier renewal landed though its reply was lost: still our key, renewed from there.
      if (this.role_ !== 'leader' || term !== this.term_) return { outcome: 'lost', late, ms };
      this.revision = adopted;
      return this.renew();
    }
    const ms = now() - sentAt;
    if (this.role_ !== 'leader' || term !== this.term_) return { outcome: 'lost', late, ms };
    this.revision = rev;
    this.validUntil = sentAt + validityMs;
    return { outcome: 'renewed', late, ms };
  }

  /**
   * The key's revision when its value is still this term's lease written at a later revision than
   * ours (a renewal whose reply was lost): only this term ever writes our holder and acquisition time.
   */
  private async ownLaterRevision(): Promise<number | undefined> {
    const entry = await this.bucketKv().get(LEASE_KEY);
    if (!entry || entry.operation !== 'PUT' || entry.revision <= this.revision) return undefined;
    const v = parseValue(entry.string());
    return v.holder === this.holder && v.acquiredAt === this.acquiredAt && !v.released
      ? entry.revision
      : undefined;
  }

  /** Gives a held lease back (marked `released` at our revision) so a standby takes over at once. */
  async release(): Promise<void> {
    if (this.role_ !== 'leader') return;
    this.role_ = 'released';
    try {
      await this.bucketKv().update(LEASE_KEY, this.value(this.acquiredAt, true), this.revision);
    } catch (err) {
      this.opts.log.warn(
        { err, bucket: this.opts.bucket },
        'could not release the lease; it expires by itself',
      );
    }
  }

  /**
   * Marks the lease lost (a refused renewal, or a write by another holder was seen); with `term`,
   * only if that term is still the current one.
   */
  lose(err: LeaseLostError, term?: number): void {
    if (this.role_ === 'lost' || this.role_ === 'released' || this.role_ === 'standby') return;
    if (term !== undefined && term !== this.term_) return;
    this.role_ = 'lost';
    this.lostError = err;
    for (const l of this.listeners) l(err);
  }

  private bucketKv(): KV {
    if (!this.kv) throw new LeaseBucketError('the lease bucket is not open (call open() first)');
    return this.kv;
  }

  private value(acquiredAt: string, released = false): string {
    const v: LeaseValue = {
      holder: this.holder,
      acquiredAt,
      renewedAt: new Date().toISOString(),
      ...(released ? { released } : {}),
    };
    return JSON.stringify(v);
  }
}

/**
 * The store as the lease holder may use it: every write (put, compare-and-swap, delete) first checks
 * that the lease is still fresh (pass a {@link Lease.termGuard} to fence one term) and throws
 * {@link LeaseLostError} or {@link LeaseLapsedError} otherwise. Reads pass through.
 */
export function fencedStore(store: ObjectStore, lease: { assertHeld(): void }): ObjectStore {
  return {
    location: store.location,
    kind: store.kind,
    put: async (key, body) => {
      lease.assertHeld();
      return store.put(key, body);
    },
    putIfVersion: async (key, body, expected) => {
      lease.assertHeld();
      return store.putIfVersion(key, body, expected);
    },
    delete: async (key) => {
      lease.assertHeld();
      return store.delete(key);
    },
    get: (key) => store.get(key),
    getVersioned: (key) => store.getVersioned(key),
    list: (prefix, limit) => store.list(prefix, limit),
    listPrefixes: (prefix) => store.listPrefixes(prefix),
    probe: () => store.probe(),
    close: () => store.close(),
  };
}

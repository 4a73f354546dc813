import { performance } from 'node:perf_hooks';
import type { Logger } from '@sluice/observability';
import { Lifecycle, type LifecycleState, type ServedActor } from '@sluice/runtime';
import { LeaseLapsedError, LeaseLostError, type Lease, type RenewalResult } from './lease';

export interface LeadershipOptions {
  lease: Lease;
  /**
   * Builds the consumer of one term of leadership: started only once this replica leads, stopped at
   * once when it stops leading (a new one is built for the next term).
   */
  actor: () => ServedActor;
  /**
   * Runs when the lease is won, before the actor starts: claims and recovers the journal, builds
   * the archiver. A throw fails the process (its lease is released on the way out), except a lost
   * lease, which steps down.
   */
  onElected: () => Promise<void>;
  /**
   * Runs when the lease is lost, while the actor stops: fails every segment not committed (its
   * messages are redelivered) and resolves once no write of the term is in progress. Default none.
   */
  onDeposed?: (err: LeaseLostError) => Promise<void>;
  /** Observes every renewal (metrics). */
  onRenewal?: (r: RenewalResult) => void;
  /** Observes how late each tick ran after its due time, in ms (metrics). */
  onTickDelay?: (ms: number) => void;
  /** Counts step-downs (metrics). */
  onStepDown?: () => void;
  log: Logger;
}

/**
 * N replicas of one durable, one of them consuming: every replica runs this in place of its actor.
 * A standby tries to acquire the lease every ttl/3 and is ready while NATS answers it; the replica
 * that gets the lease recovers the journal, starts the actor and renews every ttl/3 on its own timer.
 * A renewal that comes late (the event loop stalled) only pauses writes until it is confirmed (see
 * `Lease`). When the lease is lost (a renewal was refused, or another archiver wrote the journal) the
 * leader steps down: the store refuses every write of that term at once (see `fencedStore` and
 * `Lease.termGuard`), the actor stops pulling, the archiver's uncommitted segments fail (their
 * messages are redelivered to whoever leads next), and once nothing of the term is in flight the
 * replica is a standby again, in the same process. On a clean stop the leader drains, then releases
 * the lease so a standby takes over without waiting for it to expire.
 */
export class Leadership implements ServedActor {
  readonly lifecycle = new Lifecycle();
  private timer: NodeJS.Timeout | undefined;
  private dueAt = 0;
  private ticking: Promise<void> = Promise.resolve();
  private electing: Promise<void> = Promise.resolve();
  private steppingDown: Promise<void> = Promise.resolve();
  /** No new acquisition or election (stopping); a leader still renews until its actor drained. */
  private stopping = false;
  /** No more lease round trips at all. */
  private halted = false;
  /** The consumer of the current term, once started. */
  private actor: ServedActor | undefined;
  /** NATS answered the last lease round trip (a standby's readiness). */
  private answering = false;
  private failuresLogged = 0;
  private readonly log: Logger;
  private wakeStop: () => void = () => undefined;
  private readonly stopRequested = new Promise<void>((r) => (this.wakeStop = r));

  constructor(private readonly opts: LeadershipOptions) {
    this.log = opts.log.child({ lease: opts.lease.bucket, holder: opts.lease.holder });
    opts.lease.onLost((err) => this.lost(err));
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  /** Renewals (leader) and acquisition attempts (standby) are this far apart: a third of the TTL. */
  get intervalMs(): number {
    return Math.max(100, Math.floor(this.opts.lease.ttlMs / 3));
  }

  /** A standby is ready while NATS answers its attempts; the leader when its actor is. */
  isReady(): boolean {
    if (this.lifecycle.state !== 'running') return false;
    const role = this.opts.lease.role;
    if (role === 'standby') return this.answering;
    return role === 'leader' && this.actor !== undefined && this.actor.isReady();
  }

  /** Starts as a standby: the first acquisition attempt runs at once. */
  async start(): Promise<void> {
    this.lifecycle.transition('running');
    this.log.info(
      { ttlMs: this.opts.lease.ttlMs },
      'archiver role: standby (waiting for the lease of this durable)',
    );
    this.schedule(0);
  }

  /** Stops trying; a leader drains its actor (still renewing meanwhile), then releases the lease. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeStop();
    if (!this.lifecycle.terminal) this.lifecycle.transition('draining');
    await this.electing;
    await this.steppingDown;
    if (this.actor) await this.actor.stop();
    this.halted = true;
    clearTimeout(this.timer);
    await this.ticking;
    if (this.opts.lease.role === 'leader') {
      await this.opts.lease.release();
      this.log.info('archiver role: released the lease after draining');
    }
    if (!this.lifecycle.terminal) this.lifecycle.transition('stopped');
  }

  private schedule(ms: number): void {
    this.dueAt = performance.now() + ms;
    this.timer = setTimeout(() => {
      this.opts.onTickDelay?.(Math.max(0, performance.now() - this.dueAt));
      this.ticking = this.tick().finally(() => {
        if (!this.halted && !this.lifecycle.terminal) this.schedule(this.intervalMs);
      });
    }, ms);
  }

  private async tick(): Promise<void> {
    const lease = this.opts.lease;
    if (lease.role === 'leader') {
      const r = await lease.renew();
      if (!r) return;
      this.opts.onRenewal?.(r);
      if (r.outcome === 'renewed' && r.late)
        this.log.warn(
          { ms: Math.round(r.ms) },
          'lease renewal sent past its validity, and the lease was still ours: kept (writes paused meanwhile)',
        );
      return;
    }
    if (lease.role !== 'standby' || this.stopping) return;
    let won: boolean;
    try {
      won = await lease.acquire();
      this.answering = true;
      this.failuresLogged = 0;
    } catch (err) {
      this.answering = false;
      // Once per streak of failures: NATS is away, the next attempt comes in a third of the TTL.
      if (this.failuresLogged++ === 0)
        this.log.warn({ err }, 'could not reach the lease bucket; trying again');
      return;
    }
    if (!won) return;
    if (this.stopping) return;
    this.log.info(
      { ttlMs: lease.ttlMs, term: lease.term },
      'archiver role: leader (recovering the journal)',
    );
    this.electing = this.elect(lease.term);
  }

  private async elect(term: number): Promise<void> {
    const lease = this.opts.lease;
    const current = () => !this.stopping && lease.role === 'leader' && lease.term === term;
    try {
      const waitMs = lease.waitMs;
      if (waitMs > 0) {
        this.log.warn(
          { waitMs },
          'the lease key had been deleted by hand: waiting a whole TTL before writing, so that any previous holder has stopped',
        );
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((r) => (timer = setTimeout(r, waitMs))),
          this.stopRequested,
        ]);
        clearTimeout(timer);
        if (!current()) return;
      }
      await this.opts.onElected();
      if (!current()) return;
      const actor = this.opts.actor();
      actor.lifecycle.onChange((to, _from, cause) => {
        // Stopped by a step-down or a stop; failing on its own fails the process.
        if (to === 'failed' && this.actor === actor) this.fail(cause);
      });
      this.actor = actor;
      await actor.start();
      this.log.info({ term }, 'archiver role: leader, consuming');
    } catch (err) {
      // Lost during the election: the step-down takes it from here.
      if (lease.term !== term || lease.role !== 'leader') return;
      // Its writes were refused (lapsed, or the journal claimed by another): steps down, tries again.
      if (err instanceof LeaseLostError || err instanceof LeaseLapsedError) {
        lease.lose(
          err instanceof LeaseLostError
            ? err
            : new LeaseLostError(`the election failed: ${err.message}`, { cause: err }),
          term,
        );
        return;
      }
      this.fail(err);
    }
  }

  private lost(err: LeaseLostError): void {
    this.log.error(
      { err, term: this.opts.lease.term },
      'archiver role: lost the lease; stepping down at once (no more writes), then standing by',
    );
    this.opts.onStepDown?.();
    this.steppingDown = this.stepDown(err).catch((e: unknown) => this.fail(e));
  }

  private async stepDown(err: LeaseLostError): Promise<void> {
    // Pulls nothing more; batches in the handler settle as retries (their writes are refused).
    const actor = this.actor;
    this.actor = undefined;
    const stopping = actor?.stop() ?? Promise.resolve();
    await this.electing;
    await this.opts.onDeposed?.(err);
    await stopping;
    if (this.lifecycle.terminal) return;
    // Nothing of the old term is in flight any more: a candidate again.
    this.opts.lease.standBy();
    this.log.info('archiver role: standby again (waiting for the lease of this durable)');
  }

  private fail(cause: unknown): void {
    if (!this.lifecycle.terminal) this.lifecycle.transition('failed', cause);
  }
}

import type { Logger } from '@sluice/observability';
import { Lifecycle, type LifecycleState, type ServedActor } from '@sluice/runtime';
import type { Lease, LeaseLostError } from './lease';

export interface LeadershipOptions {
  lease: Lease;
  /** The consumer: started only once this replica leads, stopped at once when it stops leading. */
  actor: ServedActor;
  /**
   * Runs when the lease is won, before the actor starts: claims and recovers the journal, builds
   * the archiver. A throw fails the process (its lease is released on the way out).
   */
  onElected: () => Promise<void>;
  log: Logger;
}

/**
 * N replicas of one durable, one of them consuming: every replica runs this in place of its actor.
 * A standby tries to acquire the lease every ttl/3 and is ready while NATS answers it; the replica
 * that gets the lease recovers the journal, starts the actor and renews every ttl/3. When the lease is
 * lost (a renewal failed or came too late, or another archiver wrote the journal) the actor stops
 * pulling at once, the store refuses further writes (see `fencedStore`), and this lifecycle fails:
 * the process exits 1, and its supervisor starts it again as a standby. On a clean stop the leader
 * drains, then releases the lease so a standby takes over without waiting for it to expire.
 */
export class Leadership implements ServedActor {
  readonly lifecycle = new Lifecycle();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> = Promise.resolve();
  private electing: Promise<void> = Promise.resolve();
  /** No new acquisition or election (stopping); a leader still renews until its actor drained. */
  private stopping = false;
  /** No more lease round trips at all. */
  private halted = false;
  private actorStarted = false;
  /** NATS answered the last lease round trip (a standby's readiness). */
  private answering = false;
  private failuresLogged = 0;
  private readonly log: Logger;
  private wakeStop: () => void = () => undefined;
  private readonly stopRequested = new Promise<void>((r) => (this.wakeStop = r));

  constructor(private readonly opts: LeadershipOptions) {
    this.log = opts.log.child({ lease: opts.lease.bucket, holder: opts.lease.holder });
    opts.lease.onLost((err) => this.lost(err));
    opts.actor.lifecycle.onChange((to, _from, cause) => {
      if (to === 'failed') this.fail(cause);
    });
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
    return role === 'leader' && this.actorStarted && this.opts.actor.isReady();
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
    if (this.actorStarted) await this.opts.actor.stop();
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
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => {
        if (!this.halted && !this.lifecycle.terminal) this.schedule(this.intervalMs);
      });
    }, ms);
  }

  private async tick(): Promise<void> {
    const lease = this.opts.lease;
    if (lease.role === 'leader') {
      await lease.renew();
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
    this.log.info({ ttlMs: lease.ttlMs }, 'archiver role: leader (recovering the journal)');
    this.electing = this.elect();
  }

  private async elect(): Promise<void> {
    try {
      const waitMs = this.opts.lease.waitMs;
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
        if (this.stopping || this.opts.lease.role !== 'leader') return;
      }
      await this.opts.onElected();
      if (this.stopping || this.opts.lease.role !== 'leader') return;
      this.actorStarted = true;
      await this.opts.actor.start();
      this.log.info('archiver role: leader, consuming');
    } catch (err) {
      this.fail(err);
    }
  }

  private lost(err: LeaseLostError): void {
    this.log.error({ err }, 'archiver role: lost the lease; stopping at once (no more writes)');
    // Pulls nothing more; batches in the handler settle as retries (their writes are refused).
    if (this.actorStarted) void this.opts.actor.stop().catch(() => undefined);
    this.fail(err);
  }

  private fail(cause: unknown): void {
    if (!this.lifecycle.terminal) this.lifecycle.transition('failed', cause);
  }
}

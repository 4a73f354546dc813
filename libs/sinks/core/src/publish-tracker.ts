import type { RecentIds } from './recent-ids';

/**
 * The publishes of a message-broker sink on one client, by record id: a retried or redelivered
 * record is never published again while its first publish still waits for the broker's ack (it
 * waits for that one instead), nor once it was acked (while `recent` remembers it), and at most
 * `maxInFlight` publishes wait for acks at once (the broker's receive window; a bounded buffer).
 * A new client (after `close()`) gets a new tracker and shares `recent`.
 */
export class PublishTracker {
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly waiting: Array<() => void> = [];
  private active = 0;
  private maxInFlight = 1;

  constructor(
    maxInFlight: number,
    private readonly recent: RecentIds,
  ) {
    this.setLimit(maxInFlight);
  }

  /** Changes the bound (e.g. to the broker's receive maximum once connected). */
  setLimit(maxInFlight: number): void {
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1)
      throw new RangeError(`maxInFlight must be a whole number >= 1, got ${maxInFlight}`);
    this.maxInFlight = maxInFlight;
    this.wake();
  }

  /**
   * The ack of record `id`: `undefined` when it was acked recently, the pending ack when it is in
   * flight, else a new one: `publish` runs once a slot is free and its promise settles the ack.
   */
  ack(id: string, publish: () => Promise<void>): Promise<void> | undefined {
    if (this.recent.has(id)) return undefined;
    const pending = this.inflight.get(id);
    if (pending) return pending;
    const p = this.run(publish).then(
      () => {
        this.inflight.delete(id);
        this.recent.add(id);
      },
      (err: unknown) => {
        this.inflight.delete(id);
        throw err;
      },
    );
    // Its caller may have given up (connection lost); the broker's late answer must not crash us.
    p.catch(() => undefined);
    this.inflight.set(id, p);
    return p;
  }

  /** Records whose publish is running or waiting for a slot. */
  get inFlight(): number {
    return this.inflight.size;
  }

  private async run(publish: () => Promise<void>): Promise<void> {
    while (this.active >= this.maxInFlight) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      await publish();
    } finally {
      this.active--;
      this.wake();
    }
  }

  private wake(): void {
    // A woken publish checks again: a new one may have taken the slot first.
    for (let free = this.maxInFlight - this.active; free > 0 && this.waiting.length > 0; free--)
      this.waiting.shift()!();
  }
}

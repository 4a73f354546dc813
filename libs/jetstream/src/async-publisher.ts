import { JetStreamApiError } from '@nats-io/jetstream';
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { messageHeaders, type PublishOptions } from './publish';

export interface AsyncPublisherOptions {
  /** Time to wait for a message's JetStream ack before rejecting it. Default 5 s. */
  ackTimeoutMs?: number;
}

interface PendingAck {
  resolve: () => void;
  reject: (err: Error) => void;
  deadline: number;
}

/**
 * JetStream "async publish" for publishers of many small messages: a plain PUB with a reply subject
 * under ONE inbox subscription, settled when the PubAck arrives, with one sweep timer for every
 * timeout. `js.publish` is a request per message, and nats.js builds two Errors (async stack traces)
 * and a timer for each: about 15 % of a publishing service's CPU. Same headers and checks as
 * {@link publishDurable} (msg id, content type, trace context, expected stream); a promise resolves
 * only once the stream stored the message or dropped it as a duplicate of the same msg id.
 */
export class AsyncPublisher {
  private readonly inbox: string;
  private readonly ackTimeoutMs: number;
  private sub: Subscription | undefined;
  private readonly pending = new Map<string, PendingAck>();
  private seq = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    opts: AsyncPublisherOptions = {},
  ) {
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 5_000;
    // The connection's own prefix (nats.js keeps it in `options`): a user may be allowed only that one.
    this.inbox = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  }

  /** Messages waiting for their ack. */
  get inFlight(): number {
    return this.pending.size;
  }

  publish(
    subject: string,
    payload: Uint8Array,
    opts: Omit<PublishOptions, 'timeoutMs'>,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      try {
        const h = messageHeaders(opts);
        if (opts.expectStream) h.set('Nats-Expected-Stream', opts.expectStream);
        this.sub ??= this.nc.subscribe(`${this.inbox}.*`, {
          callback: (err, m) => this.onAck(err, m),
        });
        const token = (++this.seq).toString(36);
        this.pending.set(token, { resolve, reject, deadline: Date.now() + this.ackTimeoutMs });
        if (!this.sweeper) {
          this.sweeper = setInterval(() => this.sweep(), Math.min(1_000, this.ackTimeoutMs));
          this.sweeper.unref();
        }
        try {
          this.nc.publish(subject, payload, { reply: `${this.inbox}.${token}`, headers: h });
        } catch (err) {
          this.pending.delete(token);
          throw err;
        }
      } catch (err) {
        reject(err as Error);
      }
    });
  }

  private onAck(err: Error | null, m: Msg): void {
    if (err) {
      // The inbox subscription itself failed (closed, permissions): nothing pending can settle.
      this.failAll(err);
      this.sub = undefined;
      return;
    }
    const token = m.subject.slice(this.inbox.length + 1);
    const p = this.pending.get(token);
    if (!p) return; // timed out already
    this.pending.delete(token);
    let ack: { stream?: unknown; error?: unknown };
    try {
      ack = JSON.parse(m.string()) as typeof ack;
    } catch {
      // e.g. a 503 "no responders" status message: no stream took the message.
      const status = m.headers?.code ? ` (status ${m.headers.code} ${m.headers.description})` : '';
      p.reject(new Error(`no stream acknowledged the publish${status}`));
      return;
    }
    if (ack.error)
      p.reject(
        new JetStreamApiError(ack.error as ConstructorParameters<typeof JetStreamApiError>[0]),
      );
    else if (typeof ack.stream !== 'string' || ack.stream === '')
      p.reject(new Error('invalid JetStream publish ack'));
    else p.resolve();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [token, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(token);
        p.reject(new Error(`no JetStream publish ack within ${this.ackTimeoutMs} ms`));
      }
    }
    if (this.pending.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Unsubscribes the ack inbox and rejects what is still pending. */
  close(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.failAll(new Error('publisher closed'));
    this.sub?.unsubscribe();
    this.sub = undefined;
  }
}

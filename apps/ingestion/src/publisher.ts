import type { JetStreamClient, JetStreamManager, PubAck } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { classifyNatsError, publishDurable } from '@sluice/jetstream';
import { CONTENT_TYPES, HEADERS } from '@sluice/contracts';
import type { Logger } from '@sluice/observability';
import { BudgetTimeoutError, ByteBudget } from './byte-budget';
import { RetryableError } from './errors';
import type { IngestMetrics } from './metrics';
import type { RegionRoute } from './routing';

/** One JetStream message of an accepted batch. */
export interface PublishPart {
  route: RegionRoute;
  /**
   * `Nats-Msg-Id`: `<credential scope>:<batch_id>`, or `<credential scope>:<batch_id>:<region>` for a
   * batch split across regions.
   */
  msgId: string;
  /** Encoded EventBatch. */
  payload: Uint8Array;
  /** Digest of the request content, stored as the `Sluice-Content-Digest` header. Default none. */
  digest?: string | undefined;
}

/** Options of {@link BatchPublisher}. */
export interface PublisherOptions {
  /** Bytes awaiting JetStream acks across all requests. */
  maxInFlightBytes: number;
  /** How long a batch may wait for in-flight capacity. */
  backpressureWaitMs: number;
  /** JetStream ack timeout per message. */
  publishTimeoutMs: number;
  /** Back-off advised to the device on a retryable failure. */
  retryAfterMs: number;
}

/**
 * Publishes accepted batches and resolves only when JetStream acked every part; any failure is a
 * {@link RetryableError} (the device resends the same batch id; the duplicate window drops what was
 * already stored). Many batches are in flight at once (pipelined), bounded by bytes.
 */
export class BatchPublisher {
  private readonly budget: ByteBudget;
  private connected: boolean;
  private latencySum = 0;
  private latencyCount = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly opts: PublisherOptions,
    private readonly metrics: IngestMetrics,
    private readonly log: Logger,
  ) {
    this.budget = new ByteBudget(opts.maxInFlightBytes);
    this.connected = !nc.isClosed();
    (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'close') this.connected = false;
        else if (s.type === 'reconnect') this.connected = true;
      }
    })().catch(() => undefined);
  }

  /** NATS is connected (publishing is attempted only then). */
  get isConnected(): boolean {
    return this.connected && !this.nc.isClosed();
  }

  get inFlightBytes(): number {
    return this.budget.inUse;
  }

  /** The in-flight budget is full: a batch published now would wait for capacity. */
  get saturated(): boolean {
    return this.budget.waiting > 0 || this.budget.inUse >= this.budget.capacity;
  }

  /**
   * The overload signals since the last call (read by the sampling controller): the peak share of
   * the in-flight budget in use or waited for, and the mean JetStream publish latency of the batches
   * settled meanwhile (0 when none).
   */
  takeLoadSample(): { peakFill: number; publishLatencyMs: number } {
    const publishLatencyMs = this.latencyCount > 0 ? this.latencySum / this.latencyCount : 0;
    this.latencySum = 0;
    this.latencyCount = 0;
    return { peakFill: this.budget.takePeak(), publishLatencyMs };
  }

  /** Throws {@link RetryableError} at once while NATS is disconnected (nothing is queued in the client). */
  assertConnected(): void {
    if (!this.isConnected) {
      this.metrics.publishFailures.inc({ cause: 'disconnected' });
      throw new RetryableError(
        'unavailable',
        'the message store (NATS) is unreachable; nothing was stored, resend this batch',
        this.opts.retryAfterMs,
      );
    }
  }

  /**
   * Resolves with JetStream's ack of every part, in order; a `duplicate` ack carries the sequence of
   * the message stored before under the same id.
   */
  async publish(parts: readonly PublishPart[]): Promise<PubAck[]> {
    this.assertConnected();
    let bytes = 0;
    for (const p of parts) bytes += p.payload.byteLength;
    try {
      await this.budget.acquire(bytes, this.opts.backpressureWaitMs);
    } catch (err) {
      if (!(err instanceof BudgetTimeoutError)) throw err;
      this.metrics.publishFailures.inc({ cause: 'backpressure' });
      throw new RetryableError(
        'overloaded',
        'the gateway is at its in-flight limit (the message store is slow); nothing was stored, resend this batch',
        this.opts.retryAfterMs,
      );
    }
    this.metrics.inFlightBytes.set(this.budget.inUse);
    const started = performance.now();
    try {
      // allSettled: the bytes stay reserved until every part is settled, not just the first failure.
      const results = await Promise.allSettled(
        parts.map((p) =>
          publishDurable(this.js, p.route.subject, p.payload, {
            msgId: p.msgId,
            contentType: CONTENT_TYPES.EVENT_BATCH,
            expectStream: p.route.stream,
            timeoutMs: this.opts.publishTimeoutMs,
            ...(p.digest ? { headers: { [HEADERS.CONTENT_DIGEST]: p.digest } } : {}),
          }),
        ),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw this.classify(failed.reason);
      return results.map((r) => (r as PromiseFulfilledResult<PubAck>).value);
    } finally {
      this.latencySum += performance.now() - started;
      this.latencyCount++;
      this.budget.release(bytes);
      this.metrics.inFlightBytes.set(this.budget.inUse);
    }
  }

  /**
   * The content digest stored with message `seq` of `stream`: `undefined` when the message is gone or
   * carries none (stored by an older gateway). Throws {@link RetryableError}.
   */
  async storedDigest(stream: string, seq: number): Promise<string | undefined> {
    try {
      const msg = await this.jsm.streams.getMessage(stream, { seq });
      return msg?.header.get(HEADERS.CONTENT_DIGEST) || undefined;
    } catch (err) {
      throw this.classify(err);
    }
  }

  private classify(err: unknown): RetryableError {
    const e = err as Error | undefined;
    const cause = classifyNatsError(err);
    let message = `the message store refused the batch (${e?.message ?? String(err)}); nothing was acknowledged, resend this batch`;
    if (cause === 'timeout') {
      message = `the message store did not confirm within ${this.opts.publishTimeoutMs} ms; resend this batch (a stored copy is dropped as a duplicate)`;
    } else if (cause === 'no_responders') {
      message = 'the message store has no stream for this region right now; resend this batch';
    }
    this.metrics.publishFailures.inc({ cause });
    if (cause !== 'timeout' && cause !== 'no_responders' && cause !== 'disconnected')
      this.log.warn({ err, cause }, 'publish failed');
    return new RetryableError('unavailable', message, this.opts.retryAfterMs, { cause: err });
  }
}

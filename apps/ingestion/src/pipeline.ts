import { trace } from '@opentelemetry/api';
import { encodeBatch, IngestStatus, type Event, type EventBatch, type EventRejection, type IngestAck } from '@sluice/contracts';
import { ATTR } from '@sluice/observability';
import type { Principal } from './auth';
import { BatchRejectedError, RetryableError } from './errors';
import type { IngestMetrics } from './metrics';
import type { BatchPublisher, PublishPart } from './publisher';
import type { DeviceRateLimiter } from './rate-limiter';
import type { RegionRoute } from './routing';
import type { EventValidator } from './validator';

/** Options of {@link IngestPipeline}. */
export interface PipelineOptions {
  validator: EventValidator;
  routes: ReadonlyMap<string, RegionRoute>;
  limiter: DeviceRateLimiter;
  publisher: BatchPublisher;
  metrics: IngestMetrics;
  /** Most events in one batch (rejected ones included). */
  maxBatchEvents: number;
  /** Largest published message. */
  maxBatchBytes: number;
}

/** Extra inputs of the HTTP path, whose events were parsed from JSON before validation. */
export interface PipelineInput {
  /** The candidate events; `batch.batchId` is the idempotency key. */
  batch: EventBatch;
  /** The EventBatch exactly as received (gRPC): published as is when every event is accepted. */
  raw?: Uint8Array | undefined;
  /** Position of `batch.events[i]` in the request; default `i`. */
  indices?: number[] | undefined;
  /** Events already refused by the wire parser. */
  rejected?: EventRejection[] | undefined;
  /** Events in the request (candidates + pre-rejected). Default `batch.events.length`. */
  totalEvents?: number | undefined;
}

const BATCH_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const tracer = trace.getTracer('sluice-ingestion');

/** A bounded label for a rejection's field: indices and attribute keys removed. */
function fieldLabel(field: string): string {
  const i = field.indexOf('[');
  return i < 0 ? field : field.slice(0, i);
}

/**
 * Validate → rate-limit → route → publish → ack: the path every batch takes, from either transport.
 * An ack is returned only after JetStream stored every accepted event; otherwise it throws
 * {@link RetryableError} (nothing acknowledged) or {@link BatchRejectedError} (the batch is unusable).
 */
export class IngestPipeline {
  constructor(private readonly opts: PipelineOptions) {}

  async ingest(principal: Principal, input: PipelineInput): Promise<IngestAck> {
    const { batch } = input;
    const events = batch.events;
    const batchId = batch.batchId;
    if (!BATCH_ID.test(batchId)) {
      throw new BatchRejectedError('batch.batch_id', batchId === '' ? 'batch_id is required (unique per batch, reused on retry): 1..128 of A-Z a-z 0-9 . _ : -' : 'batch_id must be 1..128 of A-Z a-z 0-9 . _ : -');
    }
    const total = input.totalEvents ?? events.length;
    if (total === 0) throw new BatchRejectedError('batch.events', 'the batch has no events');
    if (total > this.opts.maxBatchEvents) {
      throw new BatchRejectedError('batch.events', `the batch has ${total} events; at most ${this.opts.maxBatchEvents} are allowed per batch`, 413);
    }
    const rejections: EventRejection[] = input.rejected ? [...input.rejected] : [];
    const ctx = { now: Date.now(), devices: principal.devices };
    const { validator } = this.opts;
    // accepted[i] is the region of events[i], or undefined when rejected.
    const accepted: Array<string | undefined> = new Array(events.length);
    const perDevice = new Map<string, number>();
    let firstRegion: string | undefined;
    let multiRegion = false;
    let count = 0;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      const r = validator.check(e, input.indices ? input.indices[i]! : i, ctx);
      if (r) {
        rejections.push(r);
        continue;
      }
      const v = e.kind!.value;
      accepted[i] = v.region;
      if (firstRegion === undefined) firstRegion = v.region;
      else if (v.region !== firstRegion) multiRegion = true;
      perDevice.set(v.deviceId, (perDevice.get(v.deviceId) ?? 0) + 1);
      count++;
    }
    for (const r of rejections) this.opts.metrics.eventsRejected.inc({ field: fieldLabel(r.field) });
    if (input.rejected && input.indices) rejections.sort((a, b) => a.index - b.index);
    if (count === 0) return { batchId, accepted: 0, rejections, retryAfterMs: 0, status: IngestStatus.REJECTED };

    const waitMs = this.opts.limiter.take(perDevice);
    if (waitMs > 0) {
      this.opts.metrics.rateLimited.inc();
      throw new RetryableError('overloaded', `device rate limit exceeded; nothing was stored, resend this batch after ${waitMs} ms`, waitMs);
    }

    const parts: PublishPart[] = [];
    if (!multiRegion) {
      const payload = rejections.length === 0 && input.raw ? input.raw : encodeBatch(this.subset(batch, accepted, undefined));
      parts.push({ route: this.opts.routes.get(firstRegion!)!, msgId: batchId, payload });
    } else {
      for (const region of new Set(accepted.filter((r): r is string => r !== undefined))) {
        parts.push({ route: this.opts.routes.get(region)!, msgId: `${batchId}:${region}`, payload: encodeBatch(this.subset(batch, accepted, region)) });
      }
    }
    for (const p of parts) {
      if (p.payload.byteLength > this.opts.maxBatchBytes) {
        throw new BatchRejectedError('batch', `the encoded batch is ${p.payload.byteLength} bytes; at most ${this.opts.maxBatchBytes} are allowed (send smaller batches)`, 413);
      }
    }
    await tracer.startActiveSpan('ingest batch', async (span) => {
      span.setAttribute(ATTR.eventCount, count);
      span.setAttribute(ATTR.messagingMessageId, batchId);
      try {
        await this.opts.publisher.publish(parts);
      } catch (err) {
        span.recordException(err as Error);
        throw err;
      } finally {
        span.end();
      }
    });
    if (multiRegion) {
      for (const r of accepted) if (r !== undefined) this.opts.metrics.eventsPublished.inc({ region: r });
    } else {
      this.opts.metrics.eventsPublished.inc({ region: firstRegion! }, count);
    }
    return { batchId, accepted: count, rejections, retryAfterMs: 0, status: rejections.length === 0 ? IngestStatus.OK : IngestStatus.PARTIAL };
  }

  private subset(batch: EventBatch, accepted: Array<string | undefined>, region: string | undefined): EventBatch {
    const events: Event[] = [];
    for (let i = 0; i < batch.events.length; i++) {
      const r = accepted[i];
      if (r !== undefined && (region === undefined || r === region)) events.push(batch.events[i]!);
    }
    return { batchId: batch.batchId, events };
  }
}

/** The answer for a batch that stored nothing and should be resent. */
export function retryAck(batchId: string, err: RetryableError): IngestAck {
  return {
    batchId,
    accepted: 0,
    rejections: [{ index: 0, eventId: '', field: 'batch', reason: `retry: ${err.message}` }],
    retryAfterMs: Math.max(1, Math.round(err.retryAfterMs)),
    status: IngestStatus.RETRY,
  };
}

/** The answer for a batch that is unusable as a whole. */
export function rejectedAck(batchId: string, err: BatchRejectedError): IngestAck {
  return { batchId, accepted: 0, rejections: [{ index: 0, eventId: '', field: err.field, reason: err.message }], retryAfterMs: 0, status: IngestStatus.REJECTED };
}

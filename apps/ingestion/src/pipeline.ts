import { createHash } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import {
  encodeBatch,
  IngestStatus,
  type Event,
  type EventBatch,
  type EventRejection,
  type IngestAck,
} from '@sluice/contracts';
import { ATTR } from '@sluice/observability';
import type { Principal } from './auth';
import { BatchIdConflictError, BatchRejectedError, RetryableError } from './errors';
import type { IngestMetrics } from './metrics';
import type { BatchPublisher, PublishPart } from './publisher';
import type { RateLimiter } from './rate-limiter';
import type { RegionRoute } from './routing';
import type { SamplingController } from './sampling';
import type { EventValidator } from './validator';

/** Options of {@link IngestPipeline}. */
export interface PipelineOptions {
  validator: EventValidator;
  routes: ReadonlyMap<string, RegionRoute>;
  /** Per-device buckets, shared by the replicas in Redis or per process. */
  limiter: RateLimiter;
  publisher: BatchPublisher;
  metrics: IngestMetrics;
  /** Most events in one batch (rejected ones included). */
  maxBatchEvents: number;
  /** Largest published message. */
  maxBatchBytes: number;
  /** Adaptive sampling (INGEST_SENSOR_TIERS set): its advice goes on every ack. Default none. */
  sampling?: SamplingController | undefined;
  /** Shed bulk readings of a batch that finds the budget full while overloaded. Default false. */
  shedBulk?: boolean | undefined;
}

/** The `field` of a rejection that says the gateway shed the reading (adaptive sampling). */
export const SHED_FIELD = 'sampling';

/** Extra inputs of the HTTP path, whose events were parsed from JSON before validation. */
export interface PipelineInput {
  /** The candidate events; `batch.batchId` is the idempotency key. */
  batch: EventBatch;
  /** The EventBatch exactly as received (gRPC): published as is when every event is accepted. */
  raw?: Uint8Array | undefined;
  /**
   * The request's content, whose digest is stored with a client-chosen batch id (gRPC `batch_id`,
   * HTTP `Idempotency-Key`): reusing the id for other content is a conflict. Default `raw` (or the
   * encoded batch). `false`: the id is derived from the content, no digest is needed.
   */
  content?: Uint8Array | false | undefined;
  /** Transport, for metrics. Default `grpc`. */
  transport?: 'grpc' | 'http';
  /** Position of `batch.events[i]` in the request; default `i`. */
  indices?: number[] | undefined;
  /** Events already refused by the wire parser. */
  rejected?: EventRejection[] | undefined;
  /** Events in the request (candidates + pre-rejected). Default `batch.events.length`. */
  totalEvents?: number | undefined;
  /**
   * Renames the canonical field of a validator rejection (`telemetry.event_time`) to the field the
   * client sent (`event_time`, `time`): the HTTP path maps to JSON wire paths. Default: unchanged
   * (gRPC clients sent the canonical protobuf fields).
   */
  fieldPath?: ((event: Event, index: number, canonicalField: string) => string) | undefined;
}

/** Most rejections in the ack of a batch of which nothing was accepted; the rest are summarised. */
export const MAX_REJECTED_ACK_ENTRIES = 16;
/** Longest `reason` (and `field`) echoed in any ack, UTF-8 bytes; longer ones are cut with an ellipsis. */
export const MAX_ACK_TEXT = 300;

const BATCH_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A bounded label for a rejection's field: indices and attribute keys removed. */
function fieldLabel(field: string): string {
  const i = field.indexOf('[');
  const cut = i < 0 ? field : field.slice(0, i);
  const a = cut.indexOf('attributes.');
  return a < 0 ? cut : cut.slice(0, a + 'attributes'.length);
}

/** `text` cut to at most {@link MAX_ACK_TEXT} UTF-8 bytes, ending in an ellipsis when cut. */
function clip(text: string): string {
  if (text.length * 3 <= MAX_ACK_TEXT || Buffer.byteLength(text) <= MAX_ACK_TEXT) return text;
  // Bounded: each round drops at least one character of at most MAX_ACK_TEXT.
  let cut = text.slice(0, MAX_ACK_TEXT - 3);
  while (Buffer.byteLength(cut) > MAX_ACK_TEXT - 3)
    cut = cut.slice(0, Math.min(cut.length - 1, Math.floor(cut.length * 0.9)));
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1); // no lone high surrogate
  return `${cut}…`;
}

/**
 * The rejections of a batch of which nothing was accepted, in a bounded ack: at most
 * {@link MAX_REJECTED_ACK_ENTRIES} entries, the first rejection of each field (in batch order) with
 * the number of other events rejected at the same field; the last entry counts what did not fit.
 * Every entry's text is clipped to {@link MAX_ACK_TEXT}, so the ack stays under 16 KiB.
 */
export function summariseRejections(rejections: readonly EventRejection[]): EventRejection[] {
  if (rejections.length <= MAX_REJECTED_ACK_ENTRIES)
    return rejections.map((r) => ({ ...r, field: clip(r.field), reason: clip(r.reason) }));
  const byField = new Map<string, { first: EventRejection; more: number }>();
  let overflow = 0;
  let overflowFields = 0;
  let overflowFirst: EventRejection | undefined;
  const seenOverflow = new Set<string>();
  for (const r of rejections) {
    const entry = byField.get(r.field);
    if (entry) entry.more++;
    else if (byField.size < MAX_REJECTED_ACK_ENTRIES - 1)
      byField.set(r.field, { first: r, more: 0 });
    else {
      overflow++;
      overflowFirst ??= r;
      // Bounded: counts distinct fields only among at most maxBatchEvents rejections.
      if (!seenOverflow.has(r.field)) {
        seenOverflow.add(r.field);
        overflowFields++;
      }
    }
  }
  const out: EventRejection[] = [];
  for (const { first, more } of byField.values()) {
    const suffix =
      more > 0 ? ` (and ${more} more event${more === 1 ? '' : 's'} rejected at this field)` : '';
    out.push({
      index: first.index,
      eventId: first.eventId,
      field: clip(first.field),
      reason: clip(first.reason) + suffix,
    });
  }
  if (overflowFirst) {
    out.push({
      index: overflowFirst.index,
      eventId: overflowFirst.eventId,
      field: 'batch',
      reason: `and ${overflow} more event${overflow === 1 ? '' : 's'} rejected at ${overflowFields} other field${overflowFields === 1 ? '' : 's'}, the first: ${clip(overflowFirst.field)}: ${clip(overflowFirst.reason)}`,
    });
  }
  return out;
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
      throw new BatchRejectedError(
        'batch.batch_id',
        batchId === ''
          ? 'batch_id is required (unique per batch, reused on retry): 1..128 of A-Z a-z 0-9 . _ : -'
          : 'batch_id must be 1..128 of A-Z a-z 0-9 . _ : -',
      );
    }
    const total = input.totalEvents ?? events.length;
    if (total === 0) throw new BatchRejectedError('batch.events', 'the batch has no events');
    if (total > this.opts.maxBatchEvents) {
      throw new BatchRejectedError(
        'batch.events',
        `the batch has ${total} events; at most ${this.opts.maxBatchEvents} are allowed per batch`,
        413,
      );
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
    // Rejected events cost rate-limit tokens too: invalid input is work for the gateway. They are
    // charged to their device when the credential may publish for it, else to the credential.
    const credentialKey = `credential:${principal.scope}`;
    const { fieldPath } = input;
    const preRejected = input.rejected?.length ?? 0;
    if (preRejected > 0) perDevice.set(credentialKey, preRejected);
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      const index = input.indices ? input.indices[i]! : i;
      const r = validator.check(e, index, ctx);
      if (r) {
        if (fieldPath) r.field = fieldPath(e, index, r.field);
        rejections.push(r);
        const device = e.kind?.value.deviceId;
        const key =
          typeof device === 'string' &&
          device !== '' &&
          device.length <= validator.limits.maxDeviceIdLength &&
          (ctx.devices === '*' || ctx.devices.has(device))
            ? device
            : credentialKey;
        perDevice.set(key, (perDevice.get(key) ?? 0) + 1);
        continue;
      }
      const v = e.kind!.value;
      accepted[i] = v.region;
      if (firstRegion === undefined) firstRegion = v.region;
      else if (v.region !== firstRegion) multiRegion = true;
      perDevice.set(v.deviceId, (perDevice.get(v.deviceId) ?? 0) + 1);
      count++;
    }
    for (const r of rejections)
      this.opts.metrics.eventsRejected.inc({ field: fieldLabel(r.field) });
    if (input.rejected && input.indices) rejections.sort((a, b) => a.index - b.index);

    const waitMs = await this.opts.limiter.take(perDevice);
    if (waitMs > 0) {
      this.opts.metrics.rateLimited.inc();
      throw new RetryableError(
        'overloaded',
        `device rate limit exceeded; nothing was stored, resend this batch after ${waitMs} ms`,
        waitMs,
      );
    }
    const shed: EventRejection[] = [];
    const { sampling } = this.opts;
    if (sampling && count > 0) {
      const tiers = new Array<ReturnType<typeof sampling.classifier.tierOfEvent>>(events.length);
      for (let i = 0; i < events.length; i++)
        if (accepted[i] !== undefined) tiers[i] = sampling.classifier.tierOfEvent(events[i]!);
      sampling.observe(tiers);
      // Shed the bulk readings rather than make them wait for a full budget; never a safety one.
      if (this.opts.shedBulk && sampling.overloaded && this.opts.publisher.saturated) {
        for (let i = 0; i < events.length; i++) {
          if (tiers[i] !== 'bulk') continue;
          accepted[i] = undefined;
          count--;
          shed.push({
            index: input.indices ? input.indices[i]! : i,
            eventId: '',
            field: SHED_FIELD,
            reason: 'shed',
          });
        }
        if (shed.length > 0) {
          this.opts.metrics.eventsShed.inc({ tier: 'bulk' }, shed.length);
          firstRegion = accepted.find((r) => r !== undefined);
          multiRegion = accepted.some((r) => r !== undefined && r !== firstRegion);
        }
      }
    }
    const advice = sampling?.advice;
    if (count === 0)
      return {
        batchId,
        accepted: 0,
        // Shed readings are listed one by one (a few bytes each): the device counts each as shed.
        rejections: [...summariseRejections(rejections), ...shed],
        retryAfterMs: 0,
        status: IngestStatus.REJECTED,
        duplicate: false,
        sampling: advice,
      };

    // Message ids are scoped by the credential: another credential's batch id cannot collide. The
    // first part carries `<scope>:<batch_id>` whatever the regions, so a reuse of the id is seen on it.
    const msgId = `${principal.scope}:${batchId}`;
    const digest =
      input.content === false
        ? undefined
        : contentDigest(input.content ?? input.raw ?? encodeBatch(batch));
    const parts: PublishPart[] = [];
    if (!multiRegion) {
      const payload =
        rejections.length === 0 && shed.length === 0 && input.raw
          ? input.raw
          : encodeBatch(this.subset(batch, accepted, undefined));
      parts.push({ route: this.opts.routes.get(firstRegion!)!, msgId, payload, digest });
    } else {
      for (const region of new Set(accepted.filter((r): r is string => r !== undefined))) {
        const id = parts.length === 0 ? msgId : `${msgId}:${region}`;
        parts.push({
          route: this.opts.routes.get(region)!,
          msgId: id,
          payload: encodeBatch(this.subset(batch, accepted, region)),
          digest,
        });
      }
    }
    for (const p of parts) {
      if (p.payload.byteLength > this.opts.maxBatchBytes) {
        throw new BatchRejectedError(
          'batch',
          `the encoded batch is ${p.payload.byteLength} bytes; at most ${this.opts.maxBatchBytes} are allowed (send smaller batches)`,
          413,
        );
      }
    }
    const transport = input.transport ?? 'grpc';
    // The transport's SERVER span (one per request or batch) is active: it is the parent that
    // `publishDurable` writes into `traceparent`; no span of its own here, the hot path stays one span.
    const span = trace.getActiveSpan();
    span?.setAttribute(ATTR.eventCount, count);
    span?.setAttribute(ATTR.messagingMessageId, msgId);
    let duplicate: boolean;
    try {
      // The first part alone first: when it is a duplicate of other content, nothing else is sent.
      const [first] = await this.opts.publisher.publish(parts.slice(0, 1));
      if (first!.duplicate && digest !== undefined) {
        const stored = await this.opts.publisher.storedDigest(first!.stream, first!.seq);
        if (stored !== undefined && stored !== digest) {
          this.opts.metrics.idempotencyConflicts.inc({ transport });
          const what = transport === 'http' ? 'Idempotency-Key' : 'batch_id';
          throw new BatchIdConflictError(
            transport === 'http' ? 'Idempotency-Key' : 'batch.batch_id',
            `this ${what} was already used by this credential for different content within the duplicate window; nothing was stored. Use a new ${what} for new content, the same one only to resend the same content`,
          );
        }
      }
      const rest = parts.length > 1 ? await this.opts.publisher.publish(parts.slice(1)) : [];
      duplicate = first!.duplicate && rest.every((a) => a.duplicate);
    } catch (err) {
      span?.recordException(err as Error);
      throw err;
    }
    if (duplicate) {
      this.opts.metrics.duplicates.inc({ transport });
    } else if (multiRegion) {
      for (const r of accepted)
        if (r !== undefined) this.opts.metrics.eventsPublished.inc({ region: r });
    } else {
      this.opts.metrics.eventsPublished.inc({ region: firstRegion! }, count);
    }
    const shown =
      rejections.length === 0
        ? shed
        : [
            ...rejections.map((r) => ({ ...r, field: clip(r.field), reason: clip(r.reason) })),
            ...shed,
          ];
    return {
      batchId,
      accepted: count,
      rejections: shown,
      retryAfterMs: 0,
      status: shown.length === 0 ? IngestStatus.OK : IngestStatus.PARTIAL,
      duplicate,
      sampling: advice,
    };
  }

  private subset(
    batch: EventBatch,
    accepted: Array<string | undefined>,
    region: string | undefined,
  ): EventBatch {
    const events: Event[] = [];
    for (let i = 0; i < batch.events.length; i++) {
      const r = accepted[i];
      if (r !== undefined && (region === undefined || r === region)) events.push(batch.events[i]!);
    }
    return { batchId: batch.batchId, events };
  }
}

/** Hex sha256 of a request's content. */
export function contentDigest(content: Uint8Array): string {
  return createHash('sha256').update(content).digest('hex');
}

/** The answer for a batch that stored nothing and should be resent. */
export function retryAck(batchId: string, err: RetryableError): IngestAck {
  return {
    batchId,
    accepted: 0,
    rejections: [{ index: 0, eventId: '', field: 'batch', reason: `retry: ${err.message}` }],
    retryAfterMs: Math.max(1, Math.round(err.retryAfterMs)),
    status: IngestStatus.RETRY,
    duplicate: false,
  };
}

/** The answer for a batch that is unusable as a whole. The echoed batch id may be invalid: clipped. */
export function rejectedAck(batchId: string, err: BatchRejectedError): IngestAck {
  return {
    batchId: batchId.length > 128 ? batchId.slice(0, 128) : batchId,
    accepted: 0,
    rejections: [{ index: 0, eventId: '', field: err.field, reason: err.message }],
    retryAfterMs: 0,
    status: IngestStatus.REJECTED,
    duplicate: false,
  };
}

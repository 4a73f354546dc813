import { SpanStatusCode, type Span } from '@opentelemetry/api';
import { Outcomes, type BatchHandler, type Delivery, type Outcome } from '@sluice/actor';
import type { AsyncPublisher } from '@sluice/jetstream';
import { CONTENT_TYPES, type Topology } from '@sluice/contracts';
import { ATTR, tracer, type Logger } from '@sluice/observability';
import type { ClaimResult, ClaimStore } from './claims';
import { batchOfEvents, rebatchRaw } from './clean-payload';
import type { CrashPoint } from './config';
import { ClaimsLostError, RedisUnavailableError } from './errors';
import { ClaimBatch, claimOwner, cleanMessageId, type ClaimLayout } from './keys';
import type { DedupeMetrics } from './metrics';
import type { RawMessage } from './raw-message';

export interface DedupeHandlerOptions {
  /** Name of the raw stream this handler's actor consumes: part of owners and clean message ids. */
  stream: string;
  topology: Topology;
  /** Publishes clean batches (ack timeout: its own). */
  publisher: AsyncPublisher;
  claims: ClaimStore;
  /** Where claims live in Redis. */
  layout: ClaimLayout;
  /** `retry` (redeliver later) or `pass` (publish unclaimed) while Redis is unavailable. */
  onRedisDown: 'retry' | 'pass';
  metrics: DedupeMetrics;
  log: Logger;
  /** Test-only fault injection hook; a no-op in normal operation. */
  crashPoint?: (point: CrashPoint) => void;
  /** Called when Redis no longer holds the claims (starts the re-seed). */
  onClaimsLost?: (err: ClaimsLostError) => void;
  /**
   * Publish only if the claims were made at most this long ago, and ack only if the publish was
   * stored within twice this, else retry: a re-seed's fence (twice this) must outlast every publish
   * of claims made before a loss. Default unbounded.
   */
  publishWithinMs?: number;
}

const tr = tracer('@sluice/dedupe');

async function inSpan<T>(
  name: string,
  attributes: Record<string, string | number>,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return tr.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * The dedupe step for one raw stream (DESIGN.md §3): claim every event id of the whole batch in one
 * Redis round trip, keep the events whose claim is new or already this message's, publish them as one
 * clean batch per raw message with `Nats-Msg-Id = raw:<stream>:<seq>`, and only then ack.
 *
 * Crash after claiming: the redelivered message finds its claims owned by itself and publishes them.
 * Crash after publishing: the republish carries the same msg id and the clean stream's duplicate
 * window drops it. Another raw message owning a claim means a duplicate: dropped and counted.
 */
export function createDedupeHandler(opts: DedupeHandlerOptions): BatchHandler<RawMessage> {
  const { stream, metrics, log } = opts;
  const crash = opts.crashPoint ?? (() => undefined);
  let lastPassWarning = 0;

  return async (batch: ReadonlyArray<Delivery<RawMessage>>): Promise<Outcome[]> => {
    const claims = new ClaimBatch(opts.layout);
    for (const d of batch) {
      const owner = claims.owner(claimOwner(stream, d.seq));
      const { ids, times } = d.value;
      for (let i = 0; i < ids.length; i++) claims.add(ids[i]!, times[i]!, owner);
    }

    let results: ClaimResult[] | undefined;
    // Before the round trip: the guard check that allowed these claims ran inside it.
    const claimedAt = Date.now();
    const end = metrics.redisDuration.startTimer();
    try {
      results = await inSpan(
        'dedupe claim',
        { [ATTR.eventCount]: claims.length, [ATTR.messagingBatchCount]: batch.length },
        () => opts.claims.claim(claims),
      );
      end({ outcome: 'ok' });
    } catch (err) {
      if (claims.length > 0) end({ outcome: 'error' });
      if (!(err instanceof RedisUnavailableError)) throw err;
      if (err instanceof ClaimsLostError) opts.onClaimsLost?.(err);
      // Logged once per outage by the actor's store gate, not per batch.
      if (opts.onRedisDown === 'retry') return batch.map(() => Outcomes.retry(err));
      metrics.passThrough.inc(claims.length);
      if (Date.now() - lastPassWarning > 10_000) {
        lastPassWarning = Date.now();
        log.warn(
          { err, events: claims.length },
          'redis unavailable; DEDUPE_ON_REDIS_DOWN=pass: publishing events WITHOUT deduplication',
        );
      }
    }

    crash('after-claim');
    // Counted once the batch is past the claim (a held batch runs the handler again).
    for (const d of batch) {
      metrics.messageEvents.observe(d.value.ids.length);
      if (d.value.repeatedInMessage > 0)
        metrics.duplicates.inc({ reason: 'in_message' }, d.value.repeatedInMessage);
    }

    const kept: number[][] = [];
    const counts: Record<ClaimResult, number> = { new: 0, ours: 0, theirs: 0 };
    let r = 0;
    for (const d of batch) {
      // Byte ranges of the kept events in the raw message.
      const ranges: number[] = [];
      const { spans } = d.value;
      for (let i = 0; i < spans.length; i += 2) {
        const result = results?.[r++] ?? 'new';
        counts[result]++;
        if (result !== 'theirs') ranges.push(spans[i]!, spans[i + 1]!);
      }
      kept.push(ranges);
    }
    if (counts.theirs) metrics.duplicates.inc({ reason: 'claimed' }, counts.theirs);
    if (results && counts.new) metrics.claims.inc({ result: 'new' }, counts.new);
    if (results && counts.ours) metrics.claims.inc({ result: 'ours' }, counts.ours);

    if (
      results &&
      opts.publishWithinMs !== undefined &&
      Date.now() - claimedAt > opts.publishWithinMs
    ) {
      log.warn(
        { messages: batch.length, ms: Date.now() - claimedAt },
        'claims older than the publish bound; the batch is retried',
      );
      return batch.map(() => Outcomes.retry(undefined, 0));
    }
    const outcomes = await inSpan(
      'dedupe publish',
      { [ATTR.messagingBatchCount]: batch.length },
      (span) =>
        Promise.all(
          batch.map(async (d, i): Promise<Outcome> => {
            const ranges = kept[i]!;
            if (ranges.length === 0) return Outcomes.ack();
            const msgId = cleanMessageId(stream, d.seq);
            // Every event kept (the common case): the raw bytes with only batch_id changed; otherwise
            // the kept events' raw bytes under the new batch_id. Events are never re-encoded.
            const allKept =
              d.value.repeatedInMessage === 0 && ranges.length === d.value.spans.length;
            try {
              const payload =
                (allKept ? rebatchRaw(d.value.bytes, msgId) : undefined) ??
                batchOfEvents(d.value.bytes, msgId, ranges);
              await opts.publisher.publish(opts.topology.clean(d.value.region), payload, {
                msgId,
                contentType: CONTENT_TYPES.EVENT_BATCH,
                context: d.context,
                expectStream: opts.topology.streams.clean.name,
              });
            } catch (err) {
              span.recordException(err as Error);
              log.warn(
                { err, seq: d.seq, stream },
                'clean publish failed; raw message will be redelivered',
              );
              return Outcomes.retry(err as Error);
            }
            // Stored later than a re-seed's fence may have waited: the seed may not have read it, so the
            // claims it holds may be gone. Retried, the message re-claims (now guarded) and republishes
            // under the same msg id, which the clean stream drops: never acked on a stale claim.
            if (
              opts.publishWithinMs !== undefined &&
              Date.now() - claimedAt > 2 * opts.publishWithinMs
            )
              return Outcomes.retry(undefined, 0);
            metrics.eventsPublished.inc(ranges.length / 2);
            metrics.cleanMessages.inc();
            return Outcomes.ack();
          }),
        ),
    );

    if (kept.some((k) => k.length > 0)) crash('after-publish');
    return outcomes;
  };
}

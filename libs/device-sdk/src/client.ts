import { randomBytes } from 'node:crypto';
import { status as GrpcStatus, type Client, type ServiceError } from '@grpc/grpc-js';
import {
  AdviceSampler,
  IngestStatus,
  type DetectionEvent,
  type Event,
  type EventRejection,
  type IngestAck,
  type TelemetryEvent,
} from '@sluice/contracts';
import type { Registry } from 'prom-client';
import { backoffDelay, retryAfterDelay } from './backoff';
import { PriorityBuffer, type SealedBatch } from './buffer';
import { parseOptions, type DeviceClientOptions, type ResolvedOptions } from './config';
import {
  AckMismatchError,
  AckTimeoutError,
  ClientClosedError,
  FlushTimeoutError,
  GatewayStreamError,
  type DeviceSdkError,
} from './errors';
import { privateRegistry, SdkMetrics, type CounterSource, type RetryCause } from './metrics';
import {
  CLASS_OF,
  DROP_REASONS,
  PRIORITIES,
  type ClassIndex,
  type DropReason,
  type Priority,
} from './priority';
import { estimateEventBytes } from './size';
import {
  bearerMetadata,
  createIngestChannel,
  encodeIngestRequest,
  openIngestStream,
  type IngestStream,
} from './transport';

/** A snapshot of a client's counters and buffer ({@link DeviceClient.stats}). */
export interface DeviceClientStats {
  /** What is held now: queued, awaiting a resend, or in flight. */
  buffered: { events: number; bytes: number; byPriority: Record<Priority, number> };
  /** Batches written and not yet answered. */
  inFlightBatches: number;
  /** Events accepted by emit(). */
  queued: Record<Priority, number>;
  /** Event transmissions (a resend counts again). */
  sent: Record<Priority, number>;
  /** Events the gateway acknowledged as stored. */
  acked: Record<Priority, number>;
  /** Events that left unacknowledged, by reason. */
  dropped: Record<Priority, Record<DropReason, number>>;
  /** Batches sent again, by cause. */
  retries: Record<RetryCause, number>;
  /** Batches acknowledged. */
  batchesAcked: number;
  /** Acks saying the batch had already been stored (a resend the gateway dropped). */
  duplicateAcks: number;
  /** Ingest streams opened. */
  connects: number;
  /**
   * The gateway's current sampling advice as this client applies it: keep one reading in `n` of
   * each series of the tier (1 = all). Safety is never sampled.
   */
  sampling: { diagnostic: number; bulk: number };
  /** An Ingest stream is open and has answered. */
  connected: boolean;
  /** The last stream failure, if any since the client started. */
  lastError?: { code: string; message: string; at: Date } | undefined;
}

/** What close() did. */
export interface CloseResult {
  /** Every event emitted before close() was acknowledged (or dropped for a reason of its own). */
  flushed: boolean;
  /** Events still held at the deadline, dropped with reason `closed`. */
  abandoned: number;
}

interface StreamState {
  readonly call: IngestStream;
  /** Batches written on this stream, in order; acks arrive in the same order. */
  readonly inflight: SealedBatch[];
  writable: boolean;
  answered: boolean;
  dead: boolean;
}

interface FlushWaiter {
  /** Events emitted up to this sequence must leave the buffer. */
  target: number;
  remaining: number;
  resolve(): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const CLASSES: readonly ClassIndex[] = [0, 1, 2];
/** The `field` of a rejection by which the gateway says it shed the reading (adaptive sampling). */
const SHED_FIELD = 'sampling';
const REASON_INDEX = Object.fromEntries(DROP_REASONS.map((r, i) => [r, i])) as Record<
  DropReason,
  number
>;

/**
 * The in-process client a detection pipeline or gateway embeds to send telemetry and detections to
 * Sluice's ingestion gateway over its gRPC `Ingest` stream.
 *
 * `emit()` only enqueues into a bounded priority buffer and returns at once; a background sender cuts
 * batches (by count, bytes and linger, safety first), writes them on one long-lived stream, and
 * releases a batch from the buffer only when the gateway acknowledged it (stored in JetStream):
 * at-least-once. A batch is resent with the same batch id and bytes, so the gateway's duplicate
 * window drops a resend of something it already stored, and every event keeps its event id.
 */
export class DeviceClient implements CounterSource {
  readonly options: ResolvedOptions;
  /** The registry holding this client's metrics (the one passed in, or its own). */
  readonly registry: Registry;
  readonly name: string;
  private readonly buffer: PriorityBuffer;
  private readonly channel: Client;
  private readonly metricSet: SdkMetrics;
  private readonly prefix: string;
  private readonly lingers: readonly [number, number, number];
  private stream: StreamState | undefined;
  private seq = 0;
  private eventIds = 0;
  private batchIds = 0;
  private closing = false;
  private closed = false;
  private closePromise: Promise<CloseResult> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private readonly ackTimer: NodeJS.Timeout;
  private pausedUntil = 0;
  /** Consecutive stream failures without an ack in between (the back-off exponent). */
  private failures = 0;
  private readonly flushes = new Set<FlushWaiter>();
  private lastError: DeviceClientStats['lastError'];
  /** The gateway's sampling advice, from its last ack (adaptive sampling). */
  private readonly sampler = new AdviceSampler();

  readonly queued = [0, 0, 0];
  readonly sent = [0, 0, 0];
  readonly acked = [0, 0, 0];
  readonly dropped = CLASSES.map(() => DROP_REASONS.map(() => 0));
  readonly retries: Record<RetryCause, number> = { retry_ack: 0, stream_failed: 0, ack_timeout: 0 };
  connects = 0;
  private batchesAcked = 0;
  private duplicateAcks = 0;

  /** Throws a ConfigError naming every bad option. Connects lazily, at the first batch. */
  constructor(options: DeviceClientOptions) {
    const o = parseOptions(options);
    this.options = o;
    this.name = o.name;
    this.prefix = o.idPrefix ?? `${o.name}-${randomBytes(4).toString('hex')}`;
    this.lingers = [o.safetyLingerMs, o.lingerMs, o.lingerMs];
    this.buffer = new PriorityBuffer(
      {
        maxEvents: o.maxBufferEvents,
        maxBytes: o.maxBufferBytes,
        maxBatchEvents: o.maxBatchEvents,
        maxBatchBytes: o.maxBatchBytes,
        lingerMs: this.lingers,
      },
      {
        drop: (event, cls, reason, seq) => this.onDropped(event, cls, reason, seq),
        batchId: () => `${this.prefix}.b${(this.batchIds++).toString(36)}`,
      },
    );
    this.channel = createIngestChannel(o.target, {
      tls: o.tls,
      ownConnection: true,
      channelOptions: {
        // grpc-js reconnects a lost connection with its own back-off (up to 120 s by default): keep it
        // within ours, so a gateway that came back is used as soon as our back-off allows.
        'grpc.initial_reconnect_backoff_ms': o.retryInitialMs,
        'grpc.max_reconnect_backoff_ms': o.retryMaxMs,
        ...o.channelOptions,
      },
    });
    this.registry = o.registry ?? privateRegistry();
    this.metricSet = SdkMetrics.for(this.registry);
    this.metricSet.attach(this);
    this.ackTimer = setInterval(
      () => this.checkAckTimeout(),
      Math.max(50, Math.min(1_000, o.ackTimeoutMs / 4)),
    );
    this.ackTimer.unref();
  }

  /**
   * Enqueues `event` with `priority` (default: the `defaultPriority` option) and returns at once,
   * never waiting for the network: `true` when the buffer took it, `false` when it was dropped (the
   * reason is counted, and passed to `onDrop`; a reading of a tier the gateway advised sampling that
   * is not among those kept is dropped as `sampled`, never a `safety` one). When the buffer is full, the oldest event of the
   * lowest priority held is evicted for it, unless everything held has a higher priority.
   *
   * The event object is held (not copied) until acknowledged: do not change it after emitting. An
   * empty `event_id` is filled in with an id unique to this client.
   */
  emit(event: Event, priority?: Priority): boolean {
    let cls: ClassIndex | undefined = CLASS_OF[priority ?? this.options.defaultPriority];
    const seq = ++this.seq;
    if (cls === undefined) {
      cls = CLASS_OF[this.options.defaultPriority];
      this.onDropped(event, cls, 'invalid', seq);
      return false;
    }
    if (this.closing) {
      this.onDropped(event, cls, 'closed', seq);
      return false;
    }
    const kind = event?.kind;
    if (kind === undefined) {
      this.onDropped(event, cls, 'invalid', seq);
      return false;
    }
    // The gateway's advice thins sampled tiers before anything is buffered; never a safety event.
    if (cls !== 0 && !this.sampler.keep(event)) {
      this.onDropped(event, cls, 'sampled', seq);
      return false;
    }
    if (kind.value.eventId === '')
      kind.value.eventId = `${this.prefix}.e${(this.eventIds++).toString(36)}`;
    const now = performance.now();
    if (!this.buffer.offer(event, cls, estimateEventBytes(event), seq, now)) return false;
    this.queued[cls]!++;
    const due =
      this.buffer.queuedIn(cls) >= this.options.maxBatchEvents ? now : now + this.lingers[cls];
    if (due < this.timerAt) this.schedule(due);
    return true;
  }

  /** {@link emit} of a telemetry reading. */
  emitTelemetry(value: TelemetryEvent, priority?: Priority): boolean {
    return this.emit({ kind: { $case: 'telemetry', value } }, priority);
  }

  /** {@link emit} of a frame's detections. */
  emitDetection(value: DetectionEvent, priority?: Priority): boolean {
    return this.emit({ kind: { $case: 'detection', value } }, priority);
  }

  /**
   * Resolves when every event emitted before the call has left the buffer (acknowledged, or dropped
   * for a reason of its own); partial batches are sent without waiting for their linger meanwhile.
   * Rejects with {@link FlushTimeoutError} after `timeoutMs` (default 10 s), or
   * {@link ClientClosedError} when the client closes first.
   */
  flush(timeoutMs = 10_000): Promise<void> {
    if (this.closed) return Promise.reject(new ClientClosedError());
    if (this.buffer.events === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w: FlushWaiter = {
        target: this.seq,
        // Every event held was emitted before now.
        remaining: this.buffer.events,
        resolve: () => {
          clearTimeout(w.timer);
          this.flushes.delete(w);
          resolve();
        },
        reject: (err) => {
          clearTimeout(w.timer);
          this.flushes.delete(w);
          reject(err);
        },
        timer: setTimeout(() => w.reject(new FlushTimeoutError(w.remaining, timeoutMs)), timeoutMs),
      };
      this.flushes.add(w);
      this.schedule(performance.now());
    });
  }

  /**
   * Stops accepting events (emit returns false, reason `closed`), flushes what is held for up to
   * `timeoutMs` (default 10 s), then drops what is left (reason `closed`) and closes the connection.
   * Idempotent.
   */
  close(timeoutMs = 10_000): Promise<CloseResult> {
    this.closePromise ??= this.shutdown(timeoutMs);
    return this.closePromise;
  }

  private async shutdown(timeoutMs: number): Promise<CloseResult> {
    this.closing = true;
    let flushed = true;
    try {
      await this.flush(timeoutMs);
    } catch {
      flushed = false;
    }
    this.closed = true;
    for (const w of [...this.flushes]) w.reject(new ClientClosedError());
    clearInterval(this.ackTimer);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const abandoned = this.buffer.dropAll('closed');
    const s = this.stream;
    this.stream = undefined;
    if (s && !s.dead) {
      s.dead = true;
      s.call.on('error', () => undefined);
      if (s.inflight.length > 0) s.call.cancel();
      else s.call.end();
    }
    this.channel.close();
    this.metricSet.detach(this);
    return { flushed: flushed && abandoned === 0, abandoned };
  }

  /** A snapshot of the counters and the buffer. */
  stats(): DeviceClientStats {
    const held = this.buffer.countByClass();
    const rec = (v: number[]) =>
      Object.fromEntries(PRIORITIES.map((p, i) => [p, v[i]!])) as Record<Priority, number>;
    return {
      buffered: { events: this.buffer.events, bytes: this.buffer.bytes, byPriority: rec(held) },
      inFlightBatches: this.buffer.inFlightBatches,
      queued: rec(this.queued),
      sent: rec(this.sent),
      acked: rec(this.acked),
      dropped: Object.fromEntries(
        PRIORITIES.map((p, c) => [
          p,
          Object.fromEntries(DROP_REASONS.map((r, i) => [r, this.dropped[c]![i]!])),
        ]),
      ) as Record<Priority, Record<DropReason, number>>,
      retries: { ...this.retries },
      batchesAcked: this.batchesAcked,
      duplicateAcks: this.duplicateAcks,
      connects: this.connects,
      sampling: {
        diagnostic: this.sampler.everyOf('diagnostic'),
        bulk: this.sampler.everyOf('bulk'),
      },
      connected: this.connected,
      lastError: this.lastError,
    };
  }

  // CounterSource (read by the metrics at scrape time).
  bufferByClass(): number[] {
    return this.buffer.countByClass();
  }
  get bufferBytes(): number {
    return this.buffer.bytes;
  }
  get connected(): boolean {
    return this.stream !== undefined && this.stream.answered;
  }

  private onDropped(event: Event, cls: ClassIndex, reason: DropReason, seq: number): void {
    this.dropped[cls]![REASON_INDEX[reason]]!++;
    this.left(seq);
    this.options.onDrop?.(event, PRIORITIES[cls], reason);
  }

  /** An event of sequence `seq` left the buffer: flush waiters count it. */
  private left(seq: number): void {
    if (this.flushes.size === 0) return;
    for (const w of [...this.flushes]) if (seq <= w.target && --w.remaining <= 0) w.resolve();
  }

  /** Runs the sender at `at` (performance.now() clock) unless it already runs earlier. */
  private schedule(at: number): void {
    if (this.closed) return;
    const when = Math.max(at, this.pausedUntil);
    if (this.timer !== undefined && this.timerAt <= when) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = when;
    this.timer = setTimeout(() => this.pump(), Math.max(0, when - performance.now()));
    this.timer.unref();
  }

  /** The sender: writes every batch that is due, within the in-flight bound and HTTP/2 flow control. */
  private pump(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (this.closed) return;
    const now = performance.now();
    if (now < this.pausedUntil) return this.schedule(this.pausedUntil);
    const force = this.flushes.size > 0 || this.closing;
    const max = this.options.maxInFlightBatches;
    // Bounded: each round sends, splits or drops one batch, and the buffer holds finitely many.
    while (this.buffer.inFlightBatches < max && (this.stream?.writable ?? true)) {
      const b = this.buffer.next(now, force);
      if (!b) break;
      if (!this.encode(b)) continue;
      const s = this.openStream();
      if (!s) return;
      this.buffer.markSent(b, now);
      s.inflight.push(b);
      this.sent[b.cls]! += b.events.length;
      if (!s.call.write(b.encoded!)) s.writable = false;
    }
    if (this.buffer.inFlightBatches < max && (this.stream?.writable ?? true)) {
      const at = this.buffer.nextDueAt(now, force);
      if (at !== Number.POSITIVE_INFINITY) this.schedule(at);
    }
  }

  /** Encodes a batch at its first send; false when it was split or dropped instead. */
  private encode(b: SealedBatch): boolean {
    if (b.encoded) return true;
    const bytes = encodeIngestRequest({ batchId: b.id, events: b.events });
    if (bytes.byteLength <= this.options.maxRequestBytes) {
      b.encoded = bytes;
      return true;
    }
    if (b.events.length > 1) this.buffer.split(b);
    else this.buffer.dropUnsendable(b, 'too_large');
    return false;
  }

  private openStream(): StreamState | undefined {
    if (this.stream) return this.stream;
    let token: string | undefined;
    try {
      const t = this.options.token;
      token = typeof t === 'function' ? t() : t;
    } catch (err) {
      this.fail(
        new GatewayStreamError(
          GrpcStatus.UNAUTHENTICATED,
          `token(): ${String(err)}`,
          undefined,
          err,
        ),
      );
      return undefined;
    }
    const call = openIngestStream(this.channel, bearerMetadata(token));
    const s: StreamState = { call, inflight: [], writable: true, answered: false, dead: false };
    call.on('data', (ack: IngestAck) => this.onAck(s, ack));
    call.on('error', (err: ServiceError) => this.onStreamEnd(s, err));
    call.on('end', () => this.onStreamEnd(s, undefined));
    call.on('drain', () => {
      if (s.dead) return;
      s.writable = true;
      this.schedule(performance.now());
    });
    this.stream = s;
    this.connects++;
    return s;
  }

  private onAck(s: StreamState, ack: IngestAck): void {
    if (s.dead) return;
    const b = s.inflight.shift();
    if (!b || b.id !== ack.batchId) {
      if (b) s.inflight.unshift(b);
      return this.abandon(s, new AckMismatchError(b?.id, ack.batchId), 'stream_failed');
    }
    s.answered = true;
    this.failures = 0;
    this.sampler.update(ack.sampling);
    const now = performance.now();
    this.metricSet.batchAckDuration.observe({ client: this.name }, (now - b.sentAt) / 1000);
    if (
      ack.status !== IngestStatus.OK &&
      ack.status !== IngestStatus.PARTIAL &&
      ack.status !== IngestStatus.REJECTED
    ) {
      // RETRY (or a status this client does not know): nothing was stored; back off as told.
      this.retries.retry_ack++;
      const delay = retryAfterDelay(
        ack.retryAfterMs > 0 ? ack.retryAfterMs : this.options.retryInitialMs,
      );
      this.pausedUntil = Math.max(this.pausedUntil, now + delay);
      this.buffer.requeue(b, now + delay);
      const reason = ack.rejections[0]?.reason ?? 'retry';
      this.lastError = { code: 'retry', message: reason, at: new Date() };
      return this.schedule(this.pausedUntil);
    }
    this.buffer.release(b);
    this.batchesAcked++;
    if (ack.duplicate) this.duplicateAcks++;
    let rejected: Map<number, EventRejection> | undefined;
    if (ack.status !== IngestStatus.OK) {
      rejected = new Map(ack.rejections.map((r) => [r.index, r]));
    }
    for (let i = 0; i < b.events.length; i++) {
      const r = rejected?.get(i);
      if (r?.field === SHED_FIELD) {
        this.onDropped(b.events[i]!, b.cls, 'shed', b.seqs[i]!);
      } else if (ack.status === IngestStatus.REJECTED || r !== undefined) {
        if (r) this.options.onReject?.(b.events[i]!, r);
        this.onDropped(b.events[i]!, b.cls, 'rejected', b.seqs[i]!);
      } else {
        this.acked[b.cls]!++;
        this.left(b.seqs[i]!);
      }
    }
    this.schedule(now);
  }

  private onStreamEnd(s: StreamState, err: ServiceError | undefined): void {
    if (s.dead) return;
    if (!err && s.inflight.length === 0) {
      // The gateway closed an idle stream (it is draining): reconnect when there is something to send.
      s.dead = true;
      if (this.stream === s) this.stream = undefined;
      this.schedule(performance.now());
      return;
    }
    const retryAfter = Number(err?.metadata?.get('retry-after-ms')[0]);
    this.abandon(
      s,
      new GatewayStreamError(
        err?.code ?? GrpcStatus.UNAVAILABLE,
        err?.details || err?.message || 'the gateway ended the stream with batches unanswered',
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
        err,
      ),
      'stream_failed',
    );
  }

  /** Gives up a stream: its unanswered batches wait for a resend on the next one, after a back-off. */
  private abandon(s: StreamState, error: DeviceSdkError, cause: RetryCause): void {
    s.dead = true;
    if (this.stream === s) this.stream = undefined;
    s.call.on('error', () => undefined);
    s.call.cancel();
    const now = performance.now();
    const delay = this.fail(error);
    for (const b of s.inflight) {
      this.retries[cause]++;
      this.buffer.requeue(b, now + delay);
    }
    s.inflight.length = 0;
    this.schedule(this.pausedUntil);
  }

  /** Records a failure and pauses sending for the back-off; returns the delay. */
  private fail(error: DeviceSdkError): number {
    this.failures++;
    const o = this.options;
    const advised = error instanceof GatewayStreamError ? error.retryAfterMs : undefined;
    const delay =
      advised !== undefined
        ? retryAfterDelay(advised)
        : backoffDelay(this.failures, o.retryInitialMs, o.retryMaxMs);
    this.pausedUntil = Math.max(this.pausedUntil, performance.now() + delay);
    this.lastError = { code: error.code, message: error.message, at: new Date() };
    this.options.onError?.(error);
    if (!this.stream) this.schedule(this.pausedUntil);
    return delay;
  }

  private checkAckTimeout(): void {
    const s = this.stream;
    const oldest = s?.inflight[0];
    if (!s || !oldest) return;
    if (performance.now() - oldest.sentAt >= this.options.ackTimeoutMs)
      this.abandon(s, new AckTimeoutError(oldest.id, this.options.ackTimeoutMs), 'ack_timeout');
  }
}

import {
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamClient,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
} from '@opentelemetry/api';
import { topology as canonicalTopology, type Topology } from '@sluice/contracts';
import {
  ATTR,
  extractTraceContext,
  SPAN_LINK_LIMIT,
  tracer,
  type Logger,
} from '@sluice/observability';
import {
  ensureConsumer,
  ensureStream,
  publishDeadLetter,
  type ConsumerSpec,
  type StreamSpec,
} from '@sluice/jetstream';
import { Lifecycle, STATE_CODE, type LifecycleState } from '@sluice/runtime';
import type { Registry } from 'prom-client';
import { backoffDelay, type BackoffOptions } from './backoff';
import { HandlerContractError, PoisonMessageError, RetriesExhaustedError } from './errors';
import { ActorMetrics } from './metrics';
import type { Outcome } from './outcome';
import type { StoreGate } from './store-gate';

const SIZE_EXCEEDS_MAX_BYTES = 'message size exceeds maxbytes';
const REPULL_CHECK_MS = 20;

/** The pull renewal nats.js 3.x runs itself after missed heartbeats (not in its public types). */
interface Repullable {
  resetPending(): Promise<boolean>;
}
function canRepull(m: ConsumerMessages): m is ConsumerMessages & Repullable {
  return typeof (m as Partial<Repullable>).resetPending === 'function';
}

/** One decoded message handed to a batch handler. */
export interface Delivery<T> {
  readonly value: T;
  readonly msg: JsMsg;
  readonly subject: string;
  /** Stream sequence: stable across redeliveries, the natural idempotency key. */
  readonly seq: number;
  /** 1 on first delivery. */
  readonly deliveryCount: number;
  /** The publisher's trace continued by this message's `process` span; pass it on when publishing. */
  readonly context: Context;
}

/** Returns exactly one outcome per delivery, in order. Throwing retries the whole batch. */
export type BatchHandler<T> = (batch: ReadonlyArray<Delivery<T>>) => Promise<Outcome[]>;

export interface BatchOptions {
  /** Most messages handed to one handler call. Default 256. */
  maxMessages?: number;
  /** Most payload bytes handed to one handler call. Default 16 MiB. */
  maxBytes?: number;
  /** Wait this long after the first message for more before calling the handler. Default 0 (take what has arrived). */
  lingerMs?: number;
  /**
   * Batches in the handler at once: with 2, the next batch is collected, decoded and handed over
   * while the previous one is still in the handler (which must then tolerate concurrent calls), so
   * the handler's waits overlap the next batch's CPU work. Every message is still settled with its
   * own batch's outcome; messages in memory are bounded by this × `maxBytes` plus the prefetch.
   * Default 1.
   */
  concurrency?: number;
}

/**
 * Handles one message on its own (per-message mode). Throwing retries that message with backoff.
 * Runs in the context of the message's `process` span.
 */
export type MessageHandler<T> = (delivery: Delivery<T>) => Promise<Outcome>;

/** Per-message mode: each message is handed to the handler alone and settled on its own. */
export interface PerMessageOptions {
  /**
   * Messages in the handler at once; each holds only its own slot, so a slow one never delays the
   * settling of the others. Default 64.
   */
  maxInFlight?: number;
  /**
   * Send the acks of one event-loop turn together (after the turn, in one socket write) instead of
   * one write per ack: handlers that finish in separate I/O callbacks (HTTP responses) share the
   * write. An ack still leaves only after its outcome. Default true.
   */
  coalesceAcks?: boolean;
}

/** How much the client asks the server for ahead of the handler; one of the two bounds applies. */
export interface PrefetchOptions {
  /** Bound by message count instead of bytes (only when `maxBytes` is not set). Default unset. */
  maxMessages?: number;
  /**
   * Bytes requested ahead of the handler: the bound on in-flight memory. Default 8 MiB; never below
   * the server's `max_payload`, so one pull can always hold the next message.
   */
  maxBytes?: number;
}

/** Batch mode (the default): bounded batches handed to `handle`. */
export interface BatchModeOptions<T> {
  handle: BatchHandler<T>;
  batch?: BatchOptions;
  handleMessage?: undefined;
  perMessage?: undefined;
}

/** Per-message mode: every message handed to `handleMessage` alone, up to `perMessage.maxInFlight` at once. */
export interface MessageModeOptions<T> {
  handleMessage: MessageHandler<T>;
  perMessage?: PerMessageOptions;
  handle?: undefined;
  batch?: undefined;
}

/** Options of an {@link Actor}: the common ones plus those of its mode (batch or per-message). */
export type ActorOptions<T> = ActorCommonOptions<T> & (BatchModeOptions<T> | MessageModeOptions<T>);

export interface ActorCommonOptions<T> {
  /** Service name: metrics label, span and DLQ subject `dlq.<service>`. */
  service: string;
  nc: NatsConnection;
  stream: StreamSpec;
  consumer: ConsumerSpec;
  /** Turns a message into the handler's value. Throwing dead-letters that message (it is malformed). */
  decode: (msg: JsMsg) => T;
  prefetch?: PrefetchOptions;
  /**
   * Deliveries before a retried message is dead-lettered. `Infinity` when the handler bounds its own
   * attempts (its retries are then never turned into dead letters by the actor). Default 10.
   */
  maxDeliver?: number;
  backoff?: BackoffOptions;
  /**
   * On start, create the stream and the DLQ stream if missing (never changing an existing one: its
   * owner provisions settings) and create or update the consumer. Default true.
   */
  provision?: boolean;
  /** Streams and subjects of the installation (`rt.topology`); names the default DLQ. Default canonical. */
  topology?: Topology;
  /** Where dead letters go. Default `topology.streams.dlq`, subject `topology.dlq(service)`. */
  dlq?: { stream: StreamSpec; subject: string };
  logger: Logger;
  registry: Registry;
  /** How often consumer lag is read into metrics. Default 5 s. */
  lagIntervalMs?: number;
  /**
   * The stores the handler writes to. While one is down the actor pulls nothing, and a batch whose
   * outcomes are retries for an outage of one of them is held (its ack-wait extended) and handed to the
   * handler again as soon as the store answers, instead of being nak'ed into the backoff schedule. After
   * an outage the actor reports not ready until the consumer has caught up ({@link readyMaxPending}).
   * Default none.
   */
  gates?: ReadonlyArray<StoreGate>;
  /** Longest a batch is held for a store outage; past it its retries are nak'ed with backoff. Default 10 min. */
  holdOnOutageMs?: number;
  /**
   * After a store outage, ready again once at most this many messages wait: undelivered on the server
   * plus prefetched into this actor but not yet handed to the handler. Default 1000.
   */
  readyMaxPending?: number;
}

const TIMEOUT = Symbol('timeout');
type Next = IteratorResult<JsMsg>;

function raceTimeout(p: Promise<Next>, ms: number): Promise<Next | typeof TIMEOUT> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<typeof TIMEOUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMEOUT), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** A decode failure as the error its dead letter carries. */
function poison(err: unknown): PoisonMessageError {
  return err instanceof PoisonMessageError
    ? err
    : new PoisonMessageError(`cannot decode message: ${asError(err).message}`, { cause: err });
}

/**
 * A JetStream actor: provisions its stream and durable pull consumer, pulls bounded batches, hands
 * them to the handler and settles every message with the outcome it returned (ack, nak with delay,
 * or DLQ then term). In per-message mode (`handleMessage`) the same loop hands out one message at a
 * time, up to `perMessage.maxInFlight` at once, each settled on its own. Replicas share the consumer.
 * Lifecycle: starting → running → draining → stopped | failed.
 */
export class Actor<T> {
  readonly lifecycle = new Lifecycle();
  private readonly js: JetStreamClient;
  private readonly metrics: ActorMetrics;
  private readonly labels: { service: string; stream: string; consumer: string };
  private readonly log: Logger;
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly inBatches = new Set<Promise<void>>();
  private inFlightBytes = 0;
  /** A batch that failed outside the handler (settling): ends the pull loop, the actor fails. */
  private batchFailure: unknown;
  private readonly tracer = tracer('@sluice/actor');
  private readonly dlq: { stream: StreamSpec; subject: string };
  private readonly gates: ReadonlyArray<StoreGate>;
  /** Set by a store outage, cleared once the lag is back under `readyMaxPending`: readiness is honest while behind. */
  private catchingUp = false;
  /** Messages taken off the client's buffer while a store was down, kept alive until it is back. */
  private readonly parked: JsMsg[] = [];
  private lastLagRead = 0;
  /** Messages handed to the handler and not yet settled (both modes). */
  private handedOut = 0;
  /** Per-message mode: the messages in the handler, kept alive by one shared heartbeat. */
  private readonly held = new Set<JsMsg>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** Per-message mode: wakes the pull loop waiting for a free slot. */
  private slotWaiter: (() => void) | undefined;
  /** Per-message mode with `coalesceAcks`: the acks of this event-loop turn. */
  private acks: JsMsg[] = [];
  private acksScheduled = false;
  private readonly coalesceAcks: boolean;
  private wakeStop: () => void = () => undefined;
  private readonly stopped = new Promise<void>((resolve) => (this.wakeStop = resolve));

  constructor(private readonly opts: ActorOptions<T>) {
    if ((opts.handle === undefined) === (opts.handleMessage === undefined)) {
      throw new HandlerContractError(
        'an actor takes exactly one of handle (batch mode) and handleMessage (per-message mode)',
      );
    }
    this.js = jetstream(opts.nc);
    this.gates = opts.gates ?? [];
    this.coalesceAcks = opts.handleMessage !== undefined && opts.perMessage?.coalesceAcks !== false;
    const topo = opts.topology ?? canonicalTopology();
    this.dlq = opts.dlq ?? { stream: topo.streams.dlq, subject: topo.dlq(opts.service) };
    this.metrics = ActorMetrics.for(opts.registry);
    this.labels = {
      service: opts.service,
      stream: opts.stream.name,
      consumer: opts.consumer.durable,
    };
    this.log = opts.logger.child({ consumer: opts.consumer.durable, stream: opts.stream.name });
    this.metrics.state.set(this.labels, STATE_CODE.starting);
    this.lifecycle.onChange((to, from, cause) => {
      this.metrics.state.set(this.labels, STATE_CODE[to]);
      const level = to === 'failed' ? 'error' : 'info';
      this.log[level]({ from, to, err: cause }, `actor ${to}`);
    });
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  /**
   * True while the actor is pulling, its NATS connection is open, every store gate is up, and it is
   * not catching up on a backlog left by a store outage.
   */
  isReady(): boolean {
    return (
      this.lifecycle.state === 'running' &&
      !this.opts.nc.isClosed() &&
      this.gates.every((g) => g.isUp()) &&
      !this.catchingUp
    );
  }

  /** Messages handed to the handler and not yet settled. */
  get inFlight(): number {
    return this.handedOut;
  }

  /** Whether the actor is still draining the backlog a store outage left (not ready meanwhile). */
  get behind(): boolean {
    return this.catchingUp;
  }

  /** Resolves when every gate is up (or the actor stops); marks the actor as catching up if it waited. */
  private async gatesUp(until = Number.POSITIVE_INFINITY): Promise<void> {
    for (const gate of this.gates) {
      if (gate.isUp()) continue;
      this.catchingUp = true;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        gate.whenUp(),
        this.stopped,
        ...(Number.isFinite(until)
          ? [new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, until - Date.now()))))]
          : []),
      ]);
      clearTimeout(timer);
    }
  }

  /** Provisions, subscribes and starts the pull loop; resolves once running. */
  async start(): Promise<void> {
    try {
      if (this.opts.provision !== false) {
        const jsm = await jetstreamManager(this.opts.nc);
        await ensureStream(jsm, this.opts.stream, { update: false });
        await ensureStream(jsm, this.dlq.stream, { update: false });
        await ensureConsumer(jsm, this.opts.stream.name, this.opts.consumer);
      }
      const consumer = await this.js.consumers.get(
        this.opts.stream.name,
        this.opts.consumer.durable,
      );
      // The server bounds a pull by bytes or by count, not both: bytes is the default memory bound.
      const prefetch = this.opts.prefetch;
      this.messages = await consumer.consume(
        prefetch?.maxMessages !== undefined && prefetch.maxBytes === undefined
          ? { max_messages: prefetch.maxMessages }
          : { max_bytes: this.prefetchBytes() },
      );
      this.watchStatus(this.messages);
    } catch (err) {
      this.lifecycle.transition('failed', err);
      throw err;
    }
    if (this.stopping) return;
    this.lifecycle.transition('running');
    this.startLagPolling();
    const perMessage = this.opts.handleMessage !== undefined;
    if (perMessage) {
      const ackWait = this.opts.consumer.ackWaitMs ?? 30_000;
      // One timer for every held message: a slow handler or one held through a store outage is not
      // redelivered meanwhile.
      this.heartbeat = setInterval(
        () => {
          for (const m of this.held) m.working();
        },
        Math.max(500, Math.floor(ackWait / 3)),
      );
    }
    this.loop = (perMessage ? this.messageLoop(this.messages) : this.pullLoop(this.messages)).then(
      () => undefined,
      (err) => {
        clearInterval(this.heartbeat);
        if (!this.lifecycle.terminal) this.lifecycle.transition('failed', err);
      },
    );
  }

  /**
   * Lets the batches (per-message mode: the messages) in the handler finish and settle (bounded by
   * `deadlineMs`), then stops pulling and reaches `stopped`. Messages prefetched but never handed to
   * the handler are not touched: the server redelivers them after ack-wait, so none is processed
   * twice and none is lost.
   */
  async stop(deadlineMs = 25_000): Promise<void> {
    if (this.lifecycle.terminal || this.stopping) {
      await this.loop;
      return;
    }
    this.stopping = true;
    this.wakeStop();
    this.slotWaiter?.();
    this.lifecycle.transition('draining');
    clearInterval(this.lagTimer);
    const deadline = Date.now() + deadlineMs;
    const within = async (p: Promise<unknown>) => {
      let timer: NodeJS.Timeout | undefined;
      const ok = await Promise.race([
        p.then(() => true),
        new Promise<boolean>(
          (r) => (timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now()))),
        ),
      ]);
      clearTimeout(timer);
      return ok;
    };
    // Closing first would run the client's queued pull requests while the last batch still settles.
    const settled = await within(Promise.allSettled(this.inBatches));
    clearInterval(this.heartbeat);
    this.flushAcks();
    void this.messages?.close().catch(() => undefined);
    if (!settled || !(await within(this.loop ?? Promise.resolve()))) {
      this.log.warn(
        { deadlineMs },
        'drain deadline passed; unsettled messages will be redelivered',
      );
    }
    // Acks are fire-and-forget: push them to the server before reporting stopped, so a process that
    // exits right after stop() does not leave settled messages to be redelivered.
    await within(this.opts.nc.flush().catch(() => undefined));
    if (!this.lifecycle.terminal) this.lifecycle.transition('stopped');
  }

  private async pullLoop(messages: ConsumerMessages): Promise<void> {
    const it = messages[Symbol.asyncIterator]();
    const maxMessages = this.opts.batch?.maxMessages ?? 256;
    const maxBytes = this.opts.batch?.maxBytes ?? 16 * 1024 * 1024;
    const lingerMs = this.opts.batch?.lingerMs ?? 0;
    // An unresolved it.next() survives a linger timeout and is reused, so no message is skipped.
    let pending: Promise<Next> | undefined;
    const take = () => (pending ??= it.next());
    const parked = this.parked;
    const next = async (timeoutMs?: number): Promise<Next | typeof TIMEOUT> => {
      if (parked.length > 0) return { done: false, value: parked.shift()! };
      const r = timeoutMs === undefined ? await take() : await raceTimeout(take(), timeoutMs);
      if (r !== TIMEOUT) pending = undefined;
      return r;
    };
    const concurrency = Math.max(1, this.opts.batch?.concurrency ?? 1);

    try {
      while (!this.stopping) {
        // Bounded: at most `concurrency` batches in the handler; wait for one to settle. A store is
        // down: hand nothing new to the handler (the batch that met the outage is held in the handler
        // step) and keep what the client already pulled alive rather than let it expire.
        for (;;) {
          if (this.batchFailure !== undefined) throw this.batchFailure;
          if (this.stopping) return;
          if (!this.gates.every((g) => g.isUp())) {
            if ((await this.park(take, () => (pending = undefined), parked)) === 'done') return;
            continue;
          }
          if (this.inBatches.size < concurrency) break;
          // With gates, look again every 200 ms: a batch held for an outage settles only after it.
          if (this.gates.length === 0) await Promise.race(this.inBatches);
          else await this.settledOrTimeout(200);
        }
        const first = await next();
        if (first === TIMEOUT) continue;
        if (this.batchFailure !== undefined) throw this.batchFailure;
        // Taken while stopping: left unsettled for ack-wait, like every prefetched message (DECISIONS #4).
        if (first.done || this.stopping) return;
        const batch = [first.value];
        let bytes = first.value.data.length;
        const deadline = Date.now() + lingerMs;
        while (batch.length < maxMessages && bytes < maxBytes) {
          const r = await next(Math.max(0, deadline - Date.now()));
          if (r === TIMEOUT || r.done) break;
          batch.push(r.value);
          bytes += r.value.data.length;
        }
        // Collected while stopping: left unsettled for ack-wait, like every prefetched message.
        if (this.stopping) return;
        this.inFlightBytes += bytes;
        this.handedOut += batch.length;
        this.metrics.inFlightBytes.set(this.labels, this.inFlightBytes);
        const done: Promise<void> = this.processBatch(batch).finally(() => {
          this.inBatches.delete(done);
          this.handedOut -= batch.length;
          this.inFlightBytes -= bytes;
          this.metrics.inFlightBytes.set(this.labels, this.inFlightBytes);
        });
        done.catch((err: unknown) => {
          this.batchFailure ??= err;
          // Ends a pull loop waiting for messages, so the actor fails now rather than on the next one.
          void this.messages?.close().catch(() => undefined);
        });
        this.inBatches.add(done);
      }
    } finally {
      // Parked when the actor stopped: handed back at once for another replica.
      for (const m of parked.splice(0)) m.nak();
    }
  }

  private async settledOrTimeout(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([...this.inBatches, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  /**
   * While a gate is down: takes what the client has already pulled (up to the prefetch bound) and
   * keeps it alive with `working()`, so a store outage shorter than the hold does not make the server
   * redeliver prefetched messages; returns when every gate is up again ('up') or the stream ended ('done').
   */
  private async park(
    take: () => Promise<Next>,
    taken: () => void,
    parked: JsMsg[],
  ): Promise<'up' | 'done'> {
    this.catchingUp = true;
    const prefetch = this.opts.prefetch;
    const byCount = prefetch?.maxMessages !== undefined && prefetch.maxBytes === undefined;
    const bound = byCount ? prefetch!.maxMessages! : (prefetch?.maxBytes ?? 8 * 1024 * 1024);
    let held = parked.reduce((n, m) => n + (byCount ? 1 : m.data.length), 0);
    const ackWait = this.opts.consumer.ackWaitMs ?? 30_000;
    const heartbeat = setInterval(
      () => parked.forEach((m) => m.working()),
      Math.max(500, Math.floor(ackWait / 3)),
    );
    try {
      const up = this.gatesUp().then(() => 'up' as const);
      // Bounded by `bound`: past it, nothing more is taken until the gates are up.
      while (!this.stopping && !this.gates.every((g) => g.isUp())) {
        if (held >= bound) {
          await up;
          break;
        }
        const r = await Promise.race([take(), up]);
        if (r === 'up') break;
        taken();
        if (r.done) return 'done';
        r.value.working();
        parked.push(r.value);
        held += byCount ? 1 : r.value.data.length;
      }
      return 'up';
    } finally {
      clearInterval(heartbeat);
    }
  }

  private async processBatch(msgs: JsMsg[]): Promise<void> {
    const maxDeliver = this.opts.maxDeliver ?? 10;
    const settled: Array<Promise<void>> = [];
    const deliveries: Array<Delivery<T>> = [];
    const spans: Span[] = [];

    for (const msg of msgs) {
      const parent = extractTraceContext(msg.headers, context.active());
      const span = this.processSpan(msg, parent);
      if (msg.info.deliveryCount > maxDeliver) {
        // Crashed on its final attempt(s): never hand it out again.
        settled.push(
          this.settle(
            msg,
            { type: 'dead', error: new RetriesExhaustedError(msg.info.deliveryCount - 1) },
            span,
          ),
        );
        continue;
      }
      let value: T;
      try {
        value = this.opts.decode(msg);
      } catch (err) {
        settled.push(this.settle(msg, { type: 'dead', error: poison(err) }, span));
        continue;
      }
      deliveries.push({
        value,
        msg,
        subject: msg.subject,
        seq: msg.seq,
        deliveryCount: msg.info.deliveryCount,
        context: trace.setSpan(parent, span),
      });
      spans.push(span);
    }

    if (deliveries.length > 0) {
      const outcomes = await this.runHandler(deliveries);
      deliveries.forEach((d, i) => settled.push(this.settle(d.msg, outcomes[i]!, spans[i]!)));
    }
    await Promise.all(settled);
  }

  /** The `process <subject>` span of one message, a child of the publisher's context. */
  private processSpan(msg: JsMsg, parent: Context): Span {
    return this.tracer.startSpan(
      `process ${msg.subject}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          [ATTR.messagingSystem]: 'nats',
          [ATTR.messagingOperation]: 'process',
          [ATTR.messagingDestination]: msg.subject,
          [ATTR.streamSequence]: msg.seq,
          [ATTR.deliveryCount]: msg.info.deliveryCount,
        },
      },
      parent,
    );
  }

  /**
   * Per-message mode's pull loop: the same prefetch, gates and parking as {@link pullLoop}, but every
   * message is handed to the handler alone as soon as one of `maxInFlight` slots is free, and settled
   * on its own.
   */
  private async messageLoop(messages: ConsumerMessages): Promise<void> {
    const it = messages[Symbol.asyncIterator]();
    let pending: Promise<Next> | undefined;
    const take = () => (pending ??= it.next());
    const parked = this.parked;
    const maxInFlight = Math.max(1, this.opts.perMessage?.maxInFlight ?? 64);
    try {
      while (!this.stopping) {
        for (;;) {
          if (this.batchFailure !== undefined) throw this.batchFailure;
          if (this.stopping) return;
          if (!this.gates.every((g) => g.isUp())) {
            if ((await this.park(take, () => (pending = undefined), parked)) === 'done') return;
            continue;
          }
          if (this.held.size < maxInFlight) break;
          // With gates, look again every 200 ms: a message held for an outage settles only after it.
          await this.slotFreed(this.gates.length > 0 ? 200 : undefined);
        }
        let msg: JsMsg;
        if (parked.length > 0) msg = parked.shift()!;
        else {
          const r = await take();
          pending = undefined;
          if (this.batchFailure !== undefined) throw this.batchFailure;
          // Taken while stopping: left unsettled for ack-wait, like every prefetched message (DECISIONS #4).
          if (r.done || this.stopping) return;
          msg = r.value;
        }
        this.dispatch(msg);
      }
    } finally {
      // Parked when the actor stopped: handed back at once for another replica.
      for (const m of parked.splice(0)) m.nak();
    }
  }

  /** Resolves when a per-message slot frees up, the actor stops, or after `timeoutMs`. */
  private slotFreed(timeoutMs?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = () => {
        this.slotWaiter = undefined;
        clearTimeout(timer);
        resolve();
      };
      this.slotWaiter = wake;
      if (timeoutMs !== undefined) timer = setTimeout(wake, timeoutMs);
    });
  }

  private dispatch(msg: JsMsg): void {
    const bytes = msg.data.length;
    this.held.add(msg);
    this.handedOut++;
    this.inFlightBytes += bytes;
    this.metrics.inFlightBytes.set(this.labels, this.inFlightBytes);
    const release = () => {
      this.inBatches.delete(done);
      this.held.delete(msg);
      this.handedOut--;
      this.inFlightBytes -= bytes;
      this.metrics.inFlightBytes.set(this.labels, this.inFlightBytes);
      this.slotWaiter?.();
    };
    const done: Promise<void> = this.processMessage(msg).then(release, (err: unknown) => {
      // Settling failed (not the handler): the actor fails rather than lose track of the message.
      this.batchFailure ??= err;
      release();
      void this.messages?.close().catch(() => undefined);
    });
    this.inBatches.add(done);
  }

  private async processMessage(msg: JsMsg): Promise<void> {
    const maxDeliver = this.opts.maxDeliver ?? 10;
    const parent = extractTraceContext(msg.headers, context.active());
    const span = this.processSpan(msg, parent);
    if (msg.info.deliveryCount > maxDeliver) {
      // Crashed on its final attempt(s): never hand it out again.
      const error = new RetriesExhaustedError(msg.info.deliveryCount - 1);
      return this.settle(msg, { type: 'dead', error }, span);
    }
    let value: T;
    try {
      value = this.opts.decode(msg);
    } catch (err) {
      return this.settle(msg, { type: 'dead', error: poison(err) }, span);
    }
    const delivery: Delivery<T> = {
      value,
      msg,
      subject: msg.subject,
      seq: msg.seq,
      deliveryCount: msg.info.deliveryCount,
      context: trace.setSpan(parent, span),
    };
    let outcome = await this.callMessageHandler(delivery);
    if (this.gates.length > 0) {
      const holdUntil = Date.now() + (this.opts.holdOnOutageMs ?? 600_000);
      // Bounded by the hold deadline (each round waits for the gate's probe); the cap only stops a
      // pathological loop.
      for (let round = 0; round < 10_000; round++) {
        const error = outcome.type === 'retry' ? outcome.error : undefined;
        if (!error || this.stopping || Date.now() >= holdUntil) break;
        if (!this.gates.some((g) => g.failure(error))) break;
        this.catchingUp = true;
        await this.gatesUp(holdUntil);
        if (this.stopping || !this.gates.every((g) => g.isUp())) break;
        outcome = await this.callMessageHandler(delivery);
      }
    }
    await this.settle(msg, outcome, span);
  }

  private async callMessageHandler(delivery: Delivery<T>): Promise<Outcome> {
    const end = this.metrics.handlerDuration.startTimer(this.labels);
    try {
      const outcome = await context.with(
        delivery.context,
        this.opts.handleMessage!,
        undefined,
        delivery,
      );
      if (typeof outcome?.type !== 'string') {
        throw new HandlerContractError(
          `message handler returned ${typeof outcome} instead of an outcome`,
        );
      }
      return outcome;
    } catch (err) {
      const e = asError(err);
      this.metrics.failed.inc(this.labels);
      // A store outage is logged once by its gate, not once per message.
      if (!this.gates.some((g) => g.isOutage(e))) {
        this.log.warn(
          { err: e, seq: delivery.seq },
          'message handler failed; retrying the message',
        );
      }
      return { type: 'retry', error: e };
    } finally {
      end();
    }
  }

  /** Queues an ack for the end of this event-loop turn ({@link PerMessageOptions.coalesceAcks}). */
  private ackSoon(msg: JsMsg): void {
    this.acks.push(msg);
    if (this.acksScheduled) return;
    this.acksScheduled = true;
    setImmediate(this.flushAcks);
  }

  private readonly flushAcks = (): void => {
    this.acksScheduled = false;
    const acks = this.acks;
    if (acks.length === 0) return;
    this.acks = [];
    for (const m of acks) m.ack();
  };

  private async runHandler(deliveries: Array<Delivery<T>>): Promise<Outcome[]> {
    const ackWait = this.opts.consumer.ackWaitMs ?? 30_000;
    // Keeps the server from redelivering a batch whose handler is slow but alive, or that is held
    // through a store outage.
    const heartbeat = setInterval(
      () => deliveries.forEach((d) => d.msg.working()),
      Math.max(500, Math.floor(ackWait / 3)),
    );
    try {
      const outcomes = await this.callHandler(deliveries);
      const holdUntil = Date.now() + (this.opts.holdOnOutageMs ?? 600_000);
      // Bounded by the hold deadline; the round cap only stops a pathological loop.
      for (let round = 0; round < 10_000 && this.gates.length > 0; round++) {
        const held = this.outageRetries(outcomes);
        if (held.length === 0 || this.stopping || Date.now() >= holdUntil) break;
        this.catchingUp = true;
        await this.gatesUp(holdUntil);
        if (this.stopping || !this.gates.every((g) => g.isUp())) break;
        const again = await this.callHandler(held.map((i) => deliveries[i]!));
        held.forEach((i, j) => (outcomes[i] = again[j]!));
      }
      return outcomes;
    } finally {
      clearInterval(heartbeat);
    }
  }

  /** Indexes of retry outcomes caused by an outage of a gated store (each distinct error reported once). */
  private outageRetries(outcomes: Outcome[]): number[] {
    const held: number[] = [];
    const verdicts = new Map<Error, boolean>();
    outcomes.forEach((o, i) => {
      if (o.type !== 'retry' || !o.error) return;
      let outage = verdicts.get(o.error);
      if (outage === undefined) {
        outage = this.gates.some((g) => g.failure(o.error));
        verdicts.set(o.error, outage);
      }
      if (outage) held.push(i);
    });
    return held;
  }

  private async callHandler(deliveries: Array<Delivery<T>>): Promise<Outcome[]> {
    const end = this.metrics.handlerDuration.startTimer(this.labels);
    this.metrics.batchSize.observe(this.labels, deliveries.length);
    const batchSpan = this.tracer.startSpan(`handle batch ${this.opts.consumer.durable}`, {
      kind: SpanKind.INTERNAL,
      attributes: {
        [ATTR.messagingBatchCount]: deliveries.length,
        [ATTR.service]: this.opts.service,
      },
      // The provider keeps at most SPAN_LINK_LIMIT links; the batch size is in the attribute above.
      links: deliveries
        .slice(0, SPAN_LINK_LIMIT)
        .map((d) => ({ context: trace.getSpanContext(d.context)! })),
    });
    try {
      const outcomes = await context.with(trace.setSpan(context.active(), batchSpan), () =>
        this.opts.handle!(deliveries),
      );
      if (!Array.isArray(outcomes) || outcomes.length !== deliveries.length) {
        throw new HandlerContractError(
          `handler returned ${Array.isArray(outcomes) ? outcomes.length : typeof outcomes} outcomes for ${deliveries.length} messages`,
        );
      }
      return outcomes;
    } catch (err) {
      const e = asError(err);
      this.metrics.failed.inc(this.labels);
      batchSpan.recordException(e);
      batchSpan.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
      // A store outage is logged once by its gate, not once per batch.
      if (!this.gates.some((g) => g.isOutage(e)))
        this.log.warn(
          { err: e, messages: deliveries.length },
          'batch handler failed; retrying the batch',
        );
      return deliveries.map(() => ({ type: 'retry', error: e }) as const);
    } finally {
      end();
      batchSpan.end();
    }
  }

  private async settle(msg: JsMsg, outcome: Outcome, span: Span): Promise<void> {
    const maxDeliver = this.opts.maxDeliver ?? 10;
    const count = msg.info.deliveryCount;
    let effective = outcome;
    if (outcome.type === 'retry' && count >= maxDeliver) {
      effective = { type: 'dead', error: new RetriesExhaustedError(count, outcome.error) };
    }
    span.setAttribute(ATTR.outcome, effective.type);
    try {
      switch (effective.type) {
        case 'ack':
          if (this.coalesceAcks) this.ackSoon(msg);
          else msg.ack();
          this.metrics.processed.inc(this.labels);
          break;
        case 'retry': {
          const delay = effective.delayMs ?? backoffDelay(count, this.opts.backoff);
          msg.nak(delay);
          this.metrics.retried.inc(this.labels);
          if (effective.error) span.recordException(effective.error);
          break;
        }
        case 'dead':
          span.recordException(effective.error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: effective.error.message });
          try {
            await publishDeadLetter(this.js, msg, {
              service: this.opts.service,
              subject: this.dlq.subject,
              error: effective.error,
            });
          } catch (err) {
            // Never term what is not safely in the DLQ.
            this.log.error(
              { err, seq: msg.seq },
              'dead-letter publish failed; message will be redelivered',
            );
            msg.nak(backoffDelay(count, this.opts.backoff));
            this.metrics.retried.inc(this.labels);
            break;
          }
          // Plain term: servers before 2.10 ignore a `+TERM <reason>` ack. The reason is in the DLQ.
          msg.term();
          this.metrics.deadLettered.inc({ ...this.labels, error_class: effective.error.name });
          this.log.warn(
            { seq: msg.seq, subject: msg.subject, deliveries: count, err: effective.error },
            'message dead-lettered',
          );
          break;
      }
    } finally {
      span.end();
    }
  }

  /** A pull smaller than the largest message the server accepts could never deliver that message. */
  private prefetchBytes(): number {
    const wanted = this.opts.prefetch?.maxBytes ?? 8 * 1024 * 1024;
    const maxPayload = this.opts.nc.info?.max_payload ?? 1024 * 1024;
    if (wanted >= maxPayload) return wanted;
    this.log.info({ wanted, maxPayload }, 'prefetch.maxBytes raised to the server max_payload');
    return maxPayload;
  }

  private watchStatus(messages: ConsumerMessages): void {
    let check: NodeJS.Timeout | undefined;
    const arm = (m: ConsumerMessages & Repullable) => {
      const received = m.getReceived();
      check = setTimeout(() => {
        check = undefined;
        if (this.stopping) return;
        if (m.getReceived() !== received) return arm(m);
        this.metrics.repulls.inc(this.labels);
        void m.resetPending().catch(() => undefined);
      }, REPULL_CHECK_MS);
    };
    (async () => {
      for await (const s of messages.status()) {
        if (
          s.type === 'heartbeats_missed' ||
          s.type === 'consumer_not_found' ||
          s.type === 'stream_not_found' ||
          s.type === 'consumer_deleted'
        ) {
          this.log.warn({ status: s.type }, 'consumer status');
        } else if (s.type === 'exceeded_limits' && s.description === SIZE_EXCEEDS_MAX_BYTES) {
          // nats.js 3.x does not pull again after this 409 when its buffer is empty: it waits for
          // two missed heartbeats (~30 s). Once nothing has arrived for REPULL_CHECK_MS after one,
          // the pull is renewed (which may briefly hold up to twice the prefetch); one timer at a time.
          if (check === undefined && canRepull(messages)) arm(messages);
        }
      }
    })()
      .catch(() => undefined)
      .finally(() => clearTimeout(check));
  }

  private startLagPolling(): void {
    const interval = this.opts.lagIntervalMs ?? 5_000;
    const read = async () => {
      // Every second while catching up after an outage (readiness waits on it), else every `interval`.
      if (!this.catchingUp && Date.now() - this.lastLagRead < interval) return;
      this.lastLagRead = Date.now();
      try {
        const c = await this.js.consumers.get(this.opts.stream.name, this.opts.consumer.durable);
        const info = await c.info(false);
        this.metrics.pending.set(this.labels, info.num_pending);
        this.metrics.ackPending.set(this.labels, info.num_ack_pending);
        this.metrics.redelivered.set(this.labels, info.num_redelivered);
        // The backlog is on the server (num_pending) and in this process's prefetch buffer: while a
        // store is down the consumer keeps prefetching, so the server's count alone can read ~0.
        const behind = info.num_pending + (this.messages?.getPending() ?? 0) + this.parked.length;
        if (
          this.catchingUp &&
          this.gates.every((g) => g.isUp()) &&
          behind <= (this.opts.readyMaxPending ?? 1000)
        ) {
          this.catchingUp = false;
          this.log.info(
            { pending: info.num_pending, buffered: behind - info.num_pending },
            'caught up after a store outage',
          );
        }
      } catch {
        // Lag is best-effort telemetry; connection trouble is reported by readiness.
      }
    };
    this.lagTimer = setInterval(read, Math.min(interval, 1_000));
    this.lagTimer.unref();
  }
}

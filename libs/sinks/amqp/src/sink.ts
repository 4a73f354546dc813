import { Connection, type Publisher, type ReturnedMessage } from 'rabbitmq-client';
import { SluiceError } from '@sluice/errors';
import {
  EXPORT_HEADERS,
  PublishTracker,
  RecentIds,
  RecordRejectedError,
  renderRecord,
  type RejectedRecord,
  type Sink,
  type SinkHealth,
  type SinkRecord,
  type WriteResult,
} from '@sluice/sinks-core';
import {
  AmqpDeclareError,
  AmqpUnavailableError,
  isRetriableAmqpError,
  UnroutableRecordError,
} from './errors';
import { resolveAmqpOptions, type AmqpSinkOptions, type ResolvedAmqpOptions } from './options';

/** Returned messages not yet matched to their publish (bounded: the oldest are forgotten). */
const MAX_RETURNS = 10_000;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Resolves after the callbacks already queued with setImmediate. */
const afterQueuedImmediates = () => new Promise<void>((r) => setImmediate(r));

/**
 * RabbitMQ: one message per event on an exchange, routing key from a template, `message_id` =
 * `event_id`, persistent, mandatory, with publisher confirms: `write()` resolves once the broker
 * confirmed every record, so the runner acks a JetStream message only after its records' confirms. A
 * record no queue is bound for comes back (mandatory) and is rejected with the broker's reason.
 *
 * At-least-once: a record whose confirm was lost with the connection is published again on retry, a
 * duplicate with the same `message_id`. Records confirmed within the last `recentIds` are skipped.
 */
export class AmqpSink implements Sink {
  readonly name: string;
  readonly options: ResolvedAmqpOptions;
  private readonly recent: RecentIds;
  private conn: Connection | undefined;
  private pub: Publisher | undefined;
  private tracker: PublishTracker | undefined;
  private connecting: Promise<void> | undefined;
  private readonly returned = new Map<string, ReturnedMessage>();
  private lastError: string | undefined;
  private blocked: string | undefined;

  /** Validates `options` now; throws ConfigError naming the bad option. */
  constructor(options: AmqpSinkOptions) {
    this.options = resolveAmqpOptions(options);
    this.name = this.options.name;
    this.recent = new RecentIds(this.options.recentIds);
  }

  connect(): Promise<void> {
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<void> {
    const o = this.options;
    if (!this.conn) {
      const conn = new Connection({
        url: o.url,
        connectionName: `sluice-${o.name}`,
        connectionTimeout: o.connectTimeoutMs,
        acquireTimeout: o.connectTimeoutMs,
        heartbeat: o.heartbeatSeconds,
        retryLow: 200,
        retryHigh: 5_000,
      });
      conn.on('error', (err) => (this.lastError = message(err)));
      conn.on('connection', () => (this.lastError = undefined));
      conn.on('connection.blocked', (reason) => (this.blocked = reason || 'no reason given'));
      conn.on('connection.unblocked', () => (this.blocked = undefined));
      this.conn = conn;
    }
    const conn = this.conn;
    try {
      // Keeps reconnecting in the background after a timeout; a later connect() waits again.
      await conn.onConnect(o.connectTimeoutMs, true);
    } catch (err) {
      throw new AmqpUnavailableError(message(err), { cause: err });
    }
    if (this.pub) return;
    const exchange = { exchange: o.exchange, type: o.exchangeType, durable: true };
    try {
      if (o.declareExchange) await conn.exchangeDeclare(exchange);
      for (const q of o.queues) {
        await conn.queueDeclare({
          queue: q.name,
          durable: true,
          arguments: { 'x-queue-type': q.type },
        });
        for (const key of q.bindings)
          await conn.queueBind({ queue: q.name, exchange: o.exchange, routingKey: key });
      }
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'PRECONDITION_FAILED' || code === 'ACCESS_REFUSED' || code === 'NOT_FOUND')
        throw new AmqpDeclareError(
          `RabbitMQ refused the sink's exchange or queues (${message(err)}); check exchange, exchangeType, declareExchange and queues`,
          { cause: err },
        );
      throw new AmqpUnavailableError(message(err), { cause: err });
    }
    const pub = conn.createPublisher({
      confirm: true,
      maxAttempts: 1,
      ...(o.declareExchange ? { exchanges: [exchange] } : {}),
    });
    pub.on('basic.return', (m: ReturnedMessage) => {
      if (!m.messageId) return;
      this.returned.set(m.messageId, m);
      if (this.returned.size > MAX_RETURNS)
        this.returned.delete(this.returned.keys().next().value!);
    });
    this.pub = pub;
    this.tracker = new PublishTracker(o.maxInFlight, this.recent);
  }

  async close(deadline: number): Promise<void> {
    await this.connecting?.catch(() => undefined);
    const conn = this.conn;
    const pub = this.pub;
    this.conn = undefined;
    this.pub = undefined;
    this.tracker = undefined;
    if (!conn) return;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      (async () => {
        await pub?.close().catch(() => undefined);
        await conn.close().catch(() => undefined);
        return true;
      })(),
      new Promise<false>(
        (r) => (timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now()))),
      ),
    ]);
    clearTimeout(timer);
    if (!done) conn.unsafeDestroy();
  }

  async health(): Promise<SinkHealth> {
    const conn = this.conn;
    if (!conn || !this.pub) return { ok: false, detail: 'not connected' };
    if (this.blocked) return { ok: false, detail: `blocked by the broker: ${this.blocked}` };
    if (!conn.ready) return { ok: false, detail: this.lastError ?? 'connection down' };
    let timer: NodeJS.Timeout | undefined;
    try {
      // A round trip that also proves the exchange is there.
      await Promise.race([
        conn.exchangeDeclare({ exchange: this.options.exchange, passive: true }),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('no answer within 2 s')), 2_000);
        }),
      ]);
      return { ok: true };
    } catch (err) {
      return { ok: false, detail: message(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  isRetriable(error: unknown): boolean {
    return isRetriableAmqpError(error);
  }

  async write(records: ReadonlyArray<SinkRecord>): Promise<WriteResult> {
    await this.connect();
    const { conn, pub, tracker } = this;
    if (!conn || !pub || !tracker) throw new AmqpUnavailableError('sink closed during write');
    const rejected: RejectedRecord[] = [];
    const acks: Array<Promise<void>> = [];
    records.forEach((r, index) => {
      const ack = tracker.ack(r.id, () => this.publish(conn, pub, r));
      if (!ack) return;
      acks.push(
        ack.catch((err: unknown) => {
          if (!(err instanceof RecordRejectedError)) throw err;
          rejected.push({ index, error: err });
        }),
      );
    });
    try {
      await Promise.all(acks);
    } catch (err) {
      throw err instanceof SluiceError
        ? err
        : new AmqpUnavailableError(`publish failed: ${message(err)}`, { cause: err });
    }
    return { rejected };
  }

  /** Publishes one record and resolves on its confirm; rejects with the reason it was returned. */
  private async publish(conn: Connection, pub: Publisher, r: SinkRecord): Promise<void> {
    const o = this.options;
    const rendered = renderRecord(r.event, o.format);
    const rec = rendered.record;
    const keys = (rec.kind === 'telemetry' ? o.telemetryRoutingKey : o.detectionRoutingKey).render(
      rec,
    );
    if (!conn.ready) throw new AmqpUnavailableError(this.lastError ?? 'connection down');
    await pub.send(
      {
        exchange: o.exchange,
        routingKey: keys[0]!,
        mandatory: o.mandatory,
        durable: o.persistent,
        messageId: r.id,
        contentType: rendered.contentType,
        appId: 'sluice',
        type: rec.kind,
        ...(o.messageTtlMs !== undefined ? { expiration: String(o.messageTtlMs) } : {}),
        headers: {
          [EXPORT_HEADERS.SCHEMA_VERSION]: rec.export_schema_version,
          [EXPORT_HEADERS.EVENT_ID]: r.id,
          [EXPORT_HEADERS.KIND]: rec.kind,
          ...(keys.length > 1 ? { CC: keys.slice(1) } : {}),
        },
      },
      rendered.body,
    );
    // The broker sends basic.return before the confirm of a returned message; the client emits it
    // from a setImmediate queued when the frame arrived, so it has run once ours does.
    await afterQueuedImmediates();
    const ret = this.returned.get(r.id);
    if (ret) {
      this.returned.delete(r.id);
      throw new UnroutableRecordError(ret.replyCode, ret.replyText, o.exchange, keys);
    }
  }
}

import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
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
  isRetriableMqttError,
  MqttUnavailableError,
  PublishRefusedError,
  TRANSIENT_REASON_CODES,
} from './errors';
import { resolveMqttOptions, type MqttSinkOptions, type ResolvedMqttOptions } from './options';

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A bound on the QoS ≥ 1 packets waiting for the broker's ack (its receive maximum). */
class PacketSlots {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(public limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** Resolves on the client's next CONNACK, rejects after `ms`. */
function connected(client: MqttClient, ms: number): Promise<void> {
  if (client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      client.off('connect', done);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off('connect', done);
      reject(new MqttUnavailableError(`no connection within ${ms} ms`));
    }, ms);
    client.on('connect', done);
  });
}

/**
 * The owner's MQTT broker: one message per event (per topic of its labels), topic from a template,
 * QoS 0/1/2, retain, MQTT 5 message expiry, the schema version, event id and content type as MQTT 5
 * user properties. `write()` resolves once the broker acknowledged every QoS ≥ 1 publish.
 *
 * The session is persistent (fixed client id, clean start off): across a reconnect the client sends
 * its unacknowledged publishes again and the broker, which kept the session, acknowledges them
 * without delivering a QoS 2 message twice. A new client (at `connect()` after `close()` or a
 * restart) first clears the session it would resume: its unacknowledged state died with the old
 * client, and those records were never acked to JetStream, so they come again. QoS 1 may deliver
 * a message twice; duplicates carry the same `event_id`.
 */
export class MqttSink implements Sink {
  readonly name: string;
  readonly options: ResolvedMqttOptions;
  private readonly recent: RecentIds;
  private client: MqttClient | undefined;
  private tracker: PublishTracker | undefined;
  private slots: PacketSlots | undefined;
  private connecting: Promise<void> | undefined;
  private lastError: string | undefined;
  /** Writes waiting for acks: told when the connection drops, so they fail instead of waiting. */
  private readonly onLost = new Set<(err: Error) => void>();

  /** Validates `options` now; throws ConfigError naming the bad option. */
  constructor(options: MqttSinkOptions) {
    this.options = resolveMqttOptions(options);
    this.name = this.options.name;
    this.recent = new RecentIds(this.options.recentIds);
  }

  private clientOptions(clean: boolean): IClientOptions {
    const o = this.options;
    const v5 = o.protocolVersion === '5';
    return {
      clientId: o.clientId,
      protocolVersion: v5 ? 5 : 4,
      clean,
      keepalive: o.keepaliveSeconds,
      connectTimeout: o.connectTimeoutMs,
      reconnectPeriod: clean ? 0 : o.reconnectPeriodMs,
      resubscribe: false,
      // A QoS 0 record while offline fails the write instead of waiting in an unbounded queue.
      queueQoSZero: false,
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...(v5 && !clean ? { properties: { sessionExpiryInterval: o.sessionExpirySeconds } } : {}),
    };
  }

  /** Connects with a clean session and leaves: the broker forgets the session of this client id. */
  private async resetSession(deadline = Date.now() + this.options.connectTimeoutMs): Promise<void> {
    const c = mqtt.connect(this.options.url, this.clientOptions(true));
    c.on('error', (err) => (this.lastError = message(err)));
    try {
      await connected(c, Math.max(1, deadline - Date.now()));
    } finally {
      await c.endAsync(true).catch(() => undefined);
    }
  }

  connect(): Promise<void> {
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<void> {
    if (!this.client) {
      await this.resetSession();
      const client = mqtt.connect(this.options.url, this.clientOptions(false));
      const slots = new PacketSlots(this.options.maxInFlight);
      client.on('connect', (connack) => {
        this.lastError = undefined;
        const max = connack.properties?.receiveMaximum;
        slots.limit = Math.max(1, Math.min(this.options.maxInFlight, max ?? Infinity));
      });
      client.on('error', (err) => (this.lastError = message(err)));
      client.on('close', () => {
        const err = new MqttUnavailableError(this.lastError ?? 'connection lost');
        for (const fail of [...this.onLost]) fail(err);
      });
      this.client = client;
      this.slots = slots;
      this.tracker = new PublishTracker(this.options.maxInFlight, this.recent);
    }
    await connected(this.client, this.options.connectTimeoutMs);
  }

  async close(deadline: number): Promise<void> {
    await this.connecting?.catch(() => undefined);
    const client = this.client;
    const tracker = this.tracker;
    this.client = undefined;
    this.tracker = undefined;
    this.slots = undefined;
    if (!client) return;
    // Let the publishes in flight get their acks, until the deadline.
    while (tracker && tracker.inFlight > 0 && client.connected && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    await client.endAsync(true).catch(() => undefined);
    const err = new MqttUnavailableError('sink closed');
    for (const fail of [...this.onLost]) fail(err);
    await this.resetSession(deadline).catch(() => undefined);
  }

  async health(): Promise<SinkHealth> {
    const client = this.client;
    if (!client) return { ok: false, detail: 'not connected' };
    return client.connected
      ? { ok: true }
      : { ok: false, detail: this.lastError ?? 'connection down, reconnecting' };
  }

  isRetriable(error: unknown): boolean {
    return isRetriableMqttError(error);
  }

  async write(records: ReadonlyArray<SinkRecord>): Promise<WriteResult> {
    await this.connect();
    const { client, tracker, slots } = this;
    if (!client || !tracker || !slots) throw new MqttUnavailableError('sink closed during write');
    const rejected: RejectedRecord[] = [];
    let fail!: (err: Error) => void;
    const lost = new Promise<never>((_, reject) => (fail = reject));
    lost.catch(() => undefined);
    this.onLost.add(fail);
    try {
      if (!client.connected) throw new MqttUnavailableError(this.lastError ?? 'connection down');
      const acks: Array<Promise<void>> = [];
      records.forEach((r, index) => {
        const ack = tracker.ack(r.id, () => this.publish(client, slots, r));
        if (!ack) return;
        acks.push(
          ack.catch((err: unknown) => {
            if (!(err instanceof RecordRejectedError)) throw err;
            rejected.push({ index, error: err });
          }),
        );
      });
      await Promise.race([Promise.all(acks), lost]);
    } catch (err) {
      throw err instanceof SluiceError
        ? err
        : new MqttUnavailableError(`publish failed: ${message(err)}`, { cause: err });
    } finally {
      this.onLost.delete(fail);
    }
    return { rejected };
  }

  /** Publishes one record to each of its topics; resolves when the broker acknowledged all. */
  private async publish(client: MqttClient, slots: PacketSlots, r: SinkRecord): Promise<void> {
    const o = this.options;
    const rendered = renderRecord(r.event, o.format);
    const rec = rendered.record;
    const topics = (rec.kind === 'telemetry' ? o.telemetryTopic : o.detectionTopic).render(rec);
    const opts: IClientPublishOptions = { qos: o.qos, retain: o.retain };
    if (o.protocolVersion === '5')
      opts.properties = {
        contentType: rendered.contentType,
        payloadFormatIndicator: o.format === 'json',
        userProperties: {
          [EXPORT_HEADERS.SCHEMA_VERSION]: String(rec.export_schema_version),
          [EXPORT_HEADERS.EVENT_ID]: r.id,
          [EXPORT_HEADERS.KIND]: rec.kind,
        },
        ...(o.messageExpirySeconds !== undefined
          ? { messageExpiryInterval: o.messageExpirySeconds }
          : {}),
      };
    await Promise.all(
      topics.map((topic) => {
        const send = () =>
          client.publishAsync(topic, rendered.body, opts).catch((err: unknown) => {
            const code = (err as { code?: unknown }).code;
            if (typeof code === 'number' && code >= 0x80 && !TRANSIENT_REASON_CODES.has(code))
              throw new PublishRefusedError(
                code,
                message(err).replace(/^Publish error: /, ''),
                topic,
              );
            throw new MqttUnavailableError(`publish to "${topic}" failed: ${message(err)}`, {
              cause: err,
            });
          });
        return o.qos === 0 ? send() : slots.run(send);
      }),
    );
  }
}

// `@sluice/sinks-amqp/testing`: for spec files, test fixtures and benchmarks only (lint enforces it).
// An exchange and a queue of its own on the test broker for one test, with a consumer recording
// every message that reaches the queue.
import { Connection, type AsyncMessage } from 'rabbitmq-client';
import { testUrls, uniqueId, waitFor } from '@sluice/testing';

/** Header of the harness's own markers (see `sync()`); they are not recorded as messages. */
const SYNC_HEADER = 'x-sluice-test-sync';

export interface ReceivedMessage {
  messageId: string | undefined;
  routingKey: string;
  contentType: string | undefined;
  headers: Record<string, unknown>;
  durable: boolean;
  expiration: string | undefined;
  body: Buffer;
}

export interface AmqpTestTopology {
  /** A durable topic exchange, as the sink declares it. */
  exchange: string;
  /** The harness's queue, bound with `bindings`. */
  queue: string;
  /** `AMQP_URL`, optionally through another port (a tcpProxy in front of the broker). */
  url(port?: number): string;
  /** Every message the queue delivered, in order (duplicates show). */
  messages: ReceivedMessage[];
  /** The message id of each message, once the consumer has everything confirmed before the call. */
  storedIds(): Promise<string[]>;
  /**
   * Sends a marker into the queue (confirmed) and waits until the consumer gets it: a queue delivers
   * in order, so every message confirmed before has been consumed then.
   */
  sync(): Promise<void>;
  /** A connection of the harness (not through any proxy), for declarations of a test. */
  conn: Connection;
  /** Deletes the exchange, the queue and every queue in `alsoDelete`, and closes the connection. */
  cleanup(alsoDelete?: string[]): Promise<void>;
}

export async function createAmqpTestTopology(
  prefix = 'sink-amqp',
  bindings: readonly string[] = ['#'],
): Promise<AmqpTestTopology> {
  const id = uniqueId(prefix);
  const exchange = `${id}.x`;
  const queue = `${id}.q`;
  const url = (port?: number) => {
    const u = new URL(testUrls.amqp);
    if (port !== undefined) {
      u.hostname = '127.0.0.1';
      u.port = String(port);
    }
    return u.toString();
  };
  const conn = new Connection({ url: url(), connectionTimeout: 5_000, retryLow: 200 });
  conn.on('error', () => undefined);
  await conn.onConnect(10_000);
  const messages: ReceivedMessage[] = [];
  const markers = new Set<string>();
  // The consumer declares its queue (exclusive to this connection) and the bindings.
  const consumer = conn.createConsumer(
    {
      queue,
      queueOptions: { durable: false, exclusive: true, autoDelete: true },
      exchanges: [{ exchange, type: 'topic', durable: true }],
      queueBindings: bindings.map((routingKey) => ({ queue, exchange, routingKey })),
      qos: { prefetchCount: 200 },
      requeue: false,
    },
    (m: AsyncMessage) => {
      if (m.headers?.[SYNC_HEADER] !== undefined)
        return void markers.add(String(m.headers[SYNC_HEADER]));
      messages.push({
        messageId: m.messageId,
        routingKey: m.routingKey,
        contentType: m.contentType,
        headers: m.headers ?? {},
        durable: m.durable ?? false,
        expiration: m.expiration,
        // rabbitmq-client parses an `application/json` body; its JSON text again (same fields, order, values).
        body: Buffer.isBuffer(m.body) ? m.body : Buffer.from(JSON.stringify(m.body), 'utf8'),
      });
    },
  );
  consumer.on('error', () => undefined);
  let ready = false;
  consumer.once('ready', () => (ready = true));
  try {
    await waitFor('the harness consumer ready', () => ready, { timeoutMs: 10_000 });
  } catch (err) {
    await consumer.close().catch(() => undefined);
    await conn.exchangeDelete({ exchange }).catch(() => undefined);
    await conn.close().catch(() => undefined);
    throw err;
  }
  const syncPub = conn.createPublisher({ confirm: true });
  let n = 0;
  const sync = async () => {
    const marker = `sync-${++n}`;
    await syncPub.send({ routingKey: queue, headers: { [SYNC_HEADER]: marker } }, Buffer.from(''));
    await waitFor('the sync marker consumed', () => markers.has(marker), { timeoutMs: 10_000 });
  };
  return {
    exchange,
    queue,
    url,
    messages,
    conn,
    sync,
    async storedIds() {
      await sync();
      return messages.map((m) => m.messageId ?? '');
    },
    async cleanup(alsoDelete = []) {
      await syncPub.close().catch(() => undefined);
      await consumer.close().catch(() => undefined);
      for (const q of [queue, ...alsoDelete])
        await conn.queueDelete({ queue: q }).catch(() => undefined);
      await conn.exchangeDelete({ exchange }).catch(() => undefined);
      await conn.close().catch(() => undefined);
    },
  };
}

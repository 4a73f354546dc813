import { decodeRecord, EXPORT_HEADERS } from '@sluice/sinks-core';
import {
  describeSinkConformance,
  detectionEvent,
  GOLDEN_EVENTS,
  GOLDEN_RECORDS,
  recordsOf,
  telemetryEvent,
} from '@sluice/sinks-core/testing';
import { tcpProxy, testUrls, uniqueId, waitFor } from '@sluice/testing';
import type { AsyncMessage } from 'rabbitmq-client';
import { AmqpSink } from './sink';
import { createAmqpTestTopology, type AmqpTestTopology } from './testing';

const amqpPort = Number(new URL(testUrls.amqp).port || 5672);

/** The harness binds only eu-west keys: a record of another region has no queue and is returned. */
const BINDINGS = ['telemetry.eu-west.#', 'detection.eu-west.#'];

describeSinkConformance('amqp', async () => {
  const topo = await createAmqpTestTopology('conf', BINDINGS);
  const proxy = await tcpProxy(amqpPort);
  const sink = new AmqpSink({
    url: topo.url(proxy.port),
    exchange: topo.exchange,
    connectTimeoutMs: 1_000,
    heartbeatSeconds: 2,
  });
  return {
    sink,
    storedIds: () => topo.storedIds(),
    outage: { cut: () => proxy.cut(), restore: () => proxy.restore() },
    poisonEvent: (id) => telemetryEvent(id, { region: 'nowhere' }),
    async cleanup() {
      await sink.close(Date.now() + 2_000);
      await proxy.close();
      await topo.cleanup();
    },
  };
});

describe('AmqpSink on the real broker', () => {
  let topo: AmqpTestTopology;
  let sink: AmqpSink | undefined;
  const extraQueues: string[] = [];
  beforeEach(async () => {
    topo = await createAmqpTestTopology('asink', BINDINGS);
  });
  afterEach(async () => {
    await sink?.close(Date.now() + 2_000);
    sink = undefined;
    await topo?.cleanup(extraQueues.splice(0));
  });
  const make = (opts: Partial<ConstructorParameters<typeof AmqpSink>[0]> = {}) =>
    (sink = new AmqpSink({ url: topo.url(), exchange: topo.exchange, ...opts }));
  const received = (n: number) =>
    waitFor(`${n} messages`, () => topo.messages.length >= n && topo.messages);

  it('the broker itself returns a mandatory message no queue is bound for (the poison of the conformance suite)', async () => {
    const pub = topo.conn.createPublisher({ confirm: true });
    const returned = new Promise<string>((r) =>
      pub.on('basic.return', (m) => r(`${m.replyCode} ${m.replyText}`)),
    );
    await pub.send(
      { exchange: topo.exchange, routingKey: 'telemetry.nowhere.x', mandatory: true },
      Buffer.from('x'),
    );
    expect(await returned).toBe('312 NO_ROUTE');
    await pub.close();
  });

  it.each(['json', 'protobuf'] as const)(
    'delivers the golden records (%s): message_id = event_id, the schema version in a header, persistent',
    async (format) => {
      const s = make({ format });
      expect((await s.write(recordsOf([...GOLDEN_EVENTS]))).rejected).toEqual([]);
      const msgs = await received(2);
      expect(msgs.map((m) => decodeRecord(format, m.body))).toEqual(GOLDEN_RECORDS);
      expect(msgs.map((m) => m.messageId)).toEqual(['golden-t-1', 'golden-d-1']);
      expect(msgs.map((m) => m.routingKey)).toEqual([
        'telemetry.eu-west.engine_temp',
        'detection.eu-west.cam-1.person',
      ]);
      for (const [i, m] of msgs.entries()) {
        expect(m.durable).toBe(true);
        expect(m.contentType).toBe(
          format === 'json'
            ? 'application/json'
            : 'application/x-protobuf; proto=sluice.telemetry.v1.Event',
        );
        expect(m.headers).toMatchObject({
          [EXPORT_HEADERS.SCHEMA_VERSION]: 1,
          [EXPORT_HEADERS.EVENT_ID]: GOLDEN_RECORDS[i]!.event_id,
          [EXPORT_HEADERS.KIND]: GOLDEN_RECORDS[i]!.kind,
        });
      }
    },
  );

  it('a frame with several labels is published once, with the other routing keys in CC', async () => {
    const person = uniqueId('person-q');
    const car = uniqueId('car-q');
    extraQueues.push(person, car);
    for (const [q, key] of [
      [person, 'detection.*.*.person'],
      [car, 'detection.*.*.car'],
    ] as const) {
      await topo.conn.queueDeclare({ queue: q, exclusive: true });
      await topo.conn.queueBind({ queue: q, exchange: topo.exchange, routingKey: key });
    }
    const s = make();
    expect((await s.write(recordsOf([GOLDEN_EVENTS[1]!]))).rejected).toEqual([]);
    await received(1);
    const count = async (q: string) =>
      (await topo.conn.queueDeclare({ queue: q, passive: true })).messageCount;
    await waitFor(
      'both label queues',
      async () => (await count(person)) + (await count(car)) === 2,
    );
    expect([await count(person), await count(car)]).toEqual([1, 1]);
    // The queue bound to both keys (eu-west.#) got it once.
    expect(topo.messages).toHaveLength(1);
    expect(topo.messages[0]!.headers['CC']).toEqual(['detection.eu-west.cam-1.car']);
  });

  it('rejects a record no queue is bound for with the broker reason, and delivers the rest', async () => {
    const s = make();
    const res = await s.write(
      recordsOf([telemetryEvent('ok-1'), telemetryEvent('lost', { region: 'us-east' })]),
    );
    await received(1);
    expect(res.rejected.map((r) => [r.index, r.error.name])).toEqual([
      [1, 'UnroutableRecordError'],
    ]);
    expect(res.rejected[0]!.error.message).toMatch(
      /312 NO_ROUTE.*"telemetry\.us-east\.engine_temp"/,
    );
    expect(await topo.storedIds()).toEqual(['ok-1']);
    expect(s.isRetriable(res.rejected[0]!.error)).toBe(false);
  });

  it('a nack of the broker (a full reject-publish queue) fails the write retriably; it succeeds once there is room', async () => {
    const full = uniqueId('full-q');
    extraQueues.push(full);
    await topo.conn.queueDeclare({
      queue: full,
      exclusive: true,
      arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' },
    });
    await topo.conn.queueBind({ queue: full, exchange: topo.exchange, routingKey: 'telemetry.#' });
    const s = make();
    await s.write(recordsOf([telemetryEvent('n-1')]));
    const err = await s.write(recordsOf([telemetryEvent('n-2')], 2)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(s.isRetriable(err)).toBe(true);
    await topo.conn.queuePurge({ queue: full });
    expect((await s.write(recordsOf([telemetryEvent('n-2')], 2))).rejected).toEqual([]);
  });

  it('declares a RabbitMQ stream and writes to it through AMQP 0-9-1 (no stream plugin needed)', async () => {
    const stream = uniqueId('stream');
    extraQueues.push(stream);
    const s = make({ queues: [{ name: stream, type: 'stream', bindings: ['telemetry.#'] }] });
    await s.write(recordsOf([telemetryEvent('st-1'), telemetryEvent('st-2')]));
    const ids: string[] = [];
    const consumer = topo.conn.createConsumer(
      {
        queue: stream,
        queueOptions: { passive: true },
        qos: { prefetchCount: 10 },
        arguments: { 'x-stream-offset': 'first' },
      },
      (m: AsyncMessage) => void ids.push(m.messageId ?? ''),
    );
    try {
      await waitFor('both records read from the stream', () => ids.length >= 2);
      expect(ids).toEqual(['st-1', 'st-2']);
    } finally {
      await consumer.close();
    }
  });

  it('sets the per-message TTL when asked', async () => {
    const s = make({ messageTtlMs: 60_000 });
    await s.write(recordsOf([detectionEvent('ttl-1')]));
    const [m] = await received(1);
    expect(m!.expiration).toBe('60000');
  });

  it('refuses, at connect and permanently, an exchange that exists with another type', async () => {
    const s = make({ exchangeType: 'fanout' });
    const err = await s.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).name).toBe('AmqpDeclareError');
    expect(s.isRetriable(err)).toBe(false);
  });

  it('validates options up front, naming the option', () => {
    expect(() => new AmqpSink({ url: 'http://x' })).toThrow(/url: must be an amqp:\/\//);
    expect(() => new AmqpSink({ url: 'amqp://x', telemetryRoutingKey: 't.{label}' })).toThrow(
      /telemetryRoutingKey: unknown placeholder \{label\} .*for telemetry/,
    );
    expect(() => new AmqpSink({ url: 'amqp://x', detectionRoutingKey: 'd.#.{label}' })).toThrow(
      /detectionRoutingKey: .*may contain only/,
    );
    expect(() => new AmqpSink({ url: 'amqp://x', format: 'xml' as never })).toThrow(/format/);
    expect(new AmqpSink({ url: 'amqp://x' }).options.messageTtlMs).toBeUndefined();
    expect(new AmqpSink({ url: 'amqp://x' }).options).toMatchObject({
      exchange: 'sluice.export',
      exchangeType: 'topic',
      mandatory: true,
      persistent: true,
      format: 'json',
      name: 'amqp',
    });
  });
});

import mqtt from 'mqtt';
import { EXPORT_HEADERS, decodeRecord } from '@sluice/sinks-core';
import {
  describeSinkConformance,
  GOLDEN_EVENTS,
  GOLDEN_RECORDS,
  recordsOf,
  telemetryEvent,
} from '@sluice/sinks-core/testing';
import { tcpProxy, testUrls, uniqueId, waitFor, type TcpProxy } from '@sluice/testing';
import { MqttUnavailableError } from './errors';
import { MqttSink } from './sink';
import { createMqttTestTopics, type MqttTestTopics } from './testing';

const mqttPort = Number(new URL(testUrls.mqtt).port || 1883);

/** A region that makes the first topic level `$SYS`: Mosquitto refuses such publishes (0x87). */
const SYS = '$SYS';

describeSinkConformance('mqtt', async () => {
  const topics = await createMqttTestTopics('conf');
  const proxy = await tcpProxy(mqttPort);
  const sink = new MqttSink({
    url: topics.url(proxy.port),
    clientId: uniqueId('conf-client'),
    // QoS 2 over a persistent session: exactly once to the broker across the proxy's cuts.
    qos: 2,
    telemetryTopic: `{region}/${topics.root}/telemetry/{device_id}`,
    detectionTopic: `{region}/${topics.root}/detections/{stream_id}`,
    connectTimeoutMs: 1_000,
    reconnectPeriodMs: 200,
    keepaliveSeconds: 2,
  });
  return {
    sink,
    storedIds: () => topics.storedIds(),
    outage: { cut: () => proxy.cut(), restore: () => proxy.restore() },
    poisonEvent: (id) => telemetryEvent(id, { region: SYS }),
    async cleanup() {
      await sink.close(Date.now() + 2_000);
      await proxy.close();
      await topics.cleanup([sink.options.clientId]);
    },
  };
});

describe('MqttSink on the real broker', () => {
  let topics: MqttTestTopics;
  let proxy: TcpProxy | undefined;
  const sinks: MqttSink[] = [];
  beforeEach(async () => {
    topics = await createMqttTestTopics('msink');
  });
  afterEach(async () => {
    await Promise.all(sinks.map((s) => s.close(Date.now() + 2_000)));
    await proxy?.close();
    proxy = undefined;
    await topics?.cleanup(sinks.splice(0).map((s) => s.options.clientId));
  });
  const make = (opts: Partial<ConstructorParameters<typeof MqttSink>[0]> = {}) => {
    const s = new MqttSink({
      url: topics.url(),
      clientId: uniqueId('msink-client'),
      telemetryTopic: `${topics.root}/telemetry/{region}/{device_id}`,
      detectionTopic: `${topics.root}/detections/{stream_id}/{label}`,
      ...opts,
    });
    sinks.push(s);
    return s;
  };
  const received = (n: number) =>
    waitFor(`${n} messages`, () => topics.messages.length >= n && topics.messages);

  it('the broker itself refuses a $SYS publish with reason 0x87 (the poison of the conformance suite)', async () => {
    const c = mqtt.connect(topics.url(), { clientId: uniqueId('raw'), protocolVersion: 5 });
    try {
      await waitFor('raw client', () => c.connected);
      await expect(
        c.publishAsync(`${SYS}/${topics.root}/x`, 'x', { qos: 1 }),
      ).rejects.toMatchObject({ code: 0x87 });
    } finally {
      await c.endAsync(true);
    }
  });

  it.each(['json', 'protobuf'] as const)(
    'delivers the golden records (%s, MQTT 5): the event id, kind and schema version as user properties',
    async (format) => {
      const s = make({ format, messageExpirySeconds: 600 });
      expect((await s.write(recordsOf([...GOLDEN_EVENTS]))).rejected).toEqual([]);
      const msgs = await received(3);
      // The frame holds a person and a car: one message on each label's topic.
      expect(msgs.map((m) => m.topic).sort()).toEqual(
        [
          `${topics.root}/detections/cam-1/car`,
          `${topics.root}/detections/cam-1/person`,
          `${topics.root}/telemetry/eu-west/pump-ü-7`,
        ].sort(),
      );
      const byId = new Map(
        msgs.map((m) => [m.properties?.userProperties?.[EXPORT_HEADERS.EVENT_ID], m]),
      );
      expect(
        GOLDEN_RECORDS.map((g) => decodeRecord(format, byId.get(g.event_id)!.payload)),
      ).toEqual(GOLDEN_RECORDS);
      for (const m of msgs) {
        expect(m.qos).toBe(1);
        expect(m.properties?.userProperties?.[EXPORT_HEADERS.SCHEMA_VERSION]).toBe('1');
        expect(m.properties?.contentType).toBe(
          format === 'json'
            ? 'application/json'
            : 'application/x-protobuf; proto=sluice.telemetry.v1.Event',
        );
        expect(m.properties?.messageExpiryInterval).toBeGreaterThan(590);
      }
    },
  );

  it('speaks MQTT 3.1.1: the golden JSON records arrive (event_id in the payload)', async () => {
    const s = make({ protocolVersion: '3.1.1', qos: 2 });
    expect((await s.write(recordsOf([...GOLDEN_EVENTS]))).rejected).toEqual([]);
    await received(3);
    expect(new Set(await topics.storedIds())).toEqual(new Set(['golden-t-1', 'golden-d-1']));
    const records = topics.records('json');
    expect(records.find((r) => r.kind === 'telemetry')).toEqual(GOLDEN_RECORDS[0]);
    expect(records.find((r) => r.kind === 'detection')).toEqual(GOLDEN_RECORDS[1]);
    expect(topics.messages.every((m) => m.properties?.userProperties === undefined)).toBe(true);
  });

  it('QoS 0 publishes without acks; retain keeps the last record of a topic for new subscribers', async () => {
    const s0 = make({ qos: 0 });
    expect((await s0.write(recordsOf([telemetryEvent('q0-1')]))).rejected).toEqual([]);
    await received(1);
    const sr = make({ retain: true });
    await sr.write(recordsOf([telemetryEvent('rt-1', { deviceId: 'dev-r' })]));
    await received(2);
    const late = await topics.subscriber(`${topics.root}/telemetry/eu-west/dev-r`);
    const [m] = await waitFor(
      'the retained message',
      () => late.messages.length > 0 && late.messages,
    );
    expect(m!.retain).toBe(true);
    expect(decodeRecord('json', m!.payload).event_id).toBe('rt-1');
  });

  it('keeps data out of the topic structure: one level per value, no wildcards', async () => {
    const s = make();
    await s.write(recordsOf([telemetryEvent('inj', { deviceId: 'a/b/+/#' })]));
    const [m] = await received(1);
    expect(m!.topic).toBe(`${topics.root}/telemetry/eu-west/a_b____`);
  });

  it('rejects what the broker refuses, with its reason, and delivers the rest', async () => {
    const s = make({ telemetryTopic: `{region}/${topics.root}/t/{device_id}` });
    const res = await s.write(
      recordsOf([telemetryEvent('ok-1'), telemetryEvent('sys', { region: SYS })]),
    );
    expect(res.rejected.map((r) => [r.index, r.error.name])).toEqual([[1, 'PublishRefusedError']]);
    expect(res.rejected[0]!.error.message).toMatch(/0x87: Not authorized/);
    await received(1);
    expect(await topics.storedIds()).toEqual(['ok-1']);
  });

  it('keeps within the broker receive maximum: 200 QoS 2 records in one write, none refused', async () => {
    const s = make({ qos: 2 });
    const batch = Array.from({ length: 200 }, (_, i) => telemetryEvent(`rm-${i}`));
    expect((await s.write(recordsOf(batch))).rejected).toEqual([]);
    await received(200);
    expect(new Set(await topics.storedIds()).size).toBe(200);
  });

  it('QoS 1 across a cut connection: a write fails rather than resolve without acks; the retry loses nothing, and any duplicate carries its event id', async () => {
    proxy = await tcpProxy(mqttPort);
    const s = make({
      url: topics.url(proxy.port),
      connectTimeoutMs: 1_000,
      reconnectPeriodMs: 100,
      keepaliveSeconds: 2,
    });
    await s.connect();
    const first = Array.from({ length: 50 }, (_, i) => telemetryEvent(`c1-${i}`));
    // Cut before any ack can come back: the write must not resolve.
    const writing = s.write(recordsOf(first));
    proxy.cut();
    await expect(writing).rejects.toThrow(MqttUnavailableError);
    const more = Array.from({ length: 10 }, (_, i) => telemetryEvent(`c2-${i}`));
    await expect(s.write(recordsOf(more, 2))).rejects.toThrow(/unavailable/);
    expect((await s.health()).ok).toBe(false);
    proxy.restore();
    // The runner's retry: the same records again once the broker answers.
    await waitFor('reconnected', async () => (await s.health()).ok);
    await s.write(recordsOf(first));
    await s.write(recordsOf(more, 2));
    const all = [...first, ...more].map((e) => e.kind!.value.eventId);
    await waitFor('every record delivered', async () =>
      all.every((id) =>
        topics.messages.some((m) => m.properties?.userProperties?.[EXPORT_HEADERS.EVENT_ID] === id),
      ),
    );
    const ids = await topics.storedIds();
    expect(new Set(ids)).toEqual(new Set(all));
    // A duplicate is the same record again.
    const byId = new Map<string, string>();
    for (const m of topics.messages) {
      const id = m.properties!.userProperties![EXPORT_HEADERS.EVENT_ID] as string;
      const body = m.payload.toString();
      if (byId.has(id)) expect(body).toBe(byId.get(id));
      byId.set(id, body);
    }
  });

  it('validates options up front, naming the option', () => {
    expect(() => new MqttSink({ url: 'http://x' })).toThrow(/url: must be an mqtt:\/\//);
    expect(() => new MqttSink({ url: 'mqtt://x', qos: 3 as never })).toThrow(
      /qos: must be 0, 1 or 2/,
    );
    expect(() => new MqttSink({ url: 'mqtt://x', telemetryTopic: 'a/+/{region}' })).toThrow(
      /telemetryTopic: .*wildcards/,
    );
    expect(() => new MqttSink({ url: 'mqtt://x', detectionTopic: '$SYS/{label}' })).toThrow(
      /reserved for the broker/,
    );
    expect(
      () => new MqttSink({ url: 'mqtt://x', protocolVersion: '3.1.1', messageExpirySeconds: 5 }),
    ).toThrow(/messageExpirySeconds: message expiry needs protocolVersion 5/);
    expect(new MqttSink({ url: 'mqtt://x' }).options).toMatchObject({
      protocolVersion: '5',
      qos: 1,
      retain: false,
      format: 'json',
      name: 'mqtt',
      clientId: expect.stringMatching(/^sluice-mqtt-/),
    });
  });
});

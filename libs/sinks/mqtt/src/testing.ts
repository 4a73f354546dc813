// `@sluice/sinks-mqtt/testing`: for spec files, test fixtures and benchmarks only (lint enforces it).
// A topic tree of its own on the test broker for one test, with a subscriber recording every message.
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { decodeRecord, EXPORT_HEADERS, type ExportRecord } from '@sluice/sinks-core';
import { testUrls, uniqueId, waitFor } from '@sluice/testing';

export interface ReceivedMqttMessage {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  properties: IPublishPacket['properties'];
}

export interface MqttTestTopics {
  /** A unique topic level for this test: put it in the sink's templates. */
  root: string;
  /** `MQTT_URL`, optionally through another port (a tcpProxy in front of the broker). */
  url(port?: number): string;
  /** Every message the subscriber got, in order (duplicates show). */
  messages: ReceivedMqttMessage[];
  /**
   * The event id of each message (its MQTT 5 user property, else the record in its payload), once
   * the subscriber has everything the broker acknowledged before the call (see {@link sync}).
   */
  storedIds(): Promise<string[]>;
  /**
   * Publishes a marker through the subscriber's own connection and waits until it comes back: the
   * broker queues a subscriber's messages in order, so every message it acknowledged before has
   * been delivered then.
   */
  sync(): Promise<void>;
  /** The record of each message (`format` of the sink). */
  records(format?: 'json' | 'protobuf'): ExportRecord[];
  /** Subscribes another client (MQTT 5, QoS 2) to `filter`, e.g. to see retained messages. */
  subscriber(filter: string): Promise<{ messages: ReceivedMqttMessage[]; end(): Promise<void> }>;
  /** Clears retained messages on the topics seen, forgets the sessions of `clientIds`, ends the subscriber. */
  cleanup(clientIds?: string[]): Promise<void>;
}

function record(m: IPublishPacket): ReceivedMqttMessage {
  return {
    topic: m.topic,
    payload: Buffer.from(m.payload),
    qos: m.qos,
    retain: m.retain,
    properties: m.properties,
  };
}

const SYNC_LEVEL = '_sync';

async function subscribe(url: string, filters: string[]) {
  const messages: ReceivedMqttMessage[] = [];
  const markers = new Set<string>();
  const client: MqttClient = mqtt.connect(url, {
    clientId: uniqueId('sub'),
    protocolVersion: 5,
    clean: true,
    reconnectPeriod: 200,
  });
  client.on('error', () => undefined);
  client.on('message', (topic, payload, packet) => {
    if (topic.split('/').includes(SYNC_LEVEL)) markers.add(payload.toString());
    else messages.push(record(packet));
  });
  await waitFor('the test subscriber connected', () => client.connected, { timeoutMs: 10_000 });
  // Retain as published: a retained message shows its flag to this live subscription too.
  await client.subscribeAsync(filters, { qos: 2, rap: true });
  return {
    client,
    messages,
    markers,
    end: () => client.endAsync(true).catch(() => undefined),
  };
}

/**
 * A subscriber (MQTT 5, QoS 2, not through any proxy) on `<root>/#` and, for templates whose first
 * level comes from the data, `+/<root>/#`.
 */
export async function createMqttTestTopics(prefix = 'sluice-test'): Promise<MqttTestTopics> {
  const root = uniqueId(prefix);
  const url = (port?: number) => {
    const u = new URL(testUrls.mqtt);
    if (port !== undefined) {
      u.hostname = '127.0.0.1';
      u.port = String(port);
    }
    return u.toString();
  };
  const main = await subscribe(url(), [`${root}/#`, `+/${root}/#`]);
  const extra: Array<{ end(): Promise<void> }> = [];
  let n = 0;
  const sync = async () => {
    const marker = `sync-${++n}`;
    await main.client.publishAsync(`${root}/${SYNC_LEVEL}`, marker, { qos: 2 });
    await waitFor('the sync marker back', () => main.markers.has(marker), { timeoutMs: 10_000 });
  };
  const idOf = (m: ReceivedMqttMessage) => {
    const prop = m.properties?.userProperties?.[EXPORT_HEADERS.EVENT_ID];
    if (typeof prop === 'string') return prop;
    return decodeRecord('json', m.payload).event_id;
  };
  return {
    root,
    url,
    messages: main.messages,
    sync,
    async storedIds() {
      await sync();
      return main.messages.map(idOf);
    },
    records: (format = 'json') => main.messages.map((m) => decodeRecord(format, m.payload)),
    async subscriber(filter) {
      const s = await subscribe(url(), [filter]);
      extra.push(s);
      return { messages: s.messages, end: s.end };
    },
    async cleanup(clientIds = []) {
      const retained = [...new Set(main.messages.filter((m) => m.retain).map((m) => m.topic))];
      const c = mqtt.connect(url(), { clientId: uniqueId('cleanup'), protocolVersion: 5 });
      c.on('error', () => undefined);
      try {
        await waitFor('the cleanup client connected', () => c.connected, { timeoutMs: 5_000 });
        // An empty retained message clears the topic's retained one.
        for (const topic of retained) await c.publishAsync(topic, '', { retain: true, qos: 1 });
      } finally {
        await c.endAsync(true).catch(() => undefined);
      }
      for (const clientId of clientIds) {
        const s = mqtt.connect(url(), {
          clientId,
          clean: true,
          protocolVersion: 5,
          reconnectPeriod: 0,
        });
        s.on('error', () => undefined);
        await waitFor('the session cleared', () => s.connected, { timeoutMs: 5_000 }).catch(
          () => undefined,
        );
        await s.endAsync(true).catch(() => undefined);
      }
      await Promise.all([...extra, main].map((s) => s.end()));
    },
  };
}

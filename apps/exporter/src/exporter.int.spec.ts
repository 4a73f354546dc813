import { CONTENT_TYPES, encodeBatch, HEADERS } from '@sluice/contracts';
import { publishDurable } from '@sluice/jetstream';
import { decodeRecord, type ExportFormat } from '@sluice/sinks-core';
import { createAmqpTestTopology, type AmqpTestTopology } from '@sluice/sinks-amqp/testing';
import { createMqttTestTopics, type MqttTestTopics } from '@sluice/sinks-mqtt/testing';
import { GOLDEN_EVENTS, GOLDEN_RECORDS, telemetryEvent } from '@sluice/sinks-core/testing';
import { mongoTestUrl } from '@sluice/sinks-mongodb/testing';
import { natsFixture, spawnService, uniqueId, waitFor, type NatsFixture } from '@sluice/testing';
import {
  exporterHarness,
  FAST,
  MAIN,
  waitForIds,
  type ExporterHarness,
} from './test-fixtures/harness';

const byId = <T extends { event_id: string }>(rs: T[]) =>
  [...rs].sort((a, b) => (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0));

describe('exporter process', () => {
  let nats: NatsFixture;
  let h: ExporterHarness;
  const rabbit: AmqpTestTopology[] = [];
  const brokers: Array<{ topics: MqttTestTopics; clientIds: string[] }> = [];

  beforeAll(async () => {
    nats = await natsFixture();
  });
  beforeEach(async () => {
    h = await exporterHarness(nats);
  });
  afterEach(async () => {
    await h.cleanup();
    for (const t of rabbit.splice(0)) await t.cleanup();
    for (const b of brokers.splice(0)) await b.topics.cleanup(b.clientIds);
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  it('every destination receives the golden records with the same fields and values; filters narrow frames; replays reach their target only', async () => {
    const [rabbitJson, rabbitProto] = [
      await createAmqpTestTopology('exp-json'),
      await createAmqpTestTopology('exp-proto'),
    ];
    rabbit.push(rabbitJson!, rabbitProto!);
    const amqp = (name: string, t: AmqpTestTopology, format: ExportFormat) => ({
      name,
      type: 'amqp',
      format,
      ...FAST,
      options: { url: t.url(), exchange: t.exchange },
    });
    const topics = await createMqttTestTopics('exp');
    const clientIds = [uniqueId('exp-mqtt-json'), uniqueId('exp-mqtt-proto')];
    brokers.push({ topics, clientIds });
    const mqtt = (name: string, format: ExportFormat, clientId: string) => ({
      name,
      type: 'mqtt',
      format,
      ...FAST,
      options: {
        url: topics.url(),
        clientId,
        qos: 2,
        // One topic per frame (no {label}): one message per record, like every other destination.
        telemetryTopic: `${topics.root}/${format}/t/{device_id}`,
        detectionTopic: `${topics.root}/${format}/d/{stream_id}`,
      },
    });
    await h.writeConfig({
      destinations: [
        mqtt('mqtt-json', 'json', clientIds[0]!),
        mqtt('mqtt-proto', 'protobuf', clientIds[1]!),
        amqp('rabbit-json', rabbitJson!, 'json'),
        amqp('rabbit-proto', rabbitProto!, 'protobuf'),
        { name: 'lines', type: 'file', ...FAST, options: { dir: h.dir('lines') } },
        {
          name: 'table',
          type: 'file',
          format: 'csv',
          replay: false,
          ...FAST,
          options: { dir: h.dir('table') },
        },
        {
          name: 'warehouse',
          type: 'postgres',
          ...FAST,
          options: { url: h.pg.url(), schema: h.pg.schema },
        },
        {
          name: 'docs',
          type: 'mongodb',
          ...FAST,
          options: { url: mongoTestUrl(), database: h.mongo.name, writeConcernW: 1 },
        },
        {
          name: 'people',
          type: 'file',
          ...FAST,
          filters: { kinds: ['detection'], labels: ['person'], min_confidence: 0.9 },
          options: { dir: h.dir('people') },
        },
      ],
    });
    await h.start();
    await h.publish([...GOLDEN_EVENTS]);
    const golden = byId([...GOLDEN_RECORDS]);
    const all = new Set(golden.map((g) => g.event_id));

    await waitForIds('json lines', () => h.fileIds('lines'), all);
    expect(byId(await h.fileRecords('lines'))).toEqual(golden);
    await waitForIds('csv', () => h.fileIds('table'), all);
    expect(byId(await h.fileRecords('table'))).toEqual(golden);
    await waitForIds('postgres', () => h.pg.storedIds(), all);
    expect(byId(await h.pg.records())).toEqual(golden);
    await waitForIds('mongodb', () => h.mongo.allIds(), all);
    expect(byId(await h.mongoRecords())).toEqual(golden);
    await waitFor(
      'mqtt',
      async () => (await topics.storedIds()).length >= 2 * all.size || undefined,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    for (const format of ['json', 'protobuf'] as const) {
      const got = topics.messages.filter((m) => m.topic.startsWith(`${topics.root}/${format}/`));
      expect(byId(got.map((m) => decodeRecord(format, m.payload)))).toEqual(golden);
    }
    for (const [t, format] of [
      [rabbitJson!, 'json'],
      [rabbitProto!, 'protobuf'],
    ] as const) {
      await waitForIds(`rabbitmq ${format}`, () => t.storedIds(), all);
      expect(byId(t.messages.map((m) => decodeRecord(format, m.body)))).toEqual(golden);
    }

    const frame = GOLDEN_RECORDS.find((g) => g.kind === 'detection')!;
    await waitForIds('people', () => h.fileIds('people'), new Set([frame.event_id]));
    expect(await h.fileRecords('people')).toEqual([
      { ...frame, detections: frame.detections.filter((d) => d.label === 'person') },
    ]);

    // A replay for exporter-lines (sluice replay --target exporter-lines) reaches that destination.
    const replayed = telemetryEvent(uniqueId('replayed'));
    await publishDurable(
      nats.js,
      h.topo.replay('exporter-lines', 'eu-west'),
      encodeBatch({ batchId: 'r1', events: [replayed] }),
      {
        msgId: uniqueId('replay'),
        contentType: CONTENT_TYPES.EVENT_BATCH,
        headers: {
          [HEADERS.SOURCE_STREAM]: h.topo.streams.clean.name,
          [HEADERS.SOURCE_SEQUENCE]: '1',
          [HEADERS.SOURCE_SUBJECT]: h.topo.clean('eu-west'),
        },
      },
    );
    const id = replayed.kind!.value.eventId;
    await waitForIds('replayed record', () => h.fileIds('lines'), new Set([id]));
    // The others were settled when the live batch was; a live batch published after the replay is
    // stored by them while the replay never is.
    const after = telemetryEvent(uniqueId('after'));
    await h.publish([after]);
    await waitForIds(
      'later live record',
      () => h.pg.storedIds(),
      new Set([after.kind!.value.eventId]),
    );
    await waitForIds(
      'later live record',
      () => h.fileIds('table'),
      new Set([after.kind!.value.eventId]),
    );
    expect(await h.pg.storedIds()).not.toContain(id);
    expect(await h.fileIds('table')).not.toContain(id);
  });

  it('a malformed destinations file fails the start, naming the file, the path inside it and the reason', async () => {
    await h.writeText(
      [
        'destinations:',
        '  - name: ok',
        '    type: file',
        `    options: { dir: "${h.dir('ok')}" }`,
        '  - name: broken',
        '    type: file',
        `    options: { dir: "${h.dir('b')}", topic: "detections/{label}" }`,
        '',
      ].join('\n'),
    );
    const p = spawnService(MAIN, h.env);
    expect(await p.exited).toBe(1);
    const fatal = p.lines.find((l) => l.includes('exporter failed to start'));
    expect(fatal).toBeDefined();
    expect(fatal).toContain(
      `${h.configFile}: destinations[1].options.topic: is not an option of a file destination`,
    );
    expect(p.lines.some((l) => l.includes('exporter running'))).toBe(false);
  });
});

import { HEADERS, type Event } from '@sluice/contracts';
import { createAmqpTestTopology, type AmqpTestTopology } from '@sluice/sinks-amqp/testing';
import { EVENT_DLQ_HEADERS } from '@sluice/sinks-core';
import { detectionEvent, telemetryEvent } from '@sluice/sinks-core/testing';
import { mongoTestUrl } from '@sluice/sinks-mongodb/testing';
import { createMqttTestTopics, type MqttTestTopics } from '@sluice/sinks-mqtt/testing';
import {
  natsFixture,
  tcpProxy,
  testUrls,
  uniqueId,
  waitFor,
  type NatsFixture,
  type TcpProxy,
} from '@sluice/testing';
import {
  duplicates,
  exporterHarness,
  FAST,
  metric,
  waitForIds,
  type ExporterHarness,
} from './test-fixtures/harness';

const pgPort = Number(new URL(testUrls.postgres).port || 5432);

/** `batches` clean batches of `size` events (a frame first in every tenth), with their ids. */
function workload(
  prefix: string,
  batches: number,
  size: number,
): { batches: Event[][]; ids: Set<string> } {
  const out: Event[][] = [];
  for (let b = 0; b < batches; b++)
    out.push(
      Array.from({ length: size }, (_, i) =>
        i === 0 && b % 10 === 0
          ? detectionEvent(`${prefix}-${b}-${i}`)
          : telemetryEvent(`${prefix}-${b}-${i}`, { deviceId: `dev-${i % 5}` }),
      ),
    );
  return { batches: out, ids: new Set(out.flat().map((e) => e.kind!.value.eventId)) };
}

describe('exporter: isolation, dead letters, crashes', () => {
  let nats: NatsFixture;
  let h: ExporterHarness;
  let proxy: TcpProxy | undefined;
  let rabbit: AmqpTestTopology | undefined;
  let broker: { topics: MqttTestTopics; clientId: string } | undefined;

  beforeAll(async () => {
    nats = await natsFixture();
  });
  beforeEach(async () => {
    h = await exporterHarness(nats);
  });
  afterEach(async () => {
    await h.cleanup();
    await proxy?.close();
    proxy = undefined;
    await rabbit?.cleanup();
    rabbit = undefined;
    await broker?.topics.cleanup([broker.clientId]);
    broker = undefined;
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  it('a destination that is down does not hold back the others: they complete while it is held, then it catches up exactly once', async () => {
    proxy = await tcpProxy(pgPort);
    rabbit = await createAmqpTestTopology('exp-iso');
    broker = { topics: await createMqttTestTopics('exp-iso'), clientId: uniqueId('exp-iso') };
    const { topics, clientId } = broker;
    await h.writeConfig({
      destinations: [
        { name: 'files', type: 'file', ...FAST, options: { dir: h.dir('files') } },
        {
          name: 'broker',
          type: 'mqtt',
          ...FAST,
          options: {
            url: topics.url(),
            clientId,
            telemetryTopic: `${topics.root}/t/{device_id}`,
            detectionTopic: `${topics.root}/d/{stream_id}`,
          },
        },
        {
          name: 'rabbit',
          type: 'amqp',
          ...FAST,
          options: { url: rabbit.url(), exchange: rabbit.exchange },
        },
        {
          name: 'docs',
          type: 'mongodb',
          ...FAST,
          options: { url: mongoTestUrl(), database: h.mongo.name, writeConcernW: 1 },
        },
        {
          name: 'warehouse',
          type: 'postgres',
          ...FAST,
          options: {
            url: h.pg.url(proxy.port),
            schema: h.pg.schema,
            connectionTimeoutMs: 1_000,
            poolSize: 2,
          },
        },
      ],
    });
    await h.start();
    const warm = telemetryEvent(uniqueId('warm'));
    await h.publish([warm]);
    const warmIds = new Set([warm.kind!.value.eventId]);
    await waitForIds('warm-up in postgres', () => h.pg.storedIds(), warmIds);

    proxy.cut();
    const { batches, ids } = workload('iso', 60, 20);
    for (const b of batches) await h.publish(b);

    // Progress of the destinations that are up, sampled while PostgreSQL is cut off.
    const samples: Array<Record<'files' | 'docs' | 'mqtt' | 'amqp' | 'warehouse', number>> = [];
    const total = ids.size + 1;
    await waitFor(
      'files, mongodb, mqtt and rabbitmq complete while postgres is cut off',
      async () => {
        const s = {
          files: new Set(await h.fileIds('files')).size,
          docs: (await h.mongo.allIds()).length,
          mqtt: new Set(await topics.storedIds()).size,
          amqp: new Set(await rabbit!.storedIds()).size,
          warehouse: (await h.pg.storedIds()).length,
        };
        samples.push(s);
        return s.files === total && s.docs === total && s.mqtt === total && s.amqp === total;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const last = samples.at(-1)!;
    // Held: PostgreSQL has the warm-up only, while the others hold everything.
    expect(last.warehouse).toBe(1);
    expect(samples.every((s) => s.warehouse === 1)).toBe(true);

    proxy.restore();
    const stored = await waitForIds(
      'postgres after the restore',
      () => h.pg.storedIds(),
      new Set([...ids, ...warmIds]),
    );
    expect(stored).toHaveLength(ids.size + 1);
    expect(await h.mongo.allIds()).toHaveLength(ids.size + 1);
    expect((await nats.readAll(h.topo.streams.dlq.name)).length).toBe(0);
  });

  it('a record one destination refuses goes to dlq.exporter with the destination and the reason; the others store it', async () => {
    await h.writeConfig({
      destinations: [
        { name: 'files', type: 'file', ...FAST, options: { dir: h.dir('files') } },
        {
          name: 'warehouse',
          type: 'postgres',
          ...FAST,
          options: { url: h.pg.url(), schema: h.pg.schema },
        },
      ],
    });
    await h.start();
    const good = [telemetryEvent(uniqueId('good')), telemetryEvent(uniqueId('good'))];
    // PostgreSQL's text refuses a NUL character; JSON lines carry it.
    const poison = telemetryEvent(uniqueId('poison'), { deviceId: 'dev\u0000nul' });
    await h.publish([good[0]!, poison, good[1]!]);
    const goodIds = new Set(good.map((e) => e.kind!.value.eventId));
    const poisonId = poison.kind!.value.eventId;

    await waitForIds('files', () => h.fileIds('files'), new Set([...goodIds, poisonId]));
    await waitForIds('postgres', () => h.pg.storedIds(), goodIds);
    const dead = await waitFor(
      'the dead letter',
      async () => {
        const msgs = await nats.readAll(h.topo.streams.dlq.name);
        return msgs.length > 0 ? msgs : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(dead).toHaveLength(1);
    const letter = dead[0]!;
    expect(letter.subject).toBe(h.topo.dlq('exporter'));
    const header = (name: string) => letter.headers?.get(name);
    expect(header(HEADERS.DLQ_SERVICE)).toBe('exporter-warehouse');
    expect(header(HEADERS.DLQ_ERROR_CLASS)).toBe('RowRejectedError');
    expect(header(HEADERS.DLQ_ERROR)).toMatch(/22021|invalid byte sequence/);
    expect(header(EVENT_DLQ_HEADERS.EVENT_ID)).toBe(poisonId);
    expect(header(EVENT_DLQ_HEADERS.EVENT_INDEX)).toBe('1');
    expect(await h.pg.storedIds()).not.toContain(poisonId);
  });

  it('a destination that cannot start is restarted with back-off and makes the exporter unready, while the others export; removing it makes it ready', async () => {
    const files = { name: 'files', type: 'file', ...FAST, options: { dir: h.dir('files') } };
    await h.writeConfig({
      destinations: [
        files,
        {
          name: 'series',
          type: 'mongodb',
          ...FAST,
          // The local MongoDB-wire server has no time-series collections: refused at connect, for good.
          options: {
            url: mongoTestUrl(),
            database: h.mongo.name,
            writeConcernW: 1,
            timeseries: true,
          },
        },
      ],
    });
    const p = await h.start();
    const port = await h.opsPort(p);
    const readyz = async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
    const e = telemetryEvent(uniqueId('flows'));
    await h.publish([e]);
    await waitForIds('files', () => h.fileIds('files'), new Set([e.kind!.value.eventId]));
    expect(await readyz()).toBe(503);
    expect(await metric(port, 'sluice_exporter_destination_up', 'destination="series"')).toBe(0);
    expect(await metric(port, 'sluice_exporter_destination_up', 'destination="files"')).toBe(1);
    await waitFor(
      'a restart attempt',
      async () =>
        ((await metric(
          port,
          'sluice_exporter_destination_restarts_total',
          'destination="series"',
        )) ?? 0) >= 1,
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    expect(
      p.lines.some((l) => l.includes('SinkUnsupportedError') || l.includes('time-series')),
    ).toBe(true);

    await h.writeConfig({ destinations: [files] });
    await p.waitForLine(/"removed":\["series"\].*destinations file reloaded/, 30_000);
    await waitFor('ready', async () => (await readyz()) === 200, { timeoutMs: 15_000 });
  });

  it('killed with SIGKILL mid-stream and restarted: nothing lost; none twice in PostgreSQL and MongoDB, duplicates in files identifiable by event_id', async () => {
    const slow = { ...FAST, batch: { max_messages: 1, linger: 0 } };
    await h.writeConfig({
      destinations: [
        { name: 'files', type: 'file', ...slow, options: { dir: h.dir('files') } },
        {
          name: 'docs',
          type: 'mongodb',
          ...slow,
          options: { url: mongoTestUrl(), database: h.mongo.name, writeConcernW: 1 },
        },
        {
          name: 'warehouse',
          type: 'postgres',
          ...slow,
          options: { url: h.pg.url(), schema: h.pg.schema },
        },
      ],
    });
    const { batches, ids } = workload('kill', 200, 25);
    for (const b of batches) await h.publish(b);

    const first = await h.start();
    const atKill = await waitFor(
      'some records stored',
      async () => {
        const n = (await h.pg.storedIds()).length;
        return n > 0 ? n : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 10 },
    );
    first.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    expect(atKill).toBeLessThan(ids.size);

    await h.start();
    const pgIds = await waitForIds('postgres', () => h.pg.storedIds(), ids, 120_000);
    const mongoIds = await waitForIds('mongodb', () => h.mongo.allIds(), ids, 120_000);
    const fileIds = await waitForIds('files', () => h.fileIds('files'), ids, 120_000);
    expect(pgIds.sort()).toEqual([...ids].sort());
    expect(mongoIds.sort()).toEqual([...ids].sort());
    expect(new Set(fileIds)).toEqual(ids);
    // At-least-once to files: a line written but not acked before the kill is written again, the
    // same record under the same event_id.
    const copies = new Map<string, string>();
    for (const r of await h.fileRecords('files')) {
      const text = JSON.stringify(r);
      expect(copies.get(r.event_id) ?? text).toBe(text);
      copies.set(r.event_id, text);
    }
    console.info(`files after SIGKILL: ${duplicates(fileIds)} duplicate line(s) of ${ids.size}`);
  });
});

import { SinkUnsupportedError } from '@sluice/sinks-core';
import {
  describeSinkConformance,
  detectionEvent,
  recordsOf,
  telemetryEvent,
} from '@sluice/sinks-core/testing';
import { tcpProxy, waitFor } from '@sluice/testing';
import { MongoServerError } from 'mongodb';
import { createMongoTestDatabase, mongoTestUrl } from './test-support';
import { MongoSink } from './sink';

const ferretPort = Number(new URL(mongoTestUrl()).port || 27017);

/** An attribute key with a dot: the wire accepts it, the server refuses it as a field name. */
const DOTTED = { 'gps.fix': '3d' };

describeSinkConformance('mongodb', async () => {
  const mdb = await createMongoTestDatabase('conf');
  const proxy = await tcpProxy(ferretPort);
  const sink = new MongoSink({
    url: mongoTestUrl(proxy.port),
    database: mdb.name,
    serverSelectionTimeoutMs: 1_500,
    connectTimeoutMs: 1_000,
    socketTimeoutMs: 5_000,
    writeConcernW: 1,
  });
  return {
    sink,
    storedIds: () => mdb.allIds(),
    outage: { cut: () => proxy.cut(), restore: () => proxy.restore() },
    poisonEvent: (id) => telemetryEvent(id, { attributes: DOTTED }),
    async cleanup() {
      await sink.close(Date.now() + 2_000);
      await proxy.close();
      await mdb.drop();
    },
  };
});

describe('MongoSink on the real server', () => {
  let mdb: Awaited<ReturnType<typeof createMongoTestDatabase>>;
  let sink: MongoSink | undefined;
  beforeEach(async () => {
    mdb = await createMongoTestDatabase('msink');
  });
  afterEach(async () => {
    await sink?.close(Date.now() + 2_000);
    sink = undefined;
    await mdb.drop();
  });
  const make = (opts: Partial<ConstructorParameters<typeof MongoSink>[0]> = {}) =>
    (sink = new MongoSink({ url: mongoTestUrl(), database: mdb.name, writeConcernW: 1, ...opts }));

  it('the server itself refuses a dotted field name (the poison used by the conformance suite)', async () => {
    await expect(
      mdb.db.collection('raw').insertOne({ _id: 'x' as never, attributes: DOTTED }),
    ).rejects.toThrow(MongoServerError);
    expect(await mdb.db.collection('raw').countDocuments()).toBe(0);
  });

  it('stores typed documents: _id = event_id, BSON dates, detections with bbox subdocuments, in templated collections', async () => {
    const s = make();
    const t = telemetryEvent('t-1', { region: 'eu-west', deviceId: 'd-9', value: 3.25 });
    const d = detectionEvent('d-1', { region: 'us-east' });
    const res = await s.write(recordsOf([t, d]));
    expect(res.rejected).toEqual([]);
    const doc = await mdb.db.collection('telemetry_eu-west').findOne({ _id: 't-1' as never });
    expect(doc).toMatchObject({
      _id: 't-1',
      device_id: 'd-9',
      value: 3.25,
      sensor_type: 'engine_temp',
      unit: 'celsius',
      region: 'eu-west',
      attributes: { site: 'plant-7' },
    });
    expect(doc!['event_time']).toBeInstanceOf(Date);
    expect((doc!['event_time'] as Date).toISOString()).toBe('2026-11-01T12:00:00.000Z');
    expect(doc!['ingest']['published_at']).toBeInstanceOf(Date);
    expect(doc!['ingest']['captured_at']).toBeInstanceOf(Date);
    expect(doc!['ingest']).toMatchObject({
      stream: 'CONFORMANCE',
      seq: 1,
      index: 0,
      batch_id: 'b-1',
    });
    const det = await mdb.db.collection('detections_us-east').findOne({ _id: 'd-1' as never });
    expect(det!['frame_time']).toBeInstanceOf(Date);
    expect(det!['detections']).toEqual([
      {
        object_id: 'o1',
        class_id: 1,
        label: 'person',
        confidence: 0.91,
        tracker_id: '184467440737095516',
        bbox: { left: 0.1, top: 0.2, width: 0.3, height: 0.4 },
      },
    ]);
    const idx = await mdb.db.collection('telemetry_eu-west').listIndexes().toArray();
    expect(idx.find((i) => i['name'] === 'device_time')?.['key']).toEqual({
      device_id: 1,
      event_time: 1,
    });
    const didx = await mdb.db.collection('detections_us-east').listIndexes().toArray();
    expect(didx.find((i) => i['name'] === 'device_time')?.['key']).toEqual({
      device_id: 1,
      frame_time: 1,
    });
  });

  it('rejects only the documents that cannot be stored, with the reason, and writes the rest', async () => {
    const s = make({ telemetryCollection: 'tel_{sensor_type}' });
    const big = telemetryEvent('big', { attributes: { blob: 'x'.repeat(17 * 1024 * 1024) } });
    const events = [
      telemetryEvent('ok-1'),
      telemetryEvent('dotted', { attributes: DOTTED }),
      telemetryEvent('bad-name', { sensorType: 'temp.c' }),
      big,
      telemetryEvent('ok-2'),
    ];
    const res = await s.write(recordsOf(events));
    const byIndex = Object.fromEntries(res.rejected.map((r) => [r.index, r.error]));
    expect(Object.keys(byIndex).sort()).toEqual(['1', '2', '3']);
    expect(byIndex[1]!.name).toBe('DocumentRejectedError');
    expect(byIndex[1]!.message).toMatch(/code 2 BadValue.*gps\.fix/);
    expect(byIndex[2]!.name).toBe('InvalidCollectionNameError');
    expect(byIndex[2]!.message).toMatch(/sensor_type "temp\.c"/);
    expect(byIndex[3]!.name).toBe('DocumentEncodingError');
    expect(byIndex[3]!.message).toMatch(/exceeds the server's limit/);
    expect((await mdb.allIds()).sort()).toEqual(['ok-1', 'ok-2']);
  });

  it('counts duplicate keys as success and never overwrites the first copy', async () => {
    const s = make();
    await s.write(recordsOf([telemetryEvent('dup-1', { value: 1 })]));
    const res = await s.write(
      recordsOf([telemetryEvent('dup-1', { value: 2 }), telemetryEvent('dup-2')], 2),
    );
    expect(res.rejected).toEqual([]);
    expect((await mdb.allIds()).sort()).toEqual(['dup-1', 'dup-2']);
    expect(
      (await mdb.db.collection('telemetry_eu-west').findOne({ _id: 'dup-1' as never }))!['value'],
    ).toBe(1);
  });

  it('reports a store it cannot reach as retriable, and unhealthy', async () => {
    const proxy = await tcpProxy(ferretPort);
    try {
      const s = make({
        url: mongoTestUrl(proxy.port),
        serverSelectionTimeoutMs: 500,
        connectTimeoutMs: 500,
      });
      await s.connect();
      proxy.cut();
      const err = await s.write(recordsOf([telemetryEvent('x')])).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(s.isRetriable(err)).toBe(true);
      expect((await s.health()).ok).toBe(false);
      proxy.restore();
      // The driver rediscovers the server on its own; a caller (the runner) simply retries.
      const after = await waitFor(
        'write after restore',
        () => s.write(recordsOf([telemetryEvent('x')])).catch(() => undefined),
        { timeoutMs: 20_000, intervalMs: 200 },
      );
      expect(after.rejected).toEqual([]);
      expect(await mdb.allIds()).toEqual(['x']);
    } finally {
      await sink?.close(Date.now() + 1_000);
      await proxy.close();
    }
  });

  it('time-series mode and TTL: used when the server has them, refused at connect when it does not', async () => {
    const supports = async (f: () => Promise<unknown>) =>
      f().then(
        () => true,
        (e: unknown) => (e instanceof MongoServerError ? false : Promise.reject(e)),
      );
    const ts = await supports(() =>
      mdb.db.createCollection('probe_ts', { timeseries: { timeField: 't' } }),
    );
    const ttl = await supports(() =>
      mdb.db.collection('probe_ttl').createIndex({ t: 1 }, { expireAfterSeconds: 60 }),
    );

    const tsSink = make({ timeseries: true });
    if (ts) {
      await tsSink.connect();
      expect((await tsSink.write(recordsOf([telemetryEvent('ts-1')]))).rejected).toEqual([]);
    } else {
      const err = await tsSink.connect().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SinkUnsupportedError);
      expect((err as Error).message).toMatch(
        /time-series collections are not supported.*unset timeseries/,
      );
      expect(tsSink.isRetriable(err)).toBe(false);
    }
    await tsSink.close(Date.now() + 1_000);

    const ttlSink = make({ ttlDays: 30 });
    if (ttl) {
      await ttlSink.connect();
      await ttlSink.write(recordsOf([telemetryEvent('ttl-1')]));
      const idx = await mdb.db.collection('telemetry_eu-west').listIndexes().toArray();
      expect(idx.find((i) => i['name'] === 'ttl_event_time')?.['expireAfterSeconds']).toBe(
        30 * 86_400,
      );
    } else {
      await expect(ttlSink.connect()).rejects.toThrow(
        /TTL indexes \(expireAfterSeconds\) are not supported.*unset ttlDays/,
      );
    }
  });
});

import { jetstreamManager } from '@nats-io/jetstream';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { connectNats } from '@sluice/jetstream';
import { decodeBatch, HEADERS, IngestStatus, topology } from '@sluice/contracts';
import {
  freePort,
  natsFixture,
  privateNats,
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type NatsFixture,
} from '@sluice/testing';
import { sha256Hex } from './auth';
import { regionalStreamName } from './routing';
import { client, StreamDevice, telemetry, unary } from './test-fixtures/client';
import { gatewayEnv, startTestGateway } from './test-fixtures/gateway';

const DEVICE_TOKEN = 'device-token-boat-17';
const GATEWAY_TOKEN = 'gateway-token-any';
const TOKENS = `${sha256Hex(DEVICE_TOKEN)}=boat-17|boat-18;${sha256Hex(GATEWAY_TOKEN)}=*`;

/** The batch id of a stored message: its Nats-Msg-Id without the credential scope (16 hex + `:`). */
function batchIdOf(msgId: string | undefined): string | undefined {
  return msgId?.replace(/^[0-9a-f]{16}:/, '');
}

describe('ingestion gateway on real NATS', () => {
  let nats: NatsFixture;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterEach(async () => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  async function start(extra: Record<string, string> = {}, natsUrl = testUrls.nats) {
    const g = await startTestGateway(
      nats,
      TOKENS,
      { INGEST_PUBLISH_TIMEOUT: '2s', ...extra },
      natsUrl,
    );
    stops.push(g.stop);
    return g;
  }

  async function count(stream: string, subject?: string): Promise<number> {
    const info = await nats.jsm.streams.info(stream, subject ? { subjects_filter: subject } : {});
    return subject ? (info.state.subjects?.[subject] ?? 0) : info.state.messages;
  }

  it('stores each accepted batch once in its regional stream, even when the device resends it', async () => {
    const { t, gw, c } = await start();
    const dev = new StreamDevice(c, DEVICE_TOKEN);
    const batch = {
      batchId: uniqueId('b'),
      events: [telemetry('e-1', 'boat-17', 'eu-west'), telemetry('e-2', 'boat-17', 'eu-west')],
    };
    dev.send(batch);
    dev.send(batch); // a device retry of the same batch id
    const split = {
      batchId: uniqueId('b'),
      events: [telemetry('e-3', 'boat-17', 'eu-west'), telemetry('e-4', 'boat-18', 'us-east')],
    };
    dev.send(split);
    dev.send(split);
    await waitFor('4 acks', () => dev.acks.length === 4);
    dev.close();
    expect(dev.acks.map((a) => [a.batchId, a.status, a.accepted])).toEqual([
      [batch.batchId, IngestStatus.OK, 2],
      [batch.batchId, IngestStatus.OK, 2],
      [split.batchId, IngestStatus.OK, 2],
      [split.batchId, IngestStatus.OK, 2],
    ]);
    const eu = gw.routes.get('eu-west')!;
    const us = gw.routes.get('us-east')!;
    expect(eu.stream).toBe(regionalStreamName(t, 'eu-west'));
    expect(eu.subject).toBe(t.raw('eu-west'));
    const euMsgs = await nats.readAll(eu.stream);
    const usMsgs = await nats.readAll(us.stream);
    // The first part of a split batch carries the plain id, the others are suffixed with their region.
    expect(euMsgs.map((m) => batchIdOf(m.headers?.get(HEADERS.MSG_ID)))).toEqual([
      batch.batchId,
      split.batchId,
    ]);
    expect(usMsgs.map((m) => batchIdOf(m.headers?.get(HEADERS.MSG_ID)))).toEqual([
      `${split.batchId}:us-east`,
    ]);
    expect(euMsgs.every((m) => m.subject === t.raw('eu-west'))).toBe(true);
    expect(decodeBatch(euMsgs[0]!.data).events.map((e) => e.kind!.value.eventId)).toEqual([
      'e-1',
      'e-2',
    ]);
    expect(decodeBatch(usMsgs[0]!.data).events.map((e) => e.kind!.value.eventId)).toEqual(['e-4']);
    expect(euMsgs[0]!.headers?.get(HEADERS.CONTENT_TYPE)).toContain('EventBatch');
  });

  it('accepts the good events of a mixed batch and explains each bad one', async () => {
    const { gw, c } = await start({ INGEST_MAX_FUTURE_SKEW: '1h' });
    const bad = [
      telemetry('bad id!', 'boat-17', 'eu-west'),
      telemetry('e-nan', 'boat-17', 'eu-west', { value: Number.NaN }),
      telemetry('e-future', 'boat-17', 'eu-west', {
        eventTime: new Date(Date.now() + 3 * 3_600_000),
      }),
      telemetry('e-foreign', 'boat-17', 'ap-south'),
      telemetry('e-other-device', 'boat-99', 'eu-west'),
      { kind: undefined },
    ];
    const events = [
      telemetry('g-1', 'boat-17', 'eu-west'),
      ...bad,
      telemetry('g-2', 'boat-18', 'eu-west'),
    ];
    const { ack } = await unary(c, { batchId: uniqueId('b'), events }, DEVICE_TOKEN);
    expect(ack!.status).toBe(IngestStatus.PARTIAL);
    expect(ack!.accepted).toBe(2);
    const byIndex = Object.fromEntries(
      ack!.rejections.map((r) => [r.index, `${r.field}: ${r.reason}`]),
    );
    expect(Object.keys(byIndex).map(Number)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(byIndex[1]).toMatch(/^telemetry\.event_id: may contain only/);
    expect(byIndex[2]).toMatch(/^telemetry\.value: must be a finite number/);
    expect(byIndex[3]).toMatch(/^telemetry\.event_time: .*in the future/);
    expect(byIndex[4]).toMatch(/^telemetry\.region: region "ap-south" is not served/);
    expect(byIndex[5]).toMatch(
      /^telemetry\.device_id: this credential may not publish for device "boat-99"/,
    );
    expect(byIndex[6]).toMatch(/^kind: must be set/);
    const msgs = await nats.readAll(gw.routes.get('eu-west')!.stream);
    expect(msgs).toHaveLength(1);
    expect(decodeBatch(msgs[0]!.data).events.map((e) => e.kind!.value.eventId)).toEqual([
      'g-1',
      'g-2',
    ]);
  });

  it('refuses a batch whose events are all for regions it does not serve, storing nothing', async () => {
    const { gw, c } = await start({ INGEST_REGIONS: 'eu-west' });
    const { ack } = await unary(
      c,
      { batchId: uniqueId('b'), events: [telemetry('e-1', 'boat-17', 'us-east')] },
      DEVICE_TOKEN,
    );
    expect(ack!.status).toBe(IngestStatus.REJECTED);
    expect(ack!.rejections[0]!.reason).toMatch(
      /region "us-east" is not served by this gateway \(serves: eu-west\)/,
    );
    expect(await count(gw.routes.get('eu-west')!.stream)).toBe(0);
    expect(gw.routes.has('us-east')).toBe(false);
  });

  it('refuses unauthenticated callers and publishes for other devices', async () => {
    const { gw, c } = await start();
    const batch = { batchId: uniqueId('b'), events: [telemetry('e-1', 'boat-17', 'eu-west')] };
    const none = await unary(c, batch);
    expect(none.error?.code).toBe(GrpcStatus.UNAUTHENTICATED);
    const wrong = await unary(c, batch, 'not-a-token');
    expect(wrong.error?.code).toBe(GrpcStatus.UNAUTHENTICATED);
    const stream = new StreamDevice(c, undefined);
    stream.send(batch);
    await waitFor('stream refused', () => stream.error);
    expect(stream.error!.code).toBe(GrpcStatus.UNAUTHENTICATED);
    const cross = await unary(
      c,
      { batchId: uniqueId('b'), events: [telemetry('e-2', 'boat-42', 'eu-west')] },
      DEVICE_TOKEN,
    );
    expect(cross.ack!.status).toBe(IngestStatus.REJECTED);
    expect(cross.ack!.rejections[0]!.reason).toMatch(/may not publish for device "boat-42"/);
    const http = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(http.status).toBe(401);
    // The gateway credential may publish for any device.
    const any = await unary(
      c,
      { batchId: uniqueId('b'), events: [telemetry('e-3', 'boat-42', 'eu-west')] },
      GATEWAY_TOKEN,
    );
    expect(any.ack!.status).toBe(IngestStatus.OK);
    expect(await count(gw.routes.get('eu-west')!.stream)).toBe(1);
  });

  it('accepts JSON v1 and v2 over HTTP, explains bad events and dedupes a resent body', async () => {
    const { gw } = await start();
    const now = new Date().toISOString();
    const body = JSON.stringify([
      {
        event_id: 'h-1',
        device_id: 'boat-17',
        timestamp: now,
        sensor_type: 'engine_temp',
        value: 87.5,
        unit: 'celsius',
        region: 'eu-west',
      },
      {
        schema_version: 2,
        id: 'h-2',
        time: Date.now(),
        region: 'eu-west',
        device: { id: 'boat-17' },
        reading: { sensor: 'rpm', value: 1200, unit: '1' },
      },
      {
        event_id: 'h-3',
        device_id: 'boat-17',
        timestamp: now,
        sensor_type: 'engine_temp',
        value: 'hot',
        unit: 'celsius',
        region: 'eu-west',
      },
      { schema_version: 9, id: 'h-4' },
    ]);
    const post = (headers: Record<string, string> = {}) =>
      fetch(`http://127.0.0.1:${gw.httpPort}/v1/events`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${DEVICE_TOKEN}`,
          ...headers,
        },
        body,
      });
    const first = await post();
    expect(first.status).toBe(200);
    const ack = (await first.json()) as {
      batch_id: string;
      status: string;
      accepted: number;
      rejections: Array<{ index: number; field: string; reason: string }>;
    };
    expect(ack.status).toBe('PARTIAL');
    expect(ack.accepted).toBe(2);
    expect(ack.rejections.map((r) => [r.index, r.field])).toEqual([
      [2, 'value'],
      [3, 'schema_version'],
    ]);
    expect(ack.rejections[1]!.reason).toMatch(/unsupported schema version 9/);
    const again = (await (await post()).json()) as { batch_id: string };
    expect(again.batch_id).toBe(ack.batch_id);
    const keyed = await post({ 'idempotency-key': 'key-1' });
    expect(((await keyed.json()) as { batch_id: string }).batch_id).toBe('key-1');
    await post({ 'idempotency-key': 'key-1' });
    const msgs = await nats.readAll(gw.routes.get('eu-west')!.stream);
    expect(msgs.map((m) => batchIdOf(m.headers?.get(HEADERS.MSG_ID)))).toEqual([
      ack.batch_id,
      'key-1',
    ]);
    expect(
      decodeBatch(msgs[0]!.data).events.map((e) => [
        e.kind!.value.eventId,
        e.kind!.value.schemaVersion,
      ]),
    ).toEqual([
      ['h-1', 1],
      ['h-2', 2],
    ]);
    const notJson = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${DEVICE_TOKEN}` },
      body: '{"event_id":',
    });
    expect(notJson.status).toBe(400);
  });

  it('rate-limits per device with retry advice on both transports', async () => {
    const { gw, c } = await start({ INGEST_DEVICE_RATE: '1', INGEST_DEVICE_BURST: '2' });
    const ok = await unary(
      c,
      {
        batchId: uniqueId('b'),
        events: [telemetry('e-1', 'boat-17', 'eu-west'), telemetry('e-2', 'boat-17', 'eu-west')],
      },
      DEVICE_TOKEN,
    );
    expect(ok.ack!.status).toBe(IngestStatus.OK);
    const limited = await unary(
      c,
      { batchId: uniqueId('b'), events: [telemetry('e-3', 'boat-17', 'eu-west')] },
      DEVICE_TOKEN,
    );
    expect(limited.error?.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(Number(limited.error!.metadata!.get('retry-after-ms')[0])).toBeGreaterThan(0);
    const dev = new StreamDevice(c, DEVICE_TOKEN);
    dev.send({ batchId: uniqueId('b'), events: [telemetry('e-4', 'boat-17', 'eu-west')] });
    await waitFor('ack', () => dev.acks.length === 1);
    dev.close();
    expect(dev.acks[0]!.status).toBe(IngestStatus.RETRY);
    expect(dev.acks[0]!.retryAfterMs).toBeGreaterThan(0);
    const body = JSON.stringify({
      event_id: 'h-1',
      device_id: 'boat-17',
      timestamp: new Date().toISOString(),
      sensor_type: 's',
      value: 1,
      unit: '1',
      region: 'eu-west',
    });
    const http = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${DEVICE_TOKEN}` },
      body,
    });
    expect(http.status).toBe(429);
    expect(Number(http.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await count(gw.routes.get('eu-west')!.stream)).toBe(1);
  });

  it('answers retryable errors and acks nothing while NATS is down, and resumes when it returns', async () => {
    const server = await privateNats();
    stops.push(() => server.destroy());
    const { gw, c } = await start({}, server.url);
    const stream = gw.routes.get('eu-west')!.stream;
    const dev = new StreamDevice(c, DEVICE_TOKEN);
    const first = { batchId: uniqueId('b'), events: [telemetry('e-1', 'boat-17', 'eu-west')] };
    dev.send(first);
    await waitFor('first ack', () => dev.acks.length === 1);
    expect(dev.acks[0]!.status).toBe(IngestStatus.OK);

    await server.stop();
    const during = { batchId: uniqueId('b'), events: [telemetry('e-2', 'boat-17', 'eu-west')] };
    dev.send(during);
    await waitFor('ack while down', () => dev.acks.length === 2);
    expect(dev.acks[1]).toMatchObject({
      batchId: during.batchId,
      status: IngestStatus.RETRY,
      accepted: 0,
    });
    expect(dev.acks[1]!.retryAfterMs).toBeGreaterThan(0);
    const unaryDown = await unary(c, during, DEVICE_TOKEN);
    expect(unaryDown.error?.code).toBe(GrpcStatus.UNAVAILABLE);
    const http = await fetch(`http://127.0.0.1:${gw.httpPort}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${DEVICE_TOKEN}` },
      body: JSON.stringify({
        event_id: 'h-1',
        device_id: 'boat-17',
        timestamp: new Date().toISOString(),
        sensor_type: 's',
        value: 1,
        unit: '1',
        region: 'eu-west',
      }),
    });
    expect(http.status).toBe(503);
    expect(http.headers.get('retry-after')).toBeTruthy();

    await server.start();
    // The device resends until it gets an ack, as the RETRY status tells it to.
    await waitFor(
      'resend accepted after NATS returned',
      async () => {
        const r = await unary(c, during, DEVICE_TOKEN);
        return r.ack?.status === IngestStatus.OK;
      },
      { timeoutMs: 20_000, intervalMs: 300 },
    );
    dev.close();
    const check = await connectNats({ servers: server.url, name: 'check' });
    try {
      const info = await (await jetstreamManager(check)).streams.info(stream);
      expect(info.state.messages).toBe(2);
    } finally {
      await check.close();
    }
  });

  it('on SIGTERM acks the batches it received, refuses new ones, then exits (real process)', async () => {
    const ns = uniqueId('ing');
    const t = topology(ns);
    const grpcPort = await freePort();
    const proc = spawnService('apps/ingestion/src/main.ts', {
      NATS_URL: testUrls.nats,
      OPS_PORT: '0',
      LOG_LEVEL: 'info',
      OTEL_SDK_DISABLED: 'true',
      ...gatewayEnv(ns, TOKENS, {
        INGEST_PUBLISH_TIMEOUT: '2s',
        INGEST_GRPC_PORT: String(grpcPort),
        INGEST_DRAIN_GRACE: '1500ms',
        INGEST_REGIONS: 'eu-west',
        INGEST_STREAM_LAYOUT: 'shared',
      }),
    });
    stops.push(async () => {
      proc.kill('SIGKILL');
      await proc.exited;
    });
    nats.track(t.streams.raw.name);
    await proc.waitForLine(/ingestion running/);
    const c = client(grpcPort);
    stops.push(async () => c.close());
    const dev = new StreamDevice(c, DEVICE_TOKEN);
    const sent = Array.from({ length: 30 }, (_, i) => ({
      batchId: `b-${i}`,
      events: [telemetry(`e-${i}`, 'boat-17', 'eu-west')],
    }));
    for (const b of sent) dev.send(b);
    await waitFor('first ack', () => dev.acks.length >= 1);
    proc.kill('SIGTERM');
    await proc.waitForLine(/grpc draining/);
    dev.send({ batchId: 'late', events: [telemetry('e-late', 'boat-17', 'eu-west')] });
    const code = await proc.exited;
    expect(code).toBe(0);
    await waitFor('stream ended', () => dev.ended || dev.error);
    // Every batch got an answer, in order; an OK ack exists exactly for what was stored (batches that
    // reached the gateway after SIGTERM are told to retry), and the late batch was refused.
    expect(dev.acks.slice(0, 30).map((a) => a.batchId)).toEqual(sent.map((b) => b.batchId));
    const acked = dev.acks
      .slice(0, 30)
      .filter((a) => a.status === IngestStatus.OK)
      .map((a) => a.batchId);
    expect(
      dev.acks
        .slice(0, 30)
        .every((a) => a.status === IngestStatus.OK || a.status === IngestStatus.RETRY),
    ).toBe(true);
    expect(acked.length).toBeGreaterThan(0);
    const late = dev.acks.find((a) => a.batchId === 'late');
    expect(late?.status).toBe(IngestStatus.RETRY);
    const msgs = await nats.readAll(t.streams.raw.name);
    expect(msgs.map((m) => batchIdOf(m.headers?.get(HEADERS.MSG_ID))).sort()).toEqual(acked.sort());
  });
});

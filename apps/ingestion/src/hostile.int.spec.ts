// Hostile and first-use inputs against a real gateway on real NATS (issue 11): a stream that never
// reads its acks, oversized HTTP bodies, the seed's own JSON event, field paths of rejections.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as http2Connect, type ClientHttp2Stream } from 'node:http2';
import { join } from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  decodeBatch,
  HEADERS,
  IngestAck,
  IngestRequest,
  IngestStatus,
  type EventBatch,
} from '@sluice/contracts';
import { natsFixture, uniqueId, waitFor, type NatsFixture } from '@sluice/testing';
import { sha256Hex } from './auth';
import { ackBytes } from './grpc-server';
import { INGEST_METRICS } from './metrics';
import { MAX_REJECTED_ACK_ENTRIES } from './pipeline';
import { telemetry, unary } from './test-fixtures/client';
import { startTestGateway } from './test-fixtures/gateway';

const DEVICE_TOKEN = 'device-token-boat-17';
const GATEWAY_TOKEN = 'gateway-token-any';
const TOKENS = `${sha256Hex(DEVICE_TOKEN)}=boat-17|boat-18;${sha256Hex(GATEWAY_TOKEN)}=*`;
const SEED_FIXTURE = join(
  __dirname,
  '..',
  '..',
  '..',
  'libs',
  'contracts',
  'src',
  'wire',
  'fixtures',
  'v1-seed-example.json',
);

/** One gRPC message frame: compression flag, big-endian length, message. */
function grpcFrame(batch: EventBatch): Buffer {
  const msg = IngestRequest.encode({ batch }).finish();
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  frame.set(msg, 5);
  return frame;
}

/** Splits gRPC frames out of the bytes read so far; returns the decoded acks and the rest. */
function readAcks(buf: Buffer): { acks: IngestAck[]; rest: Buffer } {
  const acks: IngestAck[] = [];
  let at = 0;
  while (buf.length - at >= 5 && buf.length - at >= 5 + buf.readUInt32BE(at + 1)) {
    const len = buf.readUInt32BE(at + 1);
    acks.push(IngestAck.decode(buf.subarray(at + 5, at + 5 + len)));
    at += 5 + len;
  }
  return { acks, rest: buf.subarray(at) };
}

interface Answer {
  status: number;
  contentType: string | undefined;
  connection: string | undefined;
  body: string;
  continued: boolean;
}

/**
 * POSTs `size` bytes with node:http: with a Content-Length or chunked, with or without
 * `Expect: 100-continue` (then the body is sent only after `100 Continue`). Resolves with the
 * response, or rejects when the connection fails before one arrived.
 */
function postBody(
  port: number,
  size: number,
  opts: { expect: boolean; chunked: boolean },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      authorization: `Bearer ${DEVICE_TOKEN}`,
    };
    if (!opts.chunked) headers['content-length'] = String(size);
    if (opts.expect) headers['expect'] = '100-continue';
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/v1/events',
      headers,
      agent: false,
    });
    let answered = false;
    let continued = false;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const sendBody = async () => {
      let left = size;
      while (left > 0 && !answered && !req.destroyed) {
        const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= part.length;
        if (!req.write(part)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              req.off('drain', done);
              req.off('close', done);
              resolve();
            };
            req.on('drain', done);
            req.on('close', done);
          });
        }
      }
      if (!answered && !req.destroyed) req.end();
    };
    req.on('continue', () => {
      continued = true;
      void sendBody();
    });
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        resolve({
          status: res.statusCode ?? 0,
          contentType: res.headers['content-type'],
          connection: res.headers['connection'],
          body,
          continued,
        });
        req.destroy();
      });
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    if (opts.expect) req.flushHeaders();
    else void sendBody();
  });
}

describe('ingestion gateway under hostile and first-use input', () => {
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

  async function start(extra: Record<string, string> = {}) {
    const { gw, c, registry, stop } = await startTestGateway(nats, TOKENS, extra);
    stops.push(stop);
    const metric = async (name: string): Promise<number> => {
      const m = await registry.getSingleMetric(name)?.get();
      return (m?.values ?? []).reduce((sum, v) => sum + v.value, 0);
    };
    const post = (body: unknown, token = DEVICE_TOKEN) =>
      fetch(`http://127.0.0.1:${gw.httpPort}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
    const postKeyed = (body: unknown, key: string, token = DEVICE_TOKEN) =>
      fetch(`http://127.0.0.1:${gw.httpPort}/v1/events`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${token}`,
          'idempotency-key': key,
        },
        body: JSON.stringify(body),
      });
    const stored = async (region = 'eu-west') =>
      (await nats.readAll(gw.routes.get(region)!.stream)).map((m) => ({
        msgId: m.headers?.get(HEADERS.MSG_ID) ?? '',
        batch: decodeBatch(m.data),
      }));
    return { gw, c, metric, post, postKeyed, stored };
  }

  /** An `Ingest` call on its own HTTP/2 connection, as a raw client; `trailers` has the grpc-status. */
  function openRawIngest(port: number, token = DEVICE_TOKEN) {
    const session = http2Connect(`http://127.0.0.1:${port}`);
    stops.push(async () => void session.destroy());
    const st: ClientHttp2Stream = session.request({
      ':method': 'POST',
      ':path': '/sluice.gateway.v1.IngestService/Ingest',
      'content-type': 'application/grpc',
      te: 'trailers',
      authorization: `Bearer ${token}`,
    });
    // The status comes in trailers, or in the response headers of a trailers-only answer.
    const trailers = new Promise<[Record<string, string | undefined>]>((resolve) => {
      st.on(
        'response',
        (h) => h['grpc-status'] !== undefined && resolve([h as Record<string, string | undefined>]),
      );
      st.on('trailers', (h) => resolve([h as Record<string, string | undefined>]));
    });
    return { st, trailers };
  }

  describe('a gRPC Ingest stream whose client never reads its acks', () => {
    it('stops being read, stays within its ack byte bound, ends with RESOURCE_EXHAUSTED, and other devices are served', async () => {
      // Each ack is ~3.6 KiB; 4 pending batches hold more than the 8 KiB bound once the client's
      // HTTP/2 window is full, so the stream first pauses, then ends.
      const maxUnsent = 8192;
      const { gw, c, metric } = await start({
        INGEST_STREAM_MAX_PENDING: '4',
        INGEST_STREAM_MAX_UNSENT_ACK_BYTES: String(maxUnsent),
        INGEST_DEVICE_RATE: '10000000',
        INGEST_DEVICE_BURST: '10000000',
      });
      const { st: stream, trailers } = openRawIngest(gw.grpcPort);
      stream.pause(); // the hostile part: acks are never read (until the end of the test)
      // Each batch: one good event and 25 for a region this gateway does not serve, so each ack
      // carries 25 rejections (PARTIAL acks echo every rejection).
      const batch = (n: number): EventBatch => ({
        batchId: uniqueId(`flood-${n}`),
        events: [
          telemetry(`g-${n}`, 'boat-17', 'eu-west'),
          ...Array.from({ length: 25 }, (_, i) => telemetry(`x-${n}-${i}`, 'boat-17', 'ap-south')),
        ],
      });
      const limit = 2000;
      let sent = 0;
      const exhausted = () => gw.grpcFlow().exhaustedStreams > 0;
      while (sent < limit && !exhausted()) {
        if (!stream.write(grpcFrame(batch(sent)))) {
          // The gateway stops reading, so the client's writes back up: wait for drain or the end.
          let drained = false;
          const onDrain = () => (drained = true);
          stream.once('drain', onDrain);
          await waitFor(
            'the client stream drains or the gateway ends it',
            () => drained || exhausted(),
          );
          stream.off('drain', onDrain);
        }
        sent++;
      }
      await waitFor('the stream is ended for not reading its acks', exhausted);
      const flow = gw.grpcFlow();
      expect(flow.exhaustedStreams).toBe(1);
      expect(await metric(INGEST_METRICS.streamsExhausted)).toBe(1);
      // Memory stays bounded: never more unsent ack bytes than the bound, and the gateway stopped
      // reading long before the client ran out of batches to send.
      expect(flow.peakStreamUnsentAckBytes).toBeGreaterThan(0);
      expect(flow.peakStreamUnsentAckBytes).toBeLessThanOrEqual(maxUnsent);
      const answered = await metric(INGEST_METRICS.batches);
      expect(answered).toBeLessThan(limit);
      expect(answered).toBeLessThanOrEqual(sent);

      // Another device is served while the hostile stream is still open and unread.
      const other = await unary(
        c,
        { batchId: uniqueId('b'), events: [telemetry('o-1', 'boat-42', 'eu-west')] },
        GATEWAY_TOKEN,
      );
      expect(other.ack?.status).toBe(IngestStatus.OK);

      // When the client finally reads, it gets the queued acks and then a clear status.
      let buf = Buffer.alloc(0);
      stream.on('data', (d: Buffer) => (buf = Buffer.concat([buf, d])));
      stream.resume();
      await once(stream, 'end');
      const [t] = await trailers;
      expect(Number(t['grpc-status'])).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
      expect(decodeURIComponent(t['grpc-message'] ?? '')).toMatch(/not reading its acks/);
      const { acks } = readAcks(buf);
      expect(acks.length).toBeGreaterThan(0);
      expect(acks.length).toBeLessThan(answered);
      expect(
        acks.every((a) => a.status === IngestStatus.PARTIAL && a.rejections.length === 25),
      ).toBe(true);
      await waitFor('no unsent ack bytes left', () => gw.grpcFlow().unsentAckBytes === 0);
      await waitFor('stream closed', async () => (await metric(INGEST_METRICS.openStreams)) === 0);
    });

    it('many unread streams from one credential: past the per-credential cap a new stream is refused, and a stalled one is ended', async () => {
      const { gw, c, metric } = await start({
        INGEST_MAX_STREAMS_PER_CREDENTIAL: '2',
        INGEST_STREAM_STALL_TIMEOUT: '1s',
      });
      // One connection per stream: the cap is per credential, whatever the connections.
      const open = () => openRawIngest(gw.grpcPort);
      const [a, b] = [open(), open()];
      // PARTIAL acks of ~3.6 KiB (25 rejections each): 40 of them overflow the client's HTTP/2 window.
      const heavy = (): EventBatch => ({
        batchId: uniqueId('s'),
        events: [
          telemetry(uniqueId('e'), 'boat-17', 'eu-west'),
          ...Array.from({ length: 25 }, () => telemetry(uniqueId('x'), 'boat-17', 'ap-south')),
        ],
      });
      for (const x of [a, b]) {
        x.st.pause(); // never read: acks pile up unsent
        for (let i = 0; i < 40; i++) x.st.write(grpcFrame(heavy()));
      }
      await waitFor(
        'two streams open',
        async () => (await metric(INGEST_METRICS.openStreams)) === 2,
      );
      await waitFor('acks held unsent', () => gw.grpcFlow().unsentAckBytes > 0);
      // The third stream of the same credential is refused at once, with a reason.
      const third = open();
      third.st.resume();
      const [t3] = await third.trailers;
      expect(Number(t3['grpc-status'])).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
      expect(decodeURIComponent(t3['grpc-message'] ?? '')).toMatch(
        /already has 2 open Ingest streams/,
      );
      expect(await metric(INGEST_METRICS.streamsRefused)).toBe(1);
      // Another credential is unaffected.
      const other = await unary(
        c,
        { batchId: uniqueId('b'), events: [telemetry('cap-o-1', 'boat-42', 'eu-west')] },
        GATEWAY_TOKEN,
      );
      expect(other.ack?.status).toBe(IngestStatus.OK);
      // The unread streams hold acks under every byte bound; the stall timeout ends them.
      await waitFor('both stalled streams ended', () => gw.grpcFlow().exhaustedStreams === 2);
      for (const x of [a, b]) x.st.resume();
      const ended = await Promise.all([a.trailers, b.trailers]);
      for (const [t] of ended) {
        expect(Number(t['grpc-status'])).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
        expect(decodeURIComponent(t['grpc-message'] ?? '')).toMatch(/none read for 1000 ms/);
      }
      await waitFor('streams closed', async () => (await metric(INGEST_METRICS.openStreams)) === 0);
      // Slots are freed: the credential may open a stream again.
      const again = open();
      again.st.write(
        grpcFrame({
          batchId: uniqueId('s'),
          events: [telemetry(uniqueId('e'), 'boat-17', 'eu-west')],
        }),
      );
      let buf = Buffer.alloc(0);
      again.st.on('data', (d: Buffer) => (buf = Buffer.concat([buf, d])));
      await waitFor('an ack on the new stream', () => readAcks(buf).acks.length === 1);
      expect(readAcks(buf).acks[0]!.status).toBe(IngestStatus.OK);
      again.st.end();
      const [tAgain] = await again.trailers;
      expect(Number(tAgain['grpc-status'])).toBe(GrpcStatus.OK);
    });

    it('counts rejected events against the device rate limit', async () => {
      const { c } = await start({ INGEST_DEVICE_RATE: '1', INGEST_DEVICE_BURST: '3' });
      const foreign = Array.from({ length: 3 }, (_, i) =>
        telemetry(`f-${i}`, 'boat-17', 'ap-south'),
      );
      const rejected = await unary(c, { batchId: uniqueId('b'), events: foreign }, DEVICE_TOKEN);
      expect(rejected.ack?.status).toBe(IngestStatus.REJECTED);
      const next = await unary(
        c,
        { batchId: uniqueId('b'), events: [telemetry('g-1', 'boat-17', 'eu-west')] },
        DEVICE_TOKEN,
      );
      expect(next.error?.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
      // Another device of the same credential has its own bucket.
      const other = await unary(
        c,
        { batchId: uniqueId('b'), events: [telemetry('g-2', 'boat-18', 'eu-west')] },
        DEVICE_TOKEN,
      );
      expect(other.ack?.status).toBe(IngestStatus.OK);
    });

    it('summarises the ack of a fully rejected batch within a documented bound', async () => {
      const { c } = await start({ INGEST_DEVICE_RATE: '100000', INGEST_DEVICE_BURST: '100000' });
      const long = 'x'.repeat(120);
      const events = Array.from({ length: 1000 }, (_, i) =>
        i % 2 === 0
          ? telemetry(`${long}-${i}`.slice(-128), 'boat-17', 'ap-south')
          : telemetry(`e-${i}`, 'boat-17', 'eu-west', { value: Number.NaN }),
      );
      const { ack } = await unary(c, { batchId: uniqueId('b'), events }, GATEWAY_TOKEN);
      expect(ack?.status).toBe(IngestStatus.REJECTED);
      expect(ack!.accepted).toBe(0);
      expect(ack!.rejections.length).toBeLessThanOrEqual(MAX_REJECTED_ACK_ENTRIES);
      expect(ackBytes(ack!)).toBeLessThanOrEqual(16 * 1024); // the documented bound
      expect(ack!.rejections.map((r) => [r.index, r.field])).toEqual([
        [0, 'telemetry.region'],
        [1, 'telemetry.value'],
      ]);
      expect(ack!.rejections[0]!.reason).toMatch(
        /not served by this gateway.*\(and 499 more events rejected at this field\)$/,
      );
      expect(ack!.rejections[1]!.reason).toMatch(
        /finite number.*\(and 499 more events rejected at this field\)$/,
      );
    });
  });

  describe('an oversized HTTP body', () => {
    const limit = 4 * 1024 * 1024; // INGEST_MAX_BODY_BYTES default
    it.each([
      ['just over the limit', limit + 1, { expect: false, chunked: false }],
      ['just over the limit, Expect: 100-continue', limit + 1, { expect: true, chunked: false }],
      ['50 MB', 50_000_000, { expect: false, chunked: false }],
      ['50 MB, Expect: 100-continue', 50_000_000, { expect: true, chunked: false }],
      ['50 MB chunked', 50_000_000, { expect: false, chunked: true }],
      ['50 MB chunked, Expect: 100-continue', 50_000_000, { expect: true, chunked: true }],
    ])(
      '%s: the client reads a 413 problem, then the connection closes',
      async (_name, size, opts) => {
        const { post, gw } = await start();
        const answer = await postBody(gw.httpPort, size, opts);
        expect(answer.status).toBe(413);
        expect(answer.contentType).toBe('application/problem+json');
        expect(answer.connection).toBe('close');
        expect(JSON.parse(answer.body)).toMatchObject({
          status: 413,
          title: 'Request body too large',
          max_body_bytes: limit,
        });
        // A declared length over the limit is refused before the body is sent.
        if (opts.expect && !opts.chunked) expect(answer.continued).toBe(false);
        const ok = await post({
          event_id: uniqueId('e'),
          device_id: 'boat-17',
          timestamp: new Date().toISOString(),
          sensor_type: 's',
          value: 1,
          unit: '1',
          region: 'eu-west',
        });
        expect(ok.status).toBe(200);
      },
    );
  });

  describe('the seed example over HTTP', () => {
    it('stores the seed JSON event (schema version 1 with event_time) as it is', async () => {
      const { post, gw } = await start();
      const now = new Date(Math.floor(Date.now() / 1000) * 1000);
      const seed = JSON.parse(readFileSync(SEED_FIXTURE, 'utf8')) as Record<string, unknown>;
      // D-789 is not one of the device token's devices: the gateway credential may publish for it.
      const res = await post(
        { ...seed, event_time: now.toISOString().replace('.000Z', 'Z') },
        GATEWAY_TOKEN,
      );
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: 'OK', accepted: 1, rejections: [] });
      const msgs = await nats.readAll(gw.routes.get('us-east')!.stream);
      expect(msgs).toHaveLength(1);
      const stored = decodeBatch(msgs[0]!.data).events[0]!.kind!;
      expect(stored.$case === 'telemetry' && stored.value).toMatchObject({
        eventId: seed['event_id'],
        deviceId: 'D-789',
        eventTime: now,
        sensorType: 'temperature',
        value: 21.4,
        unit: 'C',
        firmwareVersion: '1.2.3',
        region: 'us-east',
        schemaVersion: 1,
      });
    });
  });

  describe('rejection field paths over HTTP', () => {
    it('name the JSON field the client sent, from the wire parser and the validator alike', async () => {
      const { post } = await start({ INGEST_MAX_FUTURE_SKEW: '1h' });
      const now = new Date().toISOString();
      const future = new Date(Date.now() + 3 * 3_600_000).toISOString();
      // v1 events use the `timestamp` alias (also accepted before event_time was) unless event_time
      // is the point, so this test is about paths only.
      const v1 = { device_id: 'boat-17', sensor_type: 's', value: 1, unit: '1', region: 'eu-west' };
      const v2 = {
        schema_version: 2,
        region: 'eu-west',
        device: { id: 'boat-17' },
        reading: { sensor: 's', value: 1, unit: '1' },
      };
      const res = await post([
        { ...v1, event_id: 'a-0', timestamp: now },
        { ...v1, event_id: 'a-1', event_time: future },
        { ...v1, event_id: 'a-2', timestamp: future },
        { ...v1, event_id: 'a-3', timestamp: now, region: 'ap-south' },
        { ...v1, event_id: 'a-4', timestamp: now, value: 'hot' },
        { ...v2, id: 'a-5', time: future },
        { ...v2, id: 'a-6', time: now, device: { id: 'boat-99' } },
        { ...v2, id: 'a-7', time: now, region: 'ap-south' },
        { ...v1, event_id: 'a-8', timestamp: now, attributes: { 'rack.slot': 'x'.repeat(300) } },
      ]);
      const ack = (await res.json()) as {
        accepted: number;
        rejections: Array<{ index: number; field: string }>;
      };
      expect(ack.accepted).toBe(1);
      expect(ack.rejections.map((r) => [r.index, r.field])).toEqual([
        [1, 'event_time'],
        [2, 'timestamp'],
        [3, 'region'],
        [4, 'value'],
        [5, 'time'],
        [6, 'device.id'],
        [7, 'region'],
        [8, 'attributes["rack.slot"]'],
      ]);
    });
  });

  describe('idempotency keys and batch ids', () => {
    const reading = (id: string, value = 1) => ({
      event_id: id,
      device_id: 'boat-17',
      timestamp: new Date().toISOString(),
      sensor_type: 's',
      value,
      unit: '1',
      region: 'eu-west',
    });

    it('HTTP: the same key with the same body is answered as a duplicate and stored once', async () => {
      const { postKeyed, stored } = await start();
      const key = uniqueId('k');
      const body = [reading('e-1'), reading('e-2')];
      const first = await postKeyed(body, key);
      expect(first.status).toBe(200);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      expect(await first.json()).toMatchObject({
        batch_id: key,
        status: 'OK',
        accepted: 2,
        duplicate: false,
      });
      const again = await postKeyed(body, key);
      expect(again.status).toBe(200);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(await again.json()).toMatchObject({
        batch_id: key,
        status: 'OK',
        accepted: 2,
        duplicate: true,
      });
      expect((await stored()).map((m) => m.batch.events.length)).toEqual([2]);
    });

    it('HTTP: the same key with a different body is a 409 and stores nothing', async () => {
      const { postKeyed, stored } = await start();
      const key = uniqueId('k');
      expect((await postKeyed([reading('e-1')], key)).status).toBe(200);
      const other = await postKeyed([reading('e-1', 2)], key);
      expect(other.status).toBe(409);
      expect(other.headers.get('content-type')).toBe('application/problem+json');
      expect(await other.json()).toMatchObject({
        status: 409,
        batch_id: key,
        detail: expect.stringMatching(/already used by this credential for different content/),
      });
      const msgs = await stored();
      expect(msgs).toHaveLength(1);
      expect(msgs[0]!.batch.events[0]!.kind!.value).toMatchObject({ eventId: 'e-1' });
      expect(
        msgs[0]!.batch.events[0]!.kind!.$case === 'telemetry' &&
          msgs[0]!.batch.events[0]!.kind!.value.value,
      ).toBe(1);
    });

    it('HTTP: the same key from another credential is its own batch, stored as well', async () => {
      const { postKeyed, stored } = await start();
      const key = uniqueId('k');
      const a = await postKeyed([reading('e-1')], key, DEVICE_TOKEN);
      const b = await postKeyed([reading('e-2')], key, GATEWAY_TOKEN);
      expect([a.status, b.status]).toEqual([200, 200]);
      const msgs = await stored();
      expect(msgs.map((m) => m.batch.events[0]!.kind!.value.eventId)).toEqual(['e-1', 'e-2']);
      expect(await b.json()).toMatchObject({ accepted: 1, duplicate: false });
      const [scopeA, scopeB] = msgs.map((m) => m.msgId.slice(0, m.msgId.length - key.length - 1));
      expect(msgs.every((m) => m.msgId.endsWith(`:${key}`))).toBe(true);
      expect(scopeA).not.toBe(scopeB);
    });

    it('gRPC: a resent batch is acked as a duplicate, a reused batch_id for other events is rejected, another credential is separate', async () => {
      const { c, stored, metric } = await start();
      const batchId = uniqueId('b');
      const batch = {
        batchId,
        events: [telemetry('g-1', 'boat-17', 'eu-west'), telemetry('g-2', 'boat-17', 'eu-west')],
      };
      const first = await unary(c, batch, DEVICE_TOKEN);
      const resent = await unary(c, batch, DEVICE_TOKEN);
      const reused = await unary(
        c,
        { batchId, events: [telemetry('g-3', 'boat-17', 'eu-west')] },
        DEVICE_TOKEN,
      );
      const otherCredential = await unary(
        c,
        { batchId, events: [telemetry('g-4', 'boat-17', 'eu-west')] },
        GATEWAY_TOKEN,
      );
      expect(
        [first, resent, reused, otherCredential].map((r) => [r.ack?.status, r.ack?.accepted]),
      ).toEqual([
        [IngestStatus.OK, 2],
        [IngestStatus.OK, 2],
        [IngestStatus.REJECTED, 0],
        [IngestStatus.OK, 1],
      ]);
      expect((await stored()).map((m) => m.batch.events.map((e) => e.kind!.value.eventId))).toEqual(
        [['g-1', 'g-2'], ['g-4']],
      );
      expect([first, resent, reused, otherCredential].map((r) => r.ack?.duplicate)).toEqual([
        false,
        true,
        false,
        false,
      ]);
      expect(reused.ack!.rejections[0]).toMatchObject({
        field: 'batch.batch_id',
        reason: expect.stringMatching(/already used by this credential for different content/),
      });
      expect(await metric(INGEST_METRICS.idempotencyConflicts)).toBe(1);
      expect(await metric(INGEST_METRICS.duplicates)).toBe(1);
    });

    it('gRPC: a batch_id reused for content split across regions is refused before any part is stored', async () => {
      const { c, stored } = await start();
      const batchId = uniqueId('b');
      expect(
        (
          await unary(
            c,
            { batchId, events: [telemetry('s-1', 'boat-17', 'eu-west')] },
            DEVICE_TOKEN,
          )
        ).ack,
      ).toMatchObject({ status: IngestStatus.OK });
      const split = {
        batchId,
        events: [telemetry('s-2', 'boat-17', 'eu-west'), telemetry('s-3', 'boat-18', 'us-east')],
      };
      const reused = await unary(c, split, DEVICE_TOKEN);
      expect(reused.ack).toMatchObject({ status: IngestStatus.REJECTED, accepted: 0 });
      expect(reused.ack!.rejections[0]!.field).toBe('batch.batch_id');
      expect(
        (await stored('eu-west')).map((m) => m.batch.events.map((e) => e.kind!.value.eventId)),
      ).toEqual([['s-1']]);
      expect(await stored('us-east')).toEqual([]);
    });
  });
});

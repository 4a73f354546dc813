// GET /v1/stream against real NATS, PostgreSQL and HTTP: roll-ups pushed as windows close, a resume
// with Last-Event-ID without a gap, and a slow subscriber cut off while the others go on.
import { connect } from '@nats-io/transport-node';
import { encodeRollup, RollupScope } from '@sluice/contracts';
import { generateToken } from '@sluice/http';
import { openApiChecker } from '@sluice/http/testing';
import { Registry } from 'prom-client';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Aggregator } from './aggregator';
import { startApi, type ApiServer } from './api';
import { RollupStream } from './stream';
import { harness, logger, type Harness, type R } from './test-fixtures/harness';
import { sseConnect, type SseClient, type SseEvent } from './test-fixtures/sse';

interface Data {
  scope: string;
  device?: string;
  region: string;
  sensor: string;
  resolution: string;
  time: string;
  count: number;
  avg: number;
  revision: number;
}
const data = (e: SseEvent) => JSON.parse(e.data) as Data;
const rollups = (c: SseClient) => c.events.filter((e) => e.event === 'rollup');

describe('GET /v1/stream', () => {
  let h: Harness;
  let agg: Aggregator;
  let api: ApiServer;
  let hub: RollupStream;
  const hubRegistry = new Registry();
  let nc: NatsConnection;
  const all = generateToken();
  const euOnly = generateToken();
  const clients: SseClient[] = [];
  // Whole seconds a minute ago: windows [t0 + i s, t0 + (i + 1) s).
  const t0 = Math.floor(Date.now() / 1000) * 1000 - 120_000;
  // Above the largest burst of the slow-client test (250 events of about 800 bytes).
  const MAX_BUFFER = 512 * 1024;

  beforeAll(async () => {
    h = await harness({
      AGGREGATOR_RESOLUTIONS: '1s,1m',
      AGGREGATOR_ALLOWED_LATENESS: '1s',
      AGGREGATOR_IDLE_TIMEOUT: '0',
    });
    agg = await h.start();
    nc = await connect({ servers: h.env['NATS_URL']!, name: 'stream-test' });
    hub = new RollupStream({
      nc,
      topology: h.topo,
      log: logger,
      registry: hubRegistry,
      heartbeatMs: 500,
      maxBufferBytes: MAX_BUFFER,
    });
    api = await startApi({
      port: 0,
      queries: agg.queries,
      resolutions: agg.resolutions,
      defaultPoints: 300,
      maxRangePoints: 10_000,
      maxPage: 500,
      tokens: [
        { name: 'all', sha256: all.sha256, claims: '*' },
        { name: 'eu', sha256: euOnly.sha256, claims: new Set(['eu']) },
      ],
      // Shorter than the streams live: the request deadline must not end them.
      requestTimeoutMs: 2_000,
      log: logger,
      registry: new Registry(),
      stream: hub,
    });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await hub.stop();
    await api.close();
    await nc.drain().catch(() => undefined);
    await h.cleanup();
  });

  const url = (query: string) => `http://127.0.0.1:${api.port}/v1/stream?${query}`;
  const open = async (query: string, headers: Record<string, string> = {}, token = all.token) => {
    const c = await sseConnect(url(query), { authorization: `Bearer ${token}`, ...headers });
    clients.push(c);
    return c;
  };
  /** One reading per window `from..to` (inclusive) of a device sensor, then one that closes them. */
  const readings = async (id: string, device: string, sensor: string, from: number, to: number) => {
    const rs: R[] = [];
    for (let i = from; i <= to; i++)
      rs.push({ device, region: 'eu', sensor, t: t0 + i * 1000 + 100, value: i });
    await h.publish(id, rs);
    // The watermark (max event time − 1 s lateness) passes the end of window `to`.
    await h.publish(`${id}-clock`, [
      { device: 'clock', region: 'eu', sensor: 'tick', t: t0 + (to + 2) * 1000 + 500, value: 0 },
    ]);
  };

  it('is in the OpenAPI document and refuses bad requests before streaming', async () => {
    const doc = (await (await fetch(`http://127.0.0.1:${api.port}/openapi.json`)).json()) as {
      paths: Record<string, { get?: { responses: Record<string, { content?: object }> } }>;
    };
    expect(Object.keys(doc.paths['/v1/stream']!.get!.responses['200']!.content!)).toEqual([
      'text/event-stream',
    ]);
    const checker = await openApiChecker(doc);
    expect(checker).toBeDefined();
    const status = async (query: string, headers: Record<string, string>) =>
      (await fetch(url(query), { headers })).status;
    const auth = { authorization: `Bearer ${all.token}` };
    expect(await status('resolution=1s', {})).toBe(401);
    expect(await status('resolution=7s', auth)).toBe(400);
    expect(await status('resolution=1s', { ...auth, 'last-event-id': 'abc' })).toBe(400);
    expect(
      await status('resolution=1s&region=us', { authorization: `Bearer ${euOnly.token}` }),
    ).toBe(403);
  });

  it('pushes roll-ups of the chosen devices and sensors as their windows close', async () => {
    const c = await open('resolution=1s&device=dev-live&sensor=temp');
    const other = await open('resolution=1s&device=dev-other');
    const eu = await open('resolution=1s&device=dev-live&sensor=temp', {}, euOnly.token);
    expect(c.status).toBe(200);
    const published = performance.now();
    await readings('live-1', 'dev-live', 'temp', 0, 2);
    // Readings of another sensor of the same device: not for this subscriber.
    await h.publish('live-rpm', [
      { device: 'dev-live', region: 'eu', sensor: 'rpm', t: t0 + 100, value: 1 },
    ]);
    const third = await c.waitFor((e) => e.event === 'rollup' && data(e).avg === 2, 15_000);
    const got = rollups(c).map(data);
    expect(got.map((d) => [d.device, d.sensor, d.resolution, d.time, d.count, d.avg])).toEqual(
      [0, 1, 2].map((i) => ['dev-live', 'temp', '1s', new Date(t0 + i * 1000).toISOString(), 1, i]),
    );
    // Ids are the ROLLUPS stream's sequences: increasing.
    const ids = rollups(c).map((e) => Number(e.id));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    // Window close → arrival: the Rollup's publish time in the stream to the client's parse.
    const jsm = h.nats.jsm;
    const msg = await jsm.streams.getMessage(h.topo.streams.rollups.name, {
      seq: Number(third.id),
    });
    const publishedAtMs = msg!.time.getTime();
    const lagMs = Date.now() - (performance.now() - third.at) - publishedAtMs;
    logger.info({ lagMs }, 'rollup publish → SSE client');
    process.stdout.write(
      `/v1/stream: Rollup publish → client ${lagMs.toFixed(1)} ms; clean publish → client ${(third.at - published).toFixed(0)} ms (includes the watermark's lateness)\n`,
    );
    expect(Number.isFinite(lagMs)).toBe(true);
    // The same roll-ups for the eu-only token; none for a device nobody wrote.
    await eu.waitFor((e) => e.event === 'rollup' && data(e).avg === 2);
    expect(rollups(eu).map((e) => e.id)).toEqual(rollups(c).map((e) => e.id));
    expect(rollups(other)).toEqual([]);
    // Heartbeats keep coming, and the stream outlives the 2 s request deadline.
    const beats = c.comments;
    await new Promise((r) => setTimeout(r, 2_500));
    expect(c.comments).toBeGreaterThan(beats);
    expect(c.ended).toBe(false);
  });

  it('resumes after a reconnect with Last-Event-ID without a gap', async () => {
    const first = await open('resolution=1s&device=dev-resume');
    await readings('resume-1', 'dev-resume', 'temp', 10, 12);
    await first.waitFor((e) => e.event === 'rollup' && data(e).avg === 12, 15_000);
    const lastId = rollups(first).at(-1)!.id!;
    first.close();
    // Windows 13..17 close while nobody is connected, with other devices' roll-ups in between.
    await readings('resume-2', 'dev-resume', 'temp', 13, 15);
    await readings('resume-3', 'dev-noise', 'temp', 13, 15);
    await readings('resume-4', 'dev-resume', 'temp', 16, 17);
    const closed = async () =>
      (
        await h.sql<{ n: string }>(
          `SELECT count(*) AS n FROM rollups WHERE series_key = 'dev-resume' AND resolution = '1s' AND closed`,
        )
      )[0]!.n;
    for (let i = 0; i < 150 && (await closed()) !== '8'; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(await closed()).toBe('8');
    await new Promise((r) => setTimeout(r, 500));

    const again = await open('resolution=1s&device=dev-resume', { 'last-event-id': lastId });
    await again.waitFor((e) => e.event === 'rollup' && data(e).avg === 17, 15_000);
    // Then live again: window 18 arrives on the same connection.
    await readings('resume-5', 'dev-resume', 'temp', 18, 18);
    await again.waitFor((e) => e.event === 'rollup' && data(e).avg === 18, 15_000);
    const windows = rollups(again).map((e) => data(e).avg);
    expect(windows).toEqual([13, 14, 15, 16, 17, 18]);
    expect(rollups(again).every((e) => Number(e.id) > Number(lastId))).toBe(true);
    expect(rollups(again).every((e) => data(e).device === 'dev-resume')).toBe(true);
  });

  it('cuts off a slow subscriber with an overflow event; the others receive everything', async () => {
    const slow = await open('resolution=1s&region=eu&sensor=load');
    const fast = await open('resolution=1s&region=eu&sensor=load');
    slow.pause();
    // Rollups straight into the ROLLUPS stream (as the closer publishes them), with long device
    // ids so that the slow client's socket and its buffer fill.
    const js = h.nats.js;
    const subject = h.topo.rollup('1s', 'eu');
    let sent = 0;
    const publishBatch = async (n: number) => {
      const acks = [];
      for (let i = 0; i < n; i++, sent++) {
        acks.push(
          js.publish(
            subject,
            encodeRollup({
              scope: RollupScope.DEVICE,
              deviceId: `dev-load-${String(sent).padStart(6, '0')}-${'x'.repeat(400)}`,
              region: 'eu',
              sensorType: 'load',
              resolution: '1s',
              windowStart: new Date(t0),
              windowEnd: new Date(t0 + 1000),
              count: 1,
              sum: sent,
              min: sent,
              max: sent,
              avg: sent,
              firstValue: sent,
              firstTime: new Date(t0),
              lastValue: sent,
              lastTime: new Date(t0),
              revision: 1,
              lateCount: 0,
            }),
            { msgID: `load-${sent}` },
          ),
        );
      }
      await Promise.all(acks);
    };
    const overflowed = () => slow.events.some((e) => e.event === 'overflow');
    const cutOff = async () =>
      (
        (await hubRegistry.getSingleMetric('sluice_aggregator_stream_disconnects_total')?.get())
          ?.values ?? []
      ).some((v) => v.labels['reason'] === 'slow_consumer' && v.value > 0);
    // Until the server cuts it off: the kernel's socket buffers take megabytes first.
    while (!(await cutOff()) && sent < 300_000) {
      await publishBatch(250);
      // The fast client reads in this process too.
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await cutOff()).toBe(true);
    slow.resume();
    await slow.waitEnded(15_000);
    expect(overflowed()).toBe(true);
    const overflow = JSON.parse(slow.events.find((e) => e.event === 'overflow')!.data) as {
      reason: string;
      last_event_id: string;
    };
    expect(overflow.reason).toBe('slow_consumer');
    process.stdout.write(
      `/v1/stream: slow client cut after ${rollups(slow).length} of ${sent} events; the fast one kept up\n`,
    );
    // It received fewer than were sent, and the event says where to resume.
    expect(rollups(slow).length).toBeLessThan(sent);
    expect(overflow.last_event_id).toBe(rollups(slow).at(-1)?.id ?? '0');
    // The fast subscriber got every one, in order, and is still connected.
    await fast.waitFor((e) => e.event === 'rollup' && data(e).avg === sent - 1, 30_000);
    const values = rollups(fast).map((e) => data(e).avg);
    expect(values).toEqual([...Array(sent).keys()]);
    expect(fast.ended).toBe(false);
  });
});

// Adaptive sampling under 2x overload, end to end: a real gateway process against the real NATS,
// reached through a proxy that delays NATS' answers by 100 ms, with a 4 KB in-flight budget, so the
// gateway can store at most ~40 KB/s of batches (budget / round trip) whatever the machine. Device-SDK
// clients offer well over twice that; a raw gRPC sender that ignores the advice adds more. Every
// safety reading must be stored (read back from the raw stream), bulk must be sampled down (advice
// on the acks, SDK drops, gateway shedding), the gateway must stay ready, and once the load ends the
// advice must return to 1.
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { credentials, Metadata } from '@grpc/grpc-js';
import {
  decodeBatch,
  Event as EventMessage,
  IngestServiceClient,
  IngestStatus,
  topology,
  type Event,
  type IngestAck,
} from '@sluice/contracts';
import { DeviceClient } from '@sluice/device-sdk';
import {
  natsFixture,
  sleep,
  spawnService,
  testUrls,
  uniqueId,
  waitFor,
  type ChildService,
  type NatsFixture,
} from '@sluice/testing';
import { sha256Hex } from './auth';
import { SAMPLING_METRICS } from './sampling';

const TOKEN = 'gateway-token-sampling';
const DELAY_MS = 100;
const BUDGET = 4_000;
const TIERS = 'safety=engine_temp|bilge_level;diagnostic=engine_*;bulk=*';
const SAFETY = ['engine_temp', 'bilge_level'];
const DIAGNOSTIC = ['engine_rpm'];
const BULK = ['vibration_x', 'vibration_y', 'accel_z'];

/** A TCP proxy to NATS that holds every server→client chunk for `delayMs` (order kept). */
async function slowProxy(targetPort: number, delayMs: number) {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.on('data', (chunk: Buffer) => {
      setTimeout(() => {
        if (!client.destroyed) client.write(chunk);
      }, delayMs);
    });
    upstream.connect(targetPort, '127.0.0.1', () => client.pipe(upstream));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** The value of metric `name` on the line carrying `label` (e.g. `tier="bulk"`), if any. */
function sample(text: string, name: string, label = ''): number | undefined {
  const line = text
    .split('\n')
    .find((l) => (l.startsWith(`${name} `) || l.startsWith(`${name}{`)) && l.includes(label));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : undefined;
}

function reading(id: string, device: string, sensor: string, value: number): Event {
  return {
    kind: {
      $case: 'telemetry',
      value: {
        eventId: id,
        deviceId: device,
        eventTime: new Date(),
        sensorType: sensor,
        value,
        unit: '1',
        firmwareVersion: '',
        region: 'eu-west',
        schemaVersion: 0,
        attributes: {},
      },
    },
  };
}

describe('ingestion: adaptive sampling keeps every safety reading under 2x overload', () => {
  let nats: NatsFixture;
  let proxy: Awaited<ReturnType<typeof slowProxy>>;
  let gw: ChildService;
  let opsPort: number;
  let grpcPort: number;
  let httpPort: number;
  const ns = uniqueId('ings');

  beforeAll(async () => {
    nats = await natsFixture();
    nats.track(topology(ns).streams.raw.name);
    proxy = await slowProxy(Number(new URL(testUrls.nats).port || 4222), DELAY_MS);
    gw = spawnService('apps/ingestion/src/main.ts', {
      NATS_URL: `nats://127.0.0.1:${proxy.port}`,
      SLUICE_NAMESPACE: ns,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OTEL_SDK_DISABLED: 'true',
      INGEST_GRPC_PORT: '0',
      INGEST_HTTP_PORT: '0',
      INGEST_HOST: '127.0.0.1',
      INGEST_REGIONS: 'eu-west',
      INGEST_AUTH_TOKENS: `${sha256Hex(TOKEN)}=*`,
      INGEST_STREAM_MAX_AGE: '10m',
      INGEST_RATE_LIMIT_STORE: 'local',
      INGEST_DEVICE_RATE: '1000000',
      INGEST_DEVICE_BURST: '1000000',
      INGEST_SENSOR_TIERS: TIERS,
      INGEST_MAX_IN_FLIGHT_BYTES: String(BUDGET),
      // Batches wait for the budget rather than get RETRY (a RETRY is resent, and must be safe too).
      INGEST_BACKPRESSURE_WAIT: '20s',
      INGEST_PUBLISH_TIMEOUT: '20s',
      INGEST_OVERLOAD_SUSTAIN: '300ms',
      INGEST_SAMPLING_MIN_KEEP: '0.125',
    });
    const line = await gw.waitForLine(/ingestion running/, 90_000);
    ({ opsPort, grpcPort, httpPort } = JSON.parse(line) as {
      opsPort: number;
      grpcPort: number;
      httpPort: number;
    });
  }, 120_000);

  afterAll(async () => {
    gw?.kill('SIGKILL');
    await gw?.exited;
    await proxy?.close();
    await nats?.cleanup();
  });

  const metrics = async () => (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();

  it('samples bulk, sheds bulk of a sender that ignores the advice, stores every safety reading, then returns to 1', async () => {
    const devices = ['boat-1', 'boat-2', 'boat-3', 'boat-4'];
    const sent = new Map<string, string[]>(); // sensor -> event ids emitted (or sent raw)
    let offeredBytes = 0;
    const note = (sensor: string, id: string) => {
      let list = sent.get(sensor);
      if (!list) sent.set(sensor, (list = []));
      list.push(id);
    };
    const sdkDrops: Array<[string, string]> = []; // [sensor, reason]
    const clients = devices.map(
      (d) =>
        new DeviceClient({
          target: `127.0.0.1:${grpcPort}`,
          token: TOKEN,
          name: d,
          maxBatchEvents: 20,
          lingerMs: 20,
          maxBufferEvents: 100_000,
          maxBufferBytes: 64 * 1024 * 1024,
          ackTimeoutMs: 60_000,
          onDrop: (e, _p, reason) =>
            sdkDrops.push([(e.kind!.value as { sensorType: string }).sensorType, reason]),
        }),
    );
    // Safety readings go out at the SDK's *normal* priority: the gateway's tier protects them.
    let n = 0;
    const emitRound = (sensors: readonly string[], perSensor: number) => {
      devices.forEach((d, i) => {
        for (const sensor of sensors)
          for (let k = 0; k < perSensor; k++) {
            const id = `${d}.${sensor}.${n++}`;
            note(sensor, id);
            const isBulk = BULK.includes(sensor);
            const e = reading(id, d, sensor, n);
            offeredBytes += EventMessage.encode(e).finish().byteLength;
            clients[i]!.emit(e, isBulk ? 'bulk' : 'normal');
          }
      });
    };

    // A sender that ignores the advice: every 50 ms a batch of 8 bulk readings and 1 safety reading.
    const raw = new IngestServiceClient(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
    const md = new Metadata();
    md.set('authorization', `Bearer ${TOKEN}`);
    const rawAcks: IngestAck[] = [];
    const rawPending = new Set<Promise<void>>();
    let rawBatches = 0;
    const sendRaw = () => {
      const events: Event[] = [];
      const id = `legacy.b${rawBatches++}`;
      for (let k = 0; k < 8; k++) {
        const eid = `${id}.bulk${k}`;
        note('legacy_bulk', eid);
        events.push(reading(eid, 'legacy-1', 'vibration_z', k));
      }
      for (const e of events) offeredBytes += EventMessage.encode(e).finish().byteLength;
      note('bilge_level', `${id}.safety`);
      events.push(reading(`${id}.safety`, 'legacy-1', 'bilge_level', 1));
      const p = (async () => {
        for (let attempt = 0; attempt < 50; attempt++) {
          const ack = await new Promise<IngestAck | undefined>((resolve) =>
            raw.ingestBatch({ batch: { batchId: id, events } }, md, (err, a) =>
              resolve(err ? undefined : a),
            ),
          );
          if (ack) rawAcks.push(ack);
          if (ack && ack.status !== IngestStatus.RETRY) return;
          await sleep(200);
        }
      })();
      rawPending.add(p);
      void p.finally(() => rawPending.delete(p));
    };

    // Offered: per device per 50 ms, 2 safety + 1 diagnostic + 3 × 4 bulk readings = 300/s a device,
    // ~1,200/s with the raw sender's 180/s: at ~60 encoded bytes a reading, over 70 KB/s against a
    // ceiling of BUDGET / DELAY_MS = 40 KB/s (the real ceiling is lower: every round trip is longer).
    let maxBulkEvery = 1;
    const started = Date.now();
    while (Date.now() - started < 6_000) {
      emitRound(SAFETY, 1);
      emitRound(DIAGNOSTIC, 1);
      emitRound(BULK, 4);
      sendRaw();
      for (const c of clients) maxBulkEvery = Math.max(maxBulkEvery, c.stats().sampling.bulk);
      await sleep(50);
    }
    // At least twice what the gateway can store (its ceiling, before batch framing and slow rounds).
    const offeredPerSecond = offeredBytes / ((Date.now() - started) / 1000);
    expect(offeredPerSecond).toBeGreaterThan((2 * BUDGET) / (DELAY_MS / 1000));
    // The gateway stays ready while overloaded.
    expect((await fetch(`http://127.0.0.1:${opsPort}/readyz`)).status).toBe(200);

    // The load ends: everything held is sent (acks keep arriving) and the raw sender's batches settle.
    await Promise.all(clients.map((c) => c.flush(120_000)));
    await Promise.all([...rawPending]);

    // The advice was on the acks: the SDK clients applied it, the raw sender saw it.
    expect(maxBulkEvery).toBeGreaterThan(1);
    expect(
      rawAcks.some((a) => a.sampling?.tiers.some((t) => t.tier === 'bulk' && t.keep < 1)),
    ).toBe(true);
    expect(gw.lines.filter((l) => l.includes('gateway overloaded')).length).toBeGreaterThanOrEqual(
      1,
    );

    // Nobody dropped a safety or diagnostic reading... the SDK dropped bulk as `sampled` only.
    expect(sdkDrops.filter(([s]) => SAFETY.includes(s))).toEqual([]);
    const sampledBulk = sdkDrops.filter(([s, r]) => BULK.includes(s) && r === 'sampled').length;
    expect(sampledBulk).toBeGreaterThan(0);
    expect(sdkDrops.every(([, r]) => r === 'sampled' || r === 'shed')).toBe(true);

    // Read the raw stream: every safety reading stored, bulk sampled down.
    const stored = new Set<string>();
    const msgs = await nats.readAll(topology(ns).streams.raw.name);
    for (const m of msgs)
      for (const e of decodeBatch(m.data).events) stored.add(e.kind!.value.eventId);
    const missing = (sensor: string) => (sent.get(sensor) ?? []).filter((id) => !stored.has(id));
    const storedOf = (sensor: string) => (sent.get(sensor) ?? []).filter((id) => stored.has(id));
    for (const s of SAFETY) {
      expect(sent.get(s)!.length).toBeGreaterThan(100);
      expect(missing(s)).toEqual([]);
    }
    for (const s of BULK) expect(storedOf(s).length).toBeLessThan(sent.get(s)!.length);
    // The raw sender's bulk was shed by the gateway (it never sampled), its safety reading never.
    const shed = rawAcks.flatMap((a) => a.rejections.filter((r) => r.field === 'sampling'));
    expect(shed.length).toBeGreaterThan(0);
    expect(storedOf('legacy_bulk').length).toBeLessThan(sent.get('legacy_bulk')!.length);
    const after = await metrics();
    expect(sample(after, 'sluice_ingest_events_shed_total', 'tier="bulk"')).toBeGreaterThan(0);
    expect(sample(after, 'sluice_ingest_events_shed_total', 'tier="safety"')).toBeUndefined();

    // The overload is over: a trickle of safety readings gets acks whose advice is back to 1.
    await waitFor(
      'the advice back to 1',
      async () => {
        emitRound(['engine_temp'], 1);
        await Promise.all(clients.map((c) => c.flush(30_000)));
        return clients.every(
          (c) => c.stats().sampling.bulk === 1 && c.stats().sampling.diagnostic === 1,
        );
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    const ack = await new Promise<IngestAck | undefined>((resolve) =>
      raw.ingestBatch(
        {
          batch: {
            batchId: 'legacy.last',
            events: [reading('legacy.last.0', 'legacy-1', 'bilge_level', 0)],
          },
        },
        md,
        (err, a) => resolve(err ? undefined : a),
      ),
    );
    expect(ack?.status).toBe(IngestStatus.OK);
    expect(ack?.sampling?.tiers.map((t) => [t.tier, t.keep])).toEqual([
      ['safety', 1],
      ['diagnostic', 1],
      ['bulk', 1],
    ]);
    // The HTTP answer carries the same advice, in JSON.
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({
        event_id: 'http.last.0',
        device_id: 'legacy-1',
        timestamp: new Date().toISOString(),
        sensor_type: 'vibration_x',
        value: 1,
        unit: '1',
        region: 'eu-west',
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      sampling?: { tiers: Array<{ tier: string; keep: number; sensors: string[] }> };
    };
    expect(body.sampling?.tiers).toEqual([
      { tier: 'safety', keep: 1, sensors: ['engine_temp', 'bilge_level'] },
      { tier: 'diagnostic', keep: 1, sensors: ['engine_*'] },
      { tier: 'bulk', keep: 1, sensors: ['*'] },
    ]);
    await waitFor('the overload-over log line', () =>
      gw.lines.some((l) => l.includes('gateway overload over')),
    );
    const end = await metrics();
    expect(sample(end, SAMPLING_METRICS.keep, 'tier="bulk"')).toBe(1);
    expect(sample(end, SAMPLING_METRICS.overloaded)).toBe(0);
    expect(sample(end, SAMPLING_METRICS.overloads)).toBeGreaterThanOrEqual(1);
    expect((await fetch(`http://127.0.0.1:${opsPort}/readyz`)).status).toBe(200);
    expect(gw.proc.exitCode).toBeNull();

    raw.close();
    await Promise.all(clients.map((c) => c.close(5_000)));
  }, 240_000);
});

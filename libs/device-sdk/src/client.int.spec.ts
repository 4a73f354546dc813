import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Event, EventRejection } from '@sluice/contracts';
import { natsFixture, sleep, waitFor, type NatsFixture } from '@sluice/testing';
import { Registry } from 'prom-client';
import { DeviceClient } from './client';
import type { DeviceClientOptions } from './config';
import type { DropReason, Priority } from './priority';
import {
  frame,
  gatewayChild,
  reading,
  storedIds,
  TEST_TOKEN,
  type GatewayChild,
  type StoredBatch,
} from './testing';

// The real gateway (apps/ingestion, a child process) on the real local NATS, one namespace per test.
describe('DeviceClient against the real gateway', () => {
  let nats: NatsFixture;
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  afterAll(async () => {
    await nats.cleanup();
  });

  async function gateway(extra: Record<string, string> = {}, start = true): Promise<GatewayChild> {
    const g = await gatewayChild(nats, extra);
    cleanups.push(() => g.stop('SIGKILL'));
    if (start) await g.start();
    return g;
  }

  function client(g: GatewayChild, opts: Partial<DeviceClientOptions> = {}): DeviceClient {
    const c = new DeviceClient({
      target: g.target,
      token: TEST_TOKEN,
      lingerMs: '5ms',
      retryInitialMs: '50ms',
      retryMaxMs: '500ms',
      ...opts,
    });
    cleanups.push(() => c.close(0));
    return c;
  }

  const idOf = (e: Event) => e.kind!.value.eventId;

  it('delivers emitted events to TELEMETRY_RAW, under its own batch ids, and counts them', async () => {
    const g = await gateway();
    const registry = new Registry();
    const rejected: EventRejection[] = [];
    const c = client(g, {
      registry,
      name: 'cam-test',
      idPrefix: 'cam-test-1',
      onReject: (_e, r) => rejected.push(r),
    });
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) {
      const e = i % 4 === 0 ? frame(`f-${i}`, ['person', 'boat']) : reading(`r-${i}`);
      ids.push(idOf(e));
      expect(c.emit(e, i % 10 === 0 ? 'safety' : 'normal')).toBe(true);
    }
    // One event the gateway refuses (a region it does not serve): counted, the rest of its batch kept.
    const bad = reading('bad-region');
    (bad.kind!.value as { region: string }).region = 'mars';
    c.emit(bad);
    await c.flush(20_000);
    const stored = await g.stored();
    expect(storedIds(stored).sort()).toEqual([...ids].sort());
    expect(stored.every((b) => b.batchId.startsWith('cam-test-1.b'))).toBe(true);
    const detections = stored.flatMap((b) => b.events).filter((e) => e.kind?.$case === 'detection');
    expect(detections).toHaveLength(30);
    expect(detections[0]!.kind!.value).toMatchObject({ streamId: 'cam-1', deviceId: 'cam-dev-1' });
    const s = c.stats();
    expect(s.acked.safety + s.acked.normal).toBe(120);
    expect(s.dropped.normal.rejected).toBe(1);
    expect(rejected).toEqual([
      expect.objectContaining({ eventId: 'bad-region', field: 'telemetry.region' }),
    ]);
    expect(s.buffered.events).toBe(0);
    expect(s.connected).toBe(true);
    const text = await registry.metrics();
    expect(text).toMatch(/sluice_sdk_events_acked_total\{client="cam-test",priority="safety"\} 12/);
    expect(text).toMatch(
      /sluice_sdk_events_acked_total\{client="cam-test",priority="normal"\} 108/,
    );
    expect(text).toMatch(
      /sluice_sdk_events_dropped_total\{client="cam-test",priority="normal",reason="rejected"\} 1/,
    );
    expect(text).toMatch(/sluice_sdk_batch_ack_duration_seconds_count\{client="cam-test"\} [1-9]/);
  });

  it('with the gateway down stays within its bound, keeps safety events first, counts drops, and delivers what it held once the gateway is back', async () => {
    const g = await gateway({}, false);
    const drops = new Map<string, [Priority, DropReason]>();
    const errors: string[] = [];
    const c = client(g, {
      maxBufferEvents: 60,
      maxBatchEvents: 10,
      maxInFlightBatches: 1,
      onDrop: (e, p, r) => drops.set(idOf(e), [p, r]),
      onError: (err) => errors.push(err.code),
    });
    const emitted: Array<[string, Priority]> = [];
    const emit = (e: Event, p: Priority) => {
      emitted.push([idOf(e), p]);
      c.emit(e, p);
    };
    let peak = 0;
    // Interleaved, with event-loop turns between rounds so the sender keeps trying the dead gateway.
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 5; i++) emit(reading(`bulk-${round}-${i}`), 'bulk');
      for (let i = 0; i < 2; i++) emit(reading(`normal-${round}-${i}`), 'normal');
      emit(frame(`safety-${round}`), 'safety');
      peak = Math.max(peak, c.stats().buffered.events);
      await sleep(20);
    }
    const down = c.stats();
    expect(peak).toBeLessThanOrEqual(60);
    expect(down.buffered.events).toBeLessThanOrEqual(60);
    expect(down.buffered.byPriority.safety).toBe(20);
    expect(down.connects).toBeGreaterThan(0);
    expect(errors[0]).toBe('gateway_stream_failed');
    expect(down.lastError?.message).toMatch(/UNAVAILABLE|status 14/);
    expect(down.acked).toEqual({ safety: 0, normal: 0, bulk: 0 });
    // Every drop is counted, per priority and reason, and no safety event was dropped.
    const counted = (p: Priority) => Object.values(down.dropped[p]).reduce((a, b) => a + b, 0);
    expect([...drops.values()].filter(([p]) => p === 'safety')).toEqual([]);
    expect(counted('bulk') + counted('normal')).toBe(drops.size);
    expect(drops.size).toBe(emitted.length - down.buffered.events);
    expect(counted('bulk')).toBeGreaterThan(0);

    await g.start();
    await c.flush(30_000);
    const stored = await g.stored();
    const expected = emitted.filter(([id]) => !drops.has(id)).map(([id]) => id);
    expect(storedIds(stored).sort()).toEqual(expected.sort());
    // One batch in flight at a time: the stream holds the safety batches first, then normal, then bulk.
    const rank = { safety: 0, normal: 1, bulk: 2 };
    const classes = stored.map((b) => rank[idOf(b.events[0]!).split('-')[0] as Priority]);
    expect(classes).toEqual([...classes].sort((a, b) => a - b));
    expect(classes[0]).toBe(0);
  });

  it('loses nothing across gateway restarts mid-stream (SIGKILL, then SIGTERM): resends keep their batch and event ids', async () => {
    const g = await gateway();
    // Room for everything the producer can emit (at most 20 000): nothing may be evicted here.
    const c = client(g, { maxBatchEvents: 20, maxInFlightBatches: 4, maxBufferEvents: 50_000 });
    const emitted: string[] = [];
    let stop = false;
    const producer = (async () => {
      for (let i = 0; !stop && i < 20_000; i++) {
        const e = i % 5 === 0 ? frame(`f-${i}`) : reading(`r-${i}`);
        emitted.push(idOf(e));
        expect(c.emit(e, i % 50 === 0 ? 'safety' : 'normal')).toBe(true);
        if (i % 5 === 4) await sleep(2);
      }
    })();
    const acked = () => c.stats().acked.normal + c.stats().acked.safety;
    await waitFor('first acks', () => acked() > 100, { timeoutMs: 30_000 });
    await g.stop('SIGKILL');
    await waitFor('the client notices', () => c.stats().lastError !== undefined);
    await sleep(300);
    await g.start();
    const afterKill = acked();
    await waitFor('acks after the restart', () => acked() > afterKill + 100, { timeoutMs: 30_000 });
    await g.stop('SIGTERM');
    await sleep(300);
    await g.start();
    const afterTerm = acked();
    await waitFor('acks after the second restart', () => acked() > afterTerm + 100, {
      timeoutMs: 30_000,
    });
    stop = true;
    await producer;
    await c.flush(30_000);
    const s = c.stats();
    expect(Object.values(s.dropped).flatMap((r) => Object.values(r))).toEqual(Array(24).fill(0));
    expect(s.retries.stream_failed + s.retries.retry_ack).toBeGreaterThan(0);
    const stored: StoredBatch[] = await g.stored();
    const ids = storedIds(stored);
    // Everything emitted arrived; a batch resent after an unanswered send carried its batch id, so
    // the gateway's duplicate window dropped the resend: every batch and event is stored once.
    expect(new Set(ids)).toEqual(new Set(emitted));
    expect(ids).toHaveLength(emitted.length);
    expect(new Set(stored.map((b) => b.batchId)).size).toBe(stored.length);
    expect(s.acked.normal + s.acked.safety).toBe(emitted.length);
  });

  it('honours the gateway pushing back (rate limit RETRY): backs off and delivers everything', async () => {
    const g = await gateway({ INGEST_DEVICE_RATE: '200', INGEST_DEVICE_BURST: '100' });
    const c = client(g, { maxBatchEvents: 50 });
    const ids: string[] = [];
    for (let i = 0; i < 400; i++) {
      ids.push(`rl-${i}`);
      c.emit(reading(`rl-${i}`));
    }
    await c.flush(30_000);
    expect(storedIds(await g.stored()).sort()).toEqual(ids.sort());
    const s = c.stats();
    expect(s.retries.retry_ack).toBeGreaterThan(0);
    expect(s.lastError?.code).toBe('retry');
    expect(s.lastError?.message).toMatch(/rate limit/);
  });

  it('keeps its events through a refused token and delivers them once the token provider gives a good one', async () => {
    const g = await gateway();
    let token = 'not-the-token';
    const errors: string[] = [];
    const c = client(g, { token: () => token, onError: (e) => errors.push(e.code) });
    for (let i = 0; i < 10; i++) c.emit(reading(`auth-${i}`));
    await waitFor('refused', () => errors.includes('gateway_unauthenticated'));
    expect(c.stats().buffered.events).toBe(10);
    expect(c.stats().lastError?.message).toMatch(/unknown bearer token/);
    token = TEST_TOKEN;
    await c.flush(20_000);
    expect(storedIds(await g.stored()).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `auth-${i}`).sort(),
    );
  });

  it('waits out RESOURCE_EXHAUSTED (streams per credential) and sends once a stream is free', async () => {
    const g = await gateway({
      INGEST_MAX_STREAMS_PER_CREDENTIAL: '1',
      INGEST_RETRY_AFTER: '100ms',
    });
    const a = client(g);
    a.emit(reading('a-0'));
    await a.flush(20_000);
    const errors: Array<{ code: string; message: string }> = [];
    const b = client(g, { onError: (e) => errors.push({ code: e.code, message: e.message }) });
    b.emit(reading('b-0'));
    await waitFor('refused', () => errors.length > 0);
    expect(errors[0]!.message).toMatch(/status 8\b.*open Ingest streams/);
    expect(b.stats().buffered.events).toBe(1);
    await a.close(5_000);
    await b.flush(20_000);
    expect(storedIds(await g.stored()).sort()).toEqual(['a-0', 'b-0']);
  });

  it('speaks TLS to a TLS gateway, verifying its certificate against the CA given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdk-tls-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=sluice-test-gateway',
        '-addext',
        'subjectAltName=DNS:sluice-test-gateway,IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const g = await gateway({ INGEST_TLS_CERT: cert, INGEST_TLS_KEY: key });
    const plain = client(g, { name: 'plain' });
    const errors: string[] = [];
    const wrongCa = client(g, {
      name: 'untrusted',
      tls: { serverName: 'sluice-test-gateway' },
      onError: (e) => errors.push(e.code),
    });
    const c = client(g, { tls: { ca: readFileSync(cert), serverName: 'sluice-test-gateway' } });
    c.emit(reading('tls-0'), 'safety');
    c.emit(frame('tls-1'));
    await c.flush(20_000);
    expect(storedIds(await g.stored()).sort()).toEqual(['tls-0', 'tls-1']);
    // Without TLS, or with a CA that did not sign the gateway's certificate, nothing is sent.
    plain.emit(reading('plain-0'));
    wrongCa.emit(reading('untrusted-0'));
    await waitFor('the untrusted certificate refused', () => errors.length > 0);
    await waitFor('the plaintext client failed', () => plain.stats().lastError !== undefined);
    expect(plain.stats().acked.normal + wrongCa.stats().acked.normal).toBe(0);
    expect(storedIds(await g.stored())).toHaveLength(2);
  });

  it('close() flushes what is held, then refuses new events', async () => {
    const g = await gateway();
    const c = client(g, { lingerMs: '1h' });
    for (let i = 0; i < 25; i++) c.emit(reading(`c-${i}`));
    await expect(c.close(20_000)).resolves.toEqual({ flushed: true, abandoned: 0 });
    expect(c.emit(reading('late'))).toBe(false);
    expect(storedIds(await g.stored())).toHaveLength(25);
  });

  it('close() against a gateway that is down gives up at its deadline and says what it abandoned', async () => {
    const g = await gateway({}, false);
    const c = client(g);
    for (let i = 0; i < 7; i++) c.emit(reading(`d-${i}`), 'safety');
    await expect(c.close(300)).resolves.toEqual({ flushed: false, abandoned: 7 });
    expect(c.stats().dropped.safety.closed).toBe(7);
  });
});

import { Event } from '@sluice/contracts';
import { ConfigError } from '@sluice/errors';
import { Registry } from 'prom-client';
import { backoffDelay, retryAfterDelay } from './backoff';
import { DeviceClient } from './client';
import { measureEmitOverhead } from './overhead';
import type { DropReason, Priority } from './priority';
import { estimateEventBytes } from './size';

// No gateway here: these clients point at a loopback port nothing listens on and, but for the last
// test, are never given the chance to send (a linger of an hour, no flush).
const NOWHERE = '127.0.0.1:1';
const clients: DeviceClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close(0);
});
function client(opts: Partial<ConstructorParameters<typeof DeviceClient>[0]> = {}) {
  const c = new DeviceClient({ target: NOWHERE, lingerMs: '1h', safetyLingerMs: '1h', ...opts });
  clients.push(c);
  return c;
}

const detection = (id: string, labels: string[] = ['person']): Event => ({
  kind: {
    $case: 'detection',
    value: {
      eventId: id,
      deviceId: 'cam-dev-1',
      streamId: 'cam-1',
      frameTime: new Date(),
      region: 'eu-west',
      schemaVersion: 0,
      detections: labels.map((label, i) => ({
        objectId: String(i),
        classId: i,
        label,
        confidence: 0.9,
        trackerId: `t-${i}`,
        bbox: { left: 0.1, top: 0.1, width: 0.2, height: 0.2 },
      })),
      attributes: { model: 'yolo11n' },
      firmwareVersion: '1.0.0',
    },
  },
});

describe('DeviceClient.emit', () => {
  it('returns synchronously, stays within its bound and counts every drop per priority and reason', () => {
    const drops: Array<[string, Priority, DropReason]> = [];
    const c = client({
      maxBufferEvents: 40,
      maxBatchEvents: 5,
      maxInFlightBatches: 2,
      onDrop: (e, p, r) => drops.push([e.kind!.value.eventId, p, r]),
    });
    const results: boolean[] = [];
    // One synchronous loop: no event-loop turn happens, so nothing here can have waited on I/O.
    for (let i = 0; i < 100; i++) results.push(c.emit(detection(`bulk-${i}`), 'bulk'));
    for (let i = 0; i < 10; i++) results.push(c.emit(detection(`safety-${i}`), 'safety'));
    for (let i = 0; i < 50; i++) results.push(c.emit(detection(`normal-${i}`)));
    expect(results.every((r) => typeof r === 'boolean')).toBe(true);
    const s = c.stats();
    expect(s.buffered.events).toBe(40);
    expect(s.buffered.byPriority).toEqual({ safety: 10, normal: 30, bulk: 0 });
    expect(s.queued).toEqual({ safety: 10, normal: 50, bulk: 100 });
    expect(s.dropped.bulk.evicted).toBe(100);
    expect(s.dropped.normal.evicted).toBe(20);
    expect(s.dropped.safety).toEqual({
      evicted: 0,
      buffer_full: 0,
      too_large: 0,
      rejected: 0,
      closed: 0,
      invalid: 0,
      sampled: 0,
      shed: 0,
    });
    expect(drops).toHaveLength(120);
    expect(drops.filter(([id]) => id.startsWith('safety'))).toEqual([]);
    expect(s.sent).toEqual({ safety: 0, normal: 0, bulk: 0 });
    expect(s.connects).toBe(0);
    // Full of safety and normal events, a bulk event is refused.
    expect(c.emit(detection('late-bulk'), 'bulk')).toBe(false);
    expect(c.stats().dropped.bulk.buffer_full).toBe(1);
  });

  it('fills in an empty event id, unique per client, and refuses an event without a kind', () => {
    const c = client({ idPrefix: 'cam-7' });
    const a = detection('');
    const b = detection('');
    expect(c.emit(a)).toBe(true);
    expect(c.emit(b)).toBe(true);
    expect(a.kind!.value.eventId).toMatch(/^cam-7\.e/);
    expect(b.kind!.value.eventId).not.toBe(a.kind!.value.eventId);
    expect(c.emit({ kind: undefined })).toBe(false);
    expect(c.emit(detection('x'), 'urgent' as Priority)).toBe(false);
    expect(c.stats().dropped.normal.invalid).toBe(2);
  });

  it('drops an event larger than a batch may be', () => {
    const c = client({ maxBatchBytes: 200, maxBufferBytes: 100_000 });
    expect(c.emit(detection('big', Array(20).fill('person')), 'safety')).toBe(false);
    expect(c.stats().dropped.safety.too_large).toBe(1);
  });

  it('refuses events after close, and close of an empty client is flushed at once', async () => {
    const c = client();
    await expect(c.close(1_000)).resolves.toEqual({ flushed: true, abandoned: 0 });
    expect(c.emit(detection('after'))).toBe(false);
    expect(c.stats().dropped.normal.closed).toBe(1);
    await expect(c.flush(10)).rejects.toMatchObject({ code: 'client_closed' });
  });
});

describe('DeviceClient options', () => {
  it.each([
    [{ maxBatchEvents: 600, maxBufferEvents: 500 }, /deviceSdk\.maxBatchEvents: must be at most/],
    [
      { maxInFlightBatches: 8, maxBatchEvents: 500, maxBufferEvents: 5000 },
      /deviceSdk\.maxInFlightBatches: .*at most half of maxBufferEvents/,
    ],
    [{ lingerMs: 'soon' }, /deviceSdk\.lingerMs: must be a duration/],
    [{ tls: { cert: 'x' } }, /deviceSdk\.tls: .*cert and key must be given together/],
    [{ defaultPriority: 'urgent' }, /deviceSdk\.defaultPriority/],
    [{ target: '' }, /deviceSdk\.target/],
    [{ colour: 'blue' }, /colour/],
  ])('refuses %j with a ConfigError naming the option', (bad, message) => {
    let caught: unknown;
    try {
      new DeviceClient({ target: NOWHERE, ...(bad as object) } as never);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toMatch(message);
  });

  it('applies the documented defaults', () => {
    const c = client({ lingerMs: undefined, safetyLingerMs: undefined });
    expect(c.options).toMatchObject({
      name: 'device-sdk',
      tls: false,
      maxBufferEvents: 10_000,
      maxBufferBytes: 8 * 1024 * 1024,
      maxBatchEvents: 500,
      maxBatchBytes: 256 * 1024,
      maxRequestBytes: 900_000,
      lingerMs: 20,
      safetyLingerMs: 0,
      maxInFlightBatches: 4,
      retryInitialMs: 100,
      retryMaxMs: 10_000,
      ackTimeoutMs: 30_000,
      defaultPriority: 'normal',
    });
  });
});

describe('DeviceClient metrics', () => {
  it('exports queued, buffered and dropped{priority,reason} on the registry passed in', async () => {
    const registry = new Registry();
    const c = client({
      registry,
      name: 'cam-a',
      maxBufferEvents: 4,
      maxBatchEvents: 1,
      maxInFlightBatches: 1,
    });
    for (let i = 0; i < 6; i++) c.emit(detection(`b-${i}`), 'bulk');
    c.emit(detection('s-0'), 'safety');
    const text = await registry.metrics();
    expect(text).toMatch(/sluice_sdk_events_queued_total\{client="cam-a",priority="bulk"\} 6/);
    expect(text).toMatch(/sluice_sdk_events_queued_total\{client="cam-a",priority="safety"\} 1/);
    expect(text).toMatch(
      /sluice_sdk_events_dropped_total\{client="cam-a",priority="bulk",reason="evicted"\} 3/,
    );
    expect(text).toMatch(/sluice_sdk_buffer_events\{client="cam-a",priority="safety"\} 1/);
    expect(text).toMatch(/sluice_sdk_buffer_events\{client="cam-a",priority="bulk"\} 3/);
    expect(text).toMatch(/sluice_sdk_connected\{client="cam-a"\} 0/);
  });

  it('lets two clients share one registry, told apart by their name', async () => {
    const registry = new Registry();
    client({ registry, name: 'cam-a' }).emit(detection('a'));
    client({ registry, name: 'cam-b' }).emit(detection('b'));
    const text = await registry.metrics();
    expect(text).toMatch(/sluice_sdk_events_queued_total\{client="cam-a",priority="normal"\} 1/);
    expect(text).toMatch(/sluice_sdk_events_queued_total\{client="cam-b",priority="normal"\} 1/);
  });
});

describe('event size estimate', () => {
  it('is at least the encoded size for ASCII events', () => {
    for (const labels of [[], ['person'], Array(30).fill('boat')]) {
      const e = detection('cam-dev-1:cam-1:1700000000000', labels);
      expect(estimateEventBytes(e)).toBeGreaterThanOrEqual(Event.encode(e).finish().byteLength);
    }
    const t: Event = {
      kind: {
        $case: 'telemetry',
        value: {
          eventId: 'boat-17:engine_temp:1700000000000',
          deviceId: 'boat-17',
          eventTime: new Date(),
          sensorType: 'engine_temp',
          value: 87.25,
          unit: 'celsius',
          firmwareVersion: '4.2.1',
          region: 'eu-west',
          schemaVersion: 0,
          attributes: { hull: 'HX-42', site: 'north' },
        },
      },
    };
    expect(estimateEventBytes(t)).toBeGreaterThanOrEqual(Event.encode(t).finish().byteLength);
  });
});

describe('back-off', () => {
  it('doubles from the initial delay up to the cap, jittered within the upper half', () => {
    const lo = () => 0;
    const hi = () => 1;
    expect([1, 2, 3, 4].map((a) => backoffDelay(a, 100, 1_000, hi))).toEqual([100, 200, 400, 800]);
    expect(backoffDelay(10, 100, 1_000, hi)).toBe(1_000);
    expect(backoffDelay(10, 100, 1_000, lo)).toBe(500);
    expect(backoffDelay(1, 100, 1_000, lo)).toBe(50);
    expect(backoffDelay(1e6, 100, 1_000, hi)).toBe(1_000);
    expect(retryAfterDelay(1_000, lo)).toBe(1_000);
    expect(retryAfterDelay(1_000, hi)).toBe(1_200);
  });
});

describe('measureEmitOverhead', () => {
  it('runs the loop without and with the SDK and reports both (no timing asserted)', async () => {
    const c = client();
    const r = await measureEmitOverhead({
      client: c,
      makeEvent: (i) => detection(`f-${i}`),
      frames: 3,
      fps: 100,
      frameMs: 1,
    });
    expect(r.frames).toBe(3);
    expect(c.stats().queued.normal).toBe(3);
    for (const k of ['baselineFrameMs', 'sdkFrameMs', 'emitMeanUs', 'emitP99Us'] as const)
      expect(r[k]).toBeGreaterThan(0);
    expect(Number.isFinite(r.frameOverheadPct)).toBe(true);
    expect(Number.isFinite(r.cpuOverheadPct)).toBe(true);
  });
});

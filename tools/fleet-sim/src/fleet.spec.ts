import { IngestRequest, type Event } from '@sluice/contracts';
import { framePriority, SAFETY_CONFIDENCE } from './cameras';
import { Fleet } from './fleet';
import { TemplatePool } from './load';
import { LatencyHistogram } from './stats';
import { toWireJson } from './wire-json';

describe('Fleet', () => {
  it('produces events at the configured rates, batched per device', () => {
    const f = new Fleet(
      {
        devices: 2,
        sensorsPerDevice: 2,
        minHz: 10,
        maxHz: 10,
        cameraFraction: 0,
        batchSize: 1000,
        flushMs: 100,
      },
      'r',
    );
    expect(f.eventsPerSecond).toBeCloseTo(40);
    let events = 0;
    for (let t = 1_000_000; t <= 1_001_000; t += 10)
      for (const b of f.tick(t)) events += b.batch.events.length;
    for (const b of f.flushAll()) events += b.batch.events.length;
    expect(events).toBeGreaterThanOrEqual(40);
    expect(events).toBeLessThanOrEqual(44);
  });

  it('adds duplicates, malformed events, out-of-order batches and detections when asked', () => {
    const f = new Fleet(
      {
        devices: 5,
        sensorsPerDevice: 3,
        minHz: 100,
        maxHz: 100,
        cameraFraction: 1,
        duplicateFraction: 0.3,
        malformedFraction: 0.1,
        outOfOrderFraction: 0.3,
        batchSize: 20,
      },
      'r',
    );
    const all = [];
    for (let t = 1_000_000; t <= 1_002_000; t += 10) all.push(...f.tick(t));
    expect(all.some((b) => b.duplicate)).toBe(true);
    expect(all.reduce((n, b) => n + b.malformed, 0)).toBeGreaterThan(0);
    expect(all.some((b) => b.batch.events.some((e) => e.kind?.$case === 'detection'))).toBe(true);
    const ids = all.filter((b) => !b.duplicate).map((b) => b.batch.batchId);
    expect(new Set(ids).size).toBe(ids.length);
    const seqs = all
      .filter((b) => !b.duplicate && b.deviceId === 'sim-0')
      .map((b) => Number(b.batch.batchId.split('-').pop()));
    expect(seqs.some((s, i) => i > 0 && s < seqs[i - 1]!)).toBe(true);
  });

  it('hands camera frames to onFrame instead of batching them, malformed at the configured fraction', () => {
    const frames: Array<{ e: Event; device: string; malformed: boolean }> = [];
    const f = new Fleet(
      {
        devices: 3,
        sensorsPerDevice: 1,
        minHz: 10,
        maxHz: 10,
        cameraFraction: 1,
        cameraHz: 20,
        malformedFraction: 0.2,
        flushMs: 0,
      },
      'r',
      { onFrame: (e, device, malformed) => frames.push({ e, device, malformed }) },
    );
    expect(f.cameraCount).toBe(3);
    const batched: Event[] = [];
    for (let t = 1_000_000; t <= 1_001_000; t += 10)
      for (const b of f.tick(t)) batched.push(...b.batch.events);
    expect(batched.every((e) => e.kind?.$case === 'telemetry')).toBe(true);
    expect(frames.length).toBeGreaterThanOrEqual(60);
    expect(frames.every((x) => x.e.kind?.$case === 'detection')).toBe(true);
    expect(new Set(frames.map((x) => x.device))).toEqual(new Set(['sim-0', 'sim-1', 'sim-2']));
    const bad = frames.filter((x) => x.malformed);
    expect(bad.length).toBeGreaterThan(0);
    expect(bad.length).toBeLessThan(frames.length);
    const v = (x: { e: Event }) => x.e.kind!.value as { eventId: string; frameTime?: Date };
    expect(
      bad.every(
        (x) =>
          v(x).eventId.startsWith('bad id') || v(x).frameTime!.getTime() > Date.now() + 3_600_000,
      ),
    ).toBe(true);
  });

  it('makes a frame with a confident person a safety event', () => {
    const frame = (label: string, confidence: number): Event => ({
      kind: {
        $case: 'detection',
        value: {
          eventId: 'e',
          deviceId: 'd',
          streamId: 'cam-1',
          frameTime: new Date(),
          region: 'r',
          schemaVersion: 2,
          detections: [
            {
              objectId: '0',
              classId: 0,
              label,
              confidence,
              trackerId: '',
              bbox: { left: 0, top: 0, width: 0.1, height: 0.1 },
            },
          ],
          attributes: {},
          firmwareVersion: '',
        },
      },
    });
    expect(framePriority(frame('person', SAFETY_CONFIDENCE))).toBe('safety');
    expect(framePriority(frame('person', 0.5))).toBe('normal');
    expect(framePriority(frame('boat', 0.99))).toBe('normal');
  });

  it('renders wire JSON v1 and v2', () => {
    const f = new Fleet(
      { devices: 1, sensorsPerDevice: 1, minHz: 10, maxHz: 10, cameraFraction: 0, flushMs: 0 },
      'r',
    );
    const e = f.tick(1_000_000)[0]!.batch.events[0]!;
    expect(toWireJson(e, 1)).toMatchObject({
      event_id: expect.any(String),
      sensor_type: 'engine_temp',
      region: 'eu-west',
    });
    expect(toWireJson(e, 2)).toMatchObject({
      schema_version: 2,
      reading: { sensor: 'engine_temp' },
    });
  });
});

describe('TemplatePool', () => {
  it('patches a fresh batch id into a copy of the encoded request', () => {
    const pool = new TemplatePool(
      { devices: 4, sensorsPerDevice: 4, minHz: 100, maxHz: 100, cameraFraction: 0, batchSize: 50 },
      3,
      1_000_000,
    );
    const a = pool.next();
    const b = pool.next();
    expect(a.batchId).not.toBe(b.batchId);
    const batch = IngestRequest.decode(a.bytes!).batch!;
    expect(batch.batchId).toBe(a.batchId);
    expect(batch.events).toHaveLength(50);
  });
});

describe('LatencyHistogram', () => {
  it('reports percentiles within a bucket', () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 100; i++) h.record(i);
    expect(h.percentile(50)).toBeGreaterThanOrEqual(50);
    expect(h.percentile(50)).toBeLessThan(53);
    expect(h.percentile(99)).toBeGreaterThanOrEqual(99);
    expect(h.percentile(100)).toBe(100);
  });
});

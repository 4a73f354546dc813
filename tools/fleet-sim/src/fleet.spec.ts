import { IngestRequest, type Event } from '@sluice/contracts';
import { framePriority, SAFETY_CONFIDENCE } from './cameras';
import { Fleet, gpsPosition, gpsTrack, HARBOURS } from './fleet';
import { TemplatePool } from './load';
import { LatencyHistogram } from './stats';
import { toWireJson } from './wire-json';

describe('Fleet GPS', () => {
  const fixes = (f: Fleet, from: number, to: number, stepMs: number) => {
    const out = new Map<string, Array<{ t: number; lat?: number; lon?: number }>>();
    for (let t = from; t <= to; t += stepMs) {
      for (const b of [...f.tick(t), ...(t + stepMs > to ? f.flushAll() : [])]) {
        for (const e of b.batch.events) {
          if (e.kind?.$case !== 'telemetry') continue;
          const v = e.kind.value;
          if (v.sensorType !== 'lat' && v.sensorType !== 'lon') continue;
          expect(v.unit).toBe('degrees');
          const list = out.get(v.deviceId) ?? [];
          const at = v.eventTime!.getTime();
          let fix = list.find((x) => x.t === at);
          if (!fix) list.push((fix = { t: at }));
          fix[v.sensorType] = v.value;
          out.set(v.deviceId, list);
        }
      }
    }
    return out;
  };
  const opts = {
    devices: 6,
    sensorsPerDevice: 1,
    minHz: 1,
    maxHz: 1,
    cameraFraction: 0,
    regions: ['eu-west', 'us-east'],
    gpsHz: 1,
  };

  it('sends lat/lon at gpsHz near each device’s home harbour in its region, moving slowly', () => {
    const f = new Fleet(opts, 'r');
    expect(f.eventsPerSecond).toBeCloseTo(6 * (1 + 2));
    const start = 1_700_000_000_000;
    const byDevice = fixes(f, start, start + 60_000, 100);
    expect([...byDevice.keys()].sort()).toEqual(f.deviceIds.sort());
    for (const [id, list] of byDevice) {
      // 1 Hz over 60 s: 60 or 61 fixes, each with both coordinates.
      expect(list.length).toBeGreaterThanOrEqual(60);
      expect(list.length).toBeLessThanOrEqual(61);
      const region = Number(id.split('-')[1]) % 2 === 0 ? 'eu-west' : 'us-east';
      const home = gpsTrack(id, region).home;
      expect(HARBOURS[region]).toContainEqual(home);
      for (const p of list) {
        expect(Math.abs(p.lat! - home.lat)).toBeLessThanOrEqual(0.05);
        expect(Math.abs(p.lon! - home.lon)).toBeLessThanOrEqual(0.1);
      }
      if (region === 'eu-west') {
        for (const p of list) expect(p.lon!).toBeGreaterThan(-10);
        for (const p of list) expect(p.lon!).toBeLessThan(10);
      } else {
        for (const p of list) expect(p.lon!).toBeLessThan(-65);
      }
      // Slow: under 15 m/s (about 30 knots) between consecutive fixes, yet it does move.
      const sorted = list.sort((a, b) => a.t - b.t);
      let moved = 0;
      for (let i = 1; i < sorted.length; i++) {
        const [a, b] = [sorted[i - 1]!, sorted[i]!];
        const dy = (b.lat! - a.lat!) * 111_320;
        const dx = (b.lon! - a.lon!) * 111_320 * Math.cos((a.lat! * Math.PI) / 180);
        const metres = Math.hypot(dx, dy);
        expect(metres / ((b.t - a.t) / 1000)).toBeLessThan(15);
        moved += metres;
      }
      expect(moved).toBeGreaterThan(10);
    }
  });

  it('is deterministic per device id: same track whatever the fleet’s seed or size', () => {
    const a = fixes(new Fleet({ ...opts, seed: 1 }, 'a'), 1_000_000, 1_010_000, 500);
    const b = fixes(new Fleet({ ...opts, devices: 2, seed: 99 }, 'b'), 1_000_000, 1_010_000, 500);
    expect(b.get('sim-0')).toEqual(a.get('sim-0'));
    expect(b.get('sim-1')).toEqual(a.get('sim-1'));
    expect(a.get('sim-2')).not.toEqual(a.get('sim-0'));
    expect(gpsTrack('boat-7', 'us-east')).toEqual(gpsTrack('boat-7', 'us-east'));
    const track = gpsTrack('boat-7', 'us-east');
    expect(gpsPosition(track, 5_000)).toEqual(gpsPosition(track, 5_000));
  });

  it('sends no positions when gpsHz is 0 (the library default)', () => {
    const f = new Fleet({ ...opts, gpsHz: 0 }, 'r');
    expect(f.eventsPerSecond).toBeCloseTo(6);
    expect(fixes(f, 1_000_000, 1_005_000, 100).size).toBe(0);
  });
});

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

import { AdviceSampler, keepEvery, parseTierRules, TierClassifier } from './sampling';
import type { Event } from './gen/sluice/telemetry/v1/telemetry';

const reading = (device: string, sensor: string): Event => ({
  kind: {
    $case: 'telemetry',
    value: {
      eventId: '',
      deviceId: device,
      eventTime: new Date(0),
      sensorType: sensor,
      value: 1,
      unit: '1',
      firmwareVersion: '',
      region: 'eu-west',
      schemaVersion: 0,
      attributes: {},
    },
  },
});

const advice = (bulk: number, diagnostic = 1) => ({
  tiers: [
    { tier: 'safety', keep: 1, sensors: ['engine_temp', 'bilge_level'] },
    { tier: 'diagnostic', keep: diagnostic, sensors: ['engine_*'] },
    { tier: 'bulk', keep: bulk, sensors: ['*'] },
  ],
});

describe('sensor tiers', () => {
  it('parses the tiers, and names what is wrong', () => {
    expect(parseTierRules('safety=engine_temp|bilge_level; diagnostic=engine_*;bulk=*')).toEqual({
      safety: ['engine_temp', 'bilge_level'],
      diagnostic: ['engine_*'],
      bulk: ['*'],
    });
    expect(parseTierRules('')).toEqual({ safety: [], diagnostic: [], bulk: [] });
    expect(() => parseTierRules('urgent=x')).toThrow('"urgent" is not a tier');
    expect(() => parseTierRules('bulk=a b')).toThrow('"a b" is not a sensor pattern');
    expect(() => parseTierRules('safety=x;bulk=x')).toThrow(
      '"x" is in two tiers (safety and bulk)',
    );
    expect(() => parseTierRules('bulk')).toThrow('expected bulk=');
  });

  it('classifies: exact name, then the longest prefix, then *; none without a match', () => {
    const c = new TierClassifier(
      parseTierRules('safety=engine_temp|engine_oil_*;diagnostic=engine_*;bulk=vib*'),
    );
    expect(c.tierOf('engine_temp')).toBe('safety');
    expect(c.tierOf('engine_oil_pressure')).toBe('safety');
    expect(c.tierOf('engine_rpm')).toBe('diagnostic');
    expect(c.tierOf('vibration_x')).toBe('bulk');
    expect(c.tierOf('gps_lat')).toBeUndefined();
    const all = new TierClassifier(parseTierRules('safety=engine_temp;bulk=*'));
    expect(all.tierOf('gps_lat')).toBe('bulk');
    expect(all.tierOf('engine_temp')).toBe('safety');
  });

  it('keeps one in round(1/keep)', () => {
    expect([1, 0.5, 0.25, 0.3, 0.0625, 0, 2].map(keepEvery)).toEqual([1, 2, 4, 3, 16, 1, 1]);
  });
});

describe('AdviceSampler', () => {
  it('keeps everything without advice, and never samples safety', () => {
    const s = new AdviceSampler();
    for (let i = 0; i < 10; i++) expect(s.keep(reading('d', 'vibration_x'))).toBe(true);
    s.update(advice(0.25, 0.5));
    for (let i = 0; i < 20; i++) expect(s.keep(reading('d', 'engine_temp'))).toBe(true);
  });

  it('thins each series evenly: one in N, whatever the other series do', () => {
    const s = new AdviceSampler();
    s.update(advice(0.25, 0.5));
    const kept: Record<string, boolean[]> = { a: [], b: [], rpm: [] };
    for (let i = 0; i < 12; i++) {
      kept.a!.push(s.keep(reading('d1', 'vibration_x')));
      if (i % 3 === 0) kept.b!.push(s.keep(reading('d2', 'vibration_x')));
      kept.rpm!.push(s.keep(reading('d1', 'engine_rpm')));
    }
    expect(kept.a).toEqual([
      true,
      false,
      false,
      false,
      true,
      false,
      false,
      false,
      true,
      false,
      false,
      false,
    ]);
    expect(kept.b).toEqual([true, false, false, false]);
    expect(kept.rpm!.filter(Boolean)).toHaveLength(6);
    // Detections have no tier: never sampled.
    const detection: Event = {
      kind: {
        $case: 'detection',
        value: {
          eventId: '',
          deviceId: 'd1',
          streamId: 'cam-1',
          frameTime: new Date(0),
          region: 'eu-west',
          schemaVersion: 0,
          detections: [],
          attributes: {},
          firmwareVersion: '',
        },
      },
    };
    for (let i = 0; i < 5; i++) expect(s.keep(detection)).toBe(true);
  });

  it('goes back to keeping everything when the advice returns to 1 or is absent', () => {
    const s = new AdviceSampler();
    s.update(advice(0.5));
    expect(s.everyOf('bulk')).toBe(2);
    s.update(advice(1));
    expect(s.active).toBe(false);
    expect([1, 2, 3].map(() => s.keep(reading('d', 'vibration_x')))).toEqual([true, true, true]);
    s.update(advice(0.5));
    s.update(undefined);
    expect(s.everyOf('bulk')).toBe(1);
  });
});

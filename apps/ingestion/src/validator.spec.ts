import type { Event } from '@sluice/contracts';
import { EventValidator } from './validator';
import { telemetry } from './test-fixtures/client';

const NOW = Date.parse('2026-05-01T12:00:00Z');
const v = new EventValidator(['eu-west'], {
  maxFutureSkewMs: 3_600_000,
  maxAgeMs: 86_400_000,
  maxAttributes: 2,
});
const any = { now: NOW, devices: '*' as const };
const ev = (over: Partial<Record<string, unknown>> = {}): Event => {
  const e = telemetry('e-1', 'boat-17', 'eu-west', { eventTime: new Date(NOW) });
  Object.assign(e.kind!.value, over);
  return e;
};
const detection = (over: Record<string, unknown> = {}): Event => ({
  kind: {
    $case: 'detection',
    value: {
      eventId: 'd-1',
      deviceId: 'cam-dev',
      streamId: 'cam-1',
      frameTime: new Date(NOW),
      region: 'eu-west',
      schemaVersion: 2,
      firmwareVersion: '',
      attributes: {},
      detections: [
        {
          objectId: '0',
          classId: 0,
          label: 'person',
          confidence: 0.9,
          trackerId: '',
          bbox: { left: 0.1, top: 0.1, width: 0.2, height: 0.2 },
        },
      ],
      ...over,
    },
  },
});

describe('EventValidator', () => {
  it('accepts a good telemetry and detection event', () => {
    expect(v.check(ev(), 0, any)).toBeUndefined();
    expect(v.check(detection(), 0, any)).toBeUndefined();
  });

  it.each([
    [{ eventId: '' }, 'telemetry.event_id', /is required/],
    [{ eventId: 'a b' }, 'telemetry.event_id', /may contain only/],
    [{ eventId: 'x'.repeat(129) }, 'telemetry.event_id', /at most 128/],
    [{ deviceId: '' }, 'telemetry.device_id', /is required/],
    [{ region: 'EU' }, 'telemetry.region', /region token/],
    [{ region: 'us-east' }, 'telemetry.region', /not served by this gateway \(serves: eu-west\)/],
    [{ eventTime: undefined }, 'telemetry.event_time', /is required/],
    [
      { eventTime: new Date(NOW + 2 * 3_600_000) },
      'telemetry.event_time',
      /7200 s in the future; at most 3600 s/,
    ],
    [{ eventTime: new Date(NOW - 2 * 86_400_000) }, 'telemetry.event_time', /older than 86400 s/],
    [{ value: Number.POSITIVE_INFINITY }, 'telemetry.value', /finite number/],
    [{ unit: '' }, 'telemetry.unit', /is required/],
    [{ sensorType: 'a\u0000b' }, 'telemetry.sensor_type', /printable/],
    [{ schemaVersion: 3 }, 'telemetry.schema_version', /unsupported schema version 3/],
    [{ attributes: { a: '1', b: '2', c: '3' } }, 'telemetry.attributes', /at most 2 entries/],
  ])('rejects %j at %s', (over, field, reason) => {
    const r = v.check(ev(over), 4, any);
    expect(r).toMatchObject({ index: 4, field });
    expect(r!.reason).toMatch(reason);
  });

  it('names the event in a rejection once its id is valid', () => {
    expect(v.check(ev({ value: Number.NaN }), 0, any)!.eventId).toBe('e-1');
    expect(v.check(ev({ eventId: 'bad id' }), 0, any)!.eventId).toBe('');
  });

  it('rejects devices outside the caller scope', () => {
    expect(v.check(ev(), 0, { now: NOW, devices: new Set(['boat-17']) })).toBeUndefined();
    expect(v.check(ev(), 0, { now: NOW, devices: new Set(['boat-18']) })!.reason).toMatch(
      /may not publish for device "boat-17"/,
    );
  });

  it('checks detection boxes and confidences', () => {
    const box = { left: 0.9, top: 0.1, width: 0.2, height: 0.2 };
    expect(
      v.check(
        detection({
          detections: [
            { objectId: '0', classId: 0, label: 'p', confidence: 0.5, trackerId: '', bbox: box },
          ],
        }),
        0,
        any,
      )!.reason,
    ).toMatch(/inside the frame/);
    expect(
      v.check(
        detection({
          detections: [
            {
              objectId: '0',
              classId: 0,
              label: 'p',
              confidence: 1.5,
              trackerId: '',
              bbox: undefined,
            },
          ],
        }),
        0,
        any,
      )!.field,
    ).toBe('detection.detections[0].confidence');
    expect(v.check(detection({ schemaVersion: 1 }), 0, any)!.field).toBe(
      'detection.schema_version',
    );
  });

  it('rejects an event without a kind', () => {
    expect(v.check({ kind: undefined }, 2, any)).toMatchObject({ index: 2, field: 'kind' });
  });
});

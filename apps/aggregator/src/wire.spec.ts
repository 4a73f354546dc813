import {
  DecodeError,
  decodeBatch,
  DetectionEvent,
  encodeBatch,
  NAME_TOKEN_PATTERN,
  TelemetryEvent,
  type Event,
} from '@sluice/contracts';
import { rng } from '@sluice/testing';
import { decodeReadings, type DecodedReadings } from './wire';

/** The definition: the generated decoder, then the aggregator's rules for a usable reading. */
function reference(bytes: Uint8Array): DecodedReadings {
  const out: DecodedReadings = { readings: [], detections: 0, invalid: 0 };
  const control = (s: string) => [...s].some((c) => c.charCodeAt(0) < 0x20);
  for (const e of decodeBatch(bytes).events) {
    if (e.kind?.$case === 'detection') {
      out.detections++;
      continue;
    }
    if (e.kind?.$case !== 'telemetry') {
      out.invalid++;
      continue;
    }
    const v = e.kind.value;
    const t = v.eventTime?.getTime();
    const ok =
      t !== undefined &&
      Number.isFinite(t) &&
      Number.isFinite(v.value) &&
      !!v.deviceId &&
      v.deviceId.length <= 128 &&
      !control(v.deviceId) &&
      !!v.sensorType &&
      v.sensorType.length <= 128 &&
      !control(v.sensorType) &&
      NAME_TOKEN_PATTERN.test(v.region);
    if (ok)
      out.readings.push({
        device: v.deviceId,
        region: v.region,
        sensor: v.sensorType,
        t: t!,
        value: v.value,
      });
    else out.invalid++;
  }
  return out;
}

function randomEvents(seed: number, n: number): Event[] {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const devices = [
    'dev-1',
    'boat-⛵-7',
    'd'.repeat(40),
    'x'.repeat(129),
    '',
    'bad\u0001id',
    'ünïcødé-device-name-longer-than-32',
  ];
  const regions = ['eu', 'us-east', 'EU', '', 'ap_south-1'];
  const sensors = ['engine_temp', 'rpm', '', 's'.repeat(130), 'température'];
  const times = [
    new Date(1_700_000_000_123),
    new Date(-86_400_000 - 7),
    new Date(0),
    undefined,
    new Date(1_700_000_000_000 + 0.5),
  ];
  const values = [71.5, -0, 1e308, Number.NaN, Number.POSITIVE_INFINITY, 0, -273.15];
  return Array.from({ length: n }, (): Event => {
    const roll = random();
    if (roll < 0.1)
      return {
        kind: {
          $case: 'detection',
          value: DetectionEvent.fromPartial({
            eventId: 'det',
            deviceId: 'cam',
            frameTime: new Date(),
            detections: [
              { label: 'boat', confidence: 0.9, bbox: { left: 1, top: 2, width: 3, height: 4 } },
            ],
          }),
        },
      };
    if (roll < 0.15) return {};
    return {
      kind: {
        $case: 'telemetry',
        value: TelemetryEvent.fromPartial({
          eventId: `e-${Math.floor(random() * 1e9)}`,
          deviceId: pick(devices),
          region: pick(regions),
          sensorType: pick(sensors),
          value: pick(values),
          unit: 'C',
          firmwareVersion: '1.2.3',
          schemaVersion: 2,
          ...(pick(times) ? { eventTime: pick(times.filter((x) => x)) } : {}),
          attributes: random() < 0.5 ? { hull: 'a', 'key with space': 'välue' } : {},
        }),
      },
    };
  });
}

describe('decodeReadings', () => {
  it.each([1, 2, 3, 4, 5])('reads what the generated decoder reads (seed %i)', (seed) => {
    const bytes = encodeBatch({ batchId: `raw:S:${seed}`, events: randomEvents(seed, 400) });
    expect(decodeReadings(bytes)).toEqual(reference(bytes));
  });

  it('takes the last value of a repeated field and the last member of the oneof, as the generated decoder does', () => {
    const a = encodeBatch({ batchId: 'a', events: randomEvents(9, 1) });
    const b = encodeBatch({ batchId: 'b', events: randomEvents(10, 3) });
    const joined = new Uint8Array([...a, ...b]);
    expect(decodeReadings(joined)).toEqual(reference(joined));
    const telemetry = TelemetryEvent.encode(
      TelemetryEvent.fromPartial({
        deviceId: 'd1',
        sensorType: 's',
        region: 'eu',
        eventTime: new Date(5),
        value: 1,
      }),
    ).finish();
    const again = TelemetryEvent.encode(
      TelemetryEvent.fromPartial({ deviceId: 'd2', value: 2 }),
    ).finish();
    // Event{telemetry, telemetry}: the second telemetry replaces the first.
    const event = new Uint8Array([
      0x0a,
      telemetry.length,
      ...telemetry,
      0x0a,
      again.length,
      ...again,
    ]);
    const batch = new Uint8Array([0x12, event.length, ...event]);
    expect(decodeReadings(batch)).toEqual(reference(batch));
  });

  it('rejects truncated and non-protobuf bytes with a DecodeError, wherever they are cut', () => {
    const bytes = encodeBatch({ batchId: 'raw:S:1', events: randomEvents(7, 20) });
    let rejected = 0;
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const part = bytes.subarray(0, cut);
      let generated: unknown;
      try {
        decodeBatch(part);
      } catch (err) {
        generated = err;
      }
      if (generated === undefined) expect(decodeReadings(part)).toEqual(reference(part));
      else {
        expect(() => decodeReadings(part)).toThrow(DecodeError);
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(10);
    expect(() => decodeReadings(new TextEncoder().encode('{"event_id":"x"}'))).toThrow(
      /cannot decode sluice.telemetry.v1.EventBatch/,
    );
    expect(() => decodeReadings(new Uint8Array([0x12, 0x05, 0x0a]))).toThrow(DecodeError);
    expect(() => decodeReadings(new Uint8Array([0x0b, 0x0c]))).toThrow(/wire type 3/); // a group
  });

  it('rejects an event time beyond the safe integer range like the generated decoder', () => {
    // Timestamp{seconds: 2^62}: varint of 9 bytes.
    const ts = new Uint8Array([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    const telemetry = new Uint8Array([0x12, 0x02, 0x64, 0x31, 0x1a, ts.length, ...ts]);
    const event = new Uint8Array([0x0a, telemetry.length, ...telemetry]);
    const batch = new Uint8Array([0x12, event.length, ...event]);
    expect(() => decodeBatch(batch)).toThrow();
    expect(() => decodeReadings(batch)).toThrow(DecodeError);
  });
});

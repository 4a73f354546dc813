import { encodeBatch, TelemetryEvent, type EventBatch } from '@sluice/contracts';
import { decodeRequest } from './grpc-server';
import { hasReplacementChar, invalidUtf8Field } from './utf8';

const event = (over: Partial<TelemetryEvent> = {}) => ({
  kind: {
    $case: 'telemetry' as const,
    value: TelemetryEvent.fromPartial({
      eventId: 'e-1',
      deviceId: 'boat-1',
      sensorType: 'TEMP',
      unit: 'C',
      region: 'eu-west',
      value: 21.5,
      eventTime: new Date(),
      attributes: { hull: 'a' },
      ...over,
    }),
  },
});

/** The encoded batch with the bytes of `marker` (ASCII, same length) replaced by `bytes`. */
function withBytes(batch: EventBatch, marker: string, bytes: number[]): Uint8Array {
  const raw = Buffer.from(encodeBatch(batch));
  const at = raw.indexOf(Buffer.from(marker));
  expect(at).toBeGreaterThan(0);
  Buffer.from(bytes).copy(raw, at);
  return raw;
}

/** An IngestRequest frame body: field 1 (the batch) around the raw EventBatch. */
function request(raw: Uint8Array): Buffer {
  const len: number[] = [];
  let n = raw.length;
  while (n > 0x7f) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from([0x0a, ...len]), Buffer.from(raw)]);
}

describe('UTF-8 of protobuf strings', () => {
  it('finds the first invalid string field by its wire path, and passes valid text', () => {
    const raw = withBytes(
      { batchId: 'b-1', events: [event(), event({ eventId: 'e-2', sensorType: 'XXXX' })] },
      'XXXX',
      [0xff, 0xfe, 0xc0, 0x80],
    );
    expect(invalidUtf8Field(raw)).toBe('events.telemetry.sensor_type');
    const attr = withBytes(
      { batchId: 'b-1', events: [event({ attributes: { k: 'YY' } })] },
      'YY',
      [0xc3, 0x28],
    );
    expect(invalidUtf8Field(attr)).toBe('events.telemetry.attributes.2');
    expect(
      invalidUtf8Field(
        encodeBatch({
          batchId: 'b-1',
          events: [event({ unit: '°C', attributes: { rumpf: 'Stahl – grün', note: '\uFFFD' } })],
        }),
      ),
    ).toBeUndefined();
  });

  it('refuses a request with an invalid string, accepts a real U+FFFD character', () => {
    const bad = decodeRequest(
      request(
        withBytes(
          { batchId: 'b-1', events: [event({ sensorType: 'XXXX' })] },
          'XXXX',
          [0xff, 0xfe, 0xc0, 0x80],
        ),
      ),
    );
    expect(bad).toEqual({
      error: 'events.telemetry.sensor_type is not valid UTF-8 (protobuf strings must be UTF-8)',
    });
    const good = decodeRequest(
      request(encodeBatch({ batchId: 'b-1', events: [event({ sensorType: 'T\uFFFD' })] })),
    );
    expect(good.error).toBeUndefined();
    expect(good.batch!.events[0]!.kind!.value.eventId).toBe('e-1');
    expect(hasReplacementChar(good.batch!)).toBe(true);
  });
});

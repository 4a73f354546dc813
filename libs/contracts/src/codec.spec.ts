import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DecodeError,
  DeadLetter,
  EventBatch,
  MissingEventKindError,
  Rollup,
  RollupScope,
  decodeBatch,
  decodeDeadLetter,
  decodeRollup,
  encodeBatch,
  encodeDeadLetter,
  encodeRollup,
  eventDeviceId,
  eventId,
  eventRegion,
  eventTime,
  parseWireEvent,
  type Event,
} from './index';

function wireEvent(name: string): Event {
  const result = parseWireEvent(
    JSON.parse(readFileSync(join(__dirname, 'wire', 'fixtures', name), 'utf8')),
  );
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.event;
}

const telemetry = wireEvent('v1-telemetry.json');
const detection = wireEvent('v2-detection.json');

describe('EventBatch codec', () => {
  it('round-trips parsed wire events unchanged', () => {
    const batch: EventBatch = { batchId: 'boat-17:000042', events: [telemetry, detection] };
    const bytes = encodeBatch(batch);
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(decodeBatch(bytes)).toEqual(batch);
  });

  it('throws DecodeError on bytes that are not an EventBatch', () => {
    const garbage = Buffer.from('definitely not protobuf');
    expect(() => decodeBatch(garbage)).toThrow(DecodeError);
    expect(() => decodeBatch(garbage)).toThrow(
      /^cannot decode sluice\.telemetry\.v1\.EventBatch from 23 bytes: /,
    );
  });

  it('throws DecodeError on a truncated batch, keeping the cause', () => {
    const bytes = encodeBatch({ batchId: 'b', events: [telemetry] });
    let error: unknown;
    try {
      decodeBatch(bytes.subarray(0, bytes.length - 5));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DecodeError);
    expect(error).toMatchObject({
      name: 'DecodeError',
      messageType: 'sluice.telemetry.v1.EventBatch',
      byteLength: bytes.length - 5,
    });
    expect((error as DecodeError).cause).toBeInstanceOf(Error);
  });
});

describe('Rollup codec', () => {
  const rollup: Rollup = {
    scope: RollupScope.DEVICE,
    deviceId: 'boat-17',
    region: 'eu-west',
    sensorType: 'engine_temp',
    resolution: '1m',
    windowStart: new Date('2026-05-01T12:00:00Z'),
    windowEnd: new Date('2026-05-01T12:01:00Z'),
    count: 3,
    sum: 262.5,
    min: 87,
    max: 88,
    avg: 87.5,
    firstValue: 87,
    firstTime: new Date('2026-05-01T12:00:00.123Z'),
    lastValue: 88,
    lastTime: new Date('2026-05-01T12:00:59.999Z'),
    revision: 2,
    lateCount: 1,
  };

  it('round-trips', () => {
    expect(decodeRollup(encodeRollup(rollup))).toEqual(rollup);
  });

  it('refuses 64-bit counts that a JS number cannot hold exactly', () => {
    const bytes = encodeRollup({ ...rollup, count: 2 ** 60 });
    expect(() => decodeRollup(bytes)).toThrow(DecodeError);
    expect(() => decodeRollup(bytes)).toThrow(/MAX_SAFE_INTEGER/);
  });

  it('throws DecodeError on garbage', () => {
    expect(() => decodeRollup(Uint8Array.of(0xff, 0xff, 0xff))).toThrow(DecodeError);
  });
});

describe('DeadLetter codec', () => {
  it('round-trips, payload bytes included', () => {
    const deadLetter: DeadLetter = {
      service: 'webhook-dispatcher',
      errorClass: 'DecodeError',
      errorMessage: 'cannot decode',
      deliveryCount: 5,
      originalSubject: 'telemetry.clean.eu-west',
      originalStream: 'TELEMETRY',
      originalStreamSequence: 123456789,
      payload: Buffer.from([0, 1, 2, 255]),
      originalHeaders: { 'Nats-Msg-Id': 'raw:42' },
      failedAt: new Date('2026-05-01T12:00:00Z'),
    };
    const decoded = decodeDeadLetter(encodeDeadLetter(deadLetter));
    expect(decoded).toEqual(deadLetter);
    expect(Buffer.isBuffer(decoded.payload)).toBe(true);
  });

  it('throws DecodeError on a JSON body published by mistake', () => {
    expect(() => decodeBatch(Buffer.from('{"event_id":"e-1"}'))).toThrow(DecodeError);
  });

  it('throws DecodeError on garbage', () => {
    expect(() => decodeDeadLetter(Buffer.from('{"json":true}'))).toThrow(DecodeError);
  });
});

describe('Event accessors', () => {
  it('read through the oneof', () => {
    expect([eventId(telemetry), eventRegion(telemetry), eventDeviceId(telemetry)]).toEqual([
      '01HZX3K9Q7J2W5V8N4M6B1C0DE',
      'eu-west',
      'boat-17',
    ]);
    expect([eventId(detection), eventRegion(detection), eventDeviceId(detection)]).toEqual([
      'cam-1:frame:000184467',
      'eu-west',
      'boat-17',
    ]);
    expect(eventTime(telemetry)).toEqual(new Date('2026-05-01T12:00:00.123Z'));
    expect(eventTime(detection)).toEqual(new Date('2026-05-01T12:00:00.040Z'));
  });

  it('throw MissingEventKindError on an event without kind', () => {
    const { events } = decodeBatch(encodeBatch({ batchId: 'b', events: [{}] }));
    expect(events).toEqual([{ kind: undefined }]);
    const empty: Event = events[0] ?? {};
    expect(() => eventId(empty)).toThrow(MissingEventKindError);
    expect(() => eventTime(empty)).toThrow(
      'event has no kind: exactly one of "telemetry" or "detection" must be set',
    );
  });
});

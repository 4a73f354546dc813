// DLQ messages built in memory for the unit specs (the integration specs use the real publishers).
import {
  encodeDeadLetter,
  HEADERS,
  TelemetryEvent,
  type DeadLetter,
  type Event,
} from '@sluice/contracts';
import type { RawLetter } from '../letter';

/** A DLQ message holding a DeadLetter with `fields` over plausible defaults. */
export function rawLetter(
  seq: number,
  fields: Partial<DeadLetter> = {},
  extra: { headers?: Record<string, string>; subject?: string } = {},
): RawLetter {
  const letter: DeadLetter = {
    service: 'mongo-capture',
    errorClass: 'RecordRejectedError',
    errorMessage: 'rejected',
    deliveryCount: 1,
    originalSubject: 'telemetry.clean.eu',
    originalStream: 'TELEMETRY',
    originalStreamSequence: 10,
    payload: Buffer.alloc(0),
    originalHeaders: {},
    failedAt: new Date(Date.UTC(2026, 10, 1, 12, 0, seq)),
    ...fields,
  };
  return {
    seq,
    subject: extra.subject ?? `dlq.${letter.service}`,
    headers: {
      [HEADERS.DLQ_SERVICE]: letter.service,
      [HEADERS.DLQ_ERROR_CLASS]: letter.errorClass,
      ...(extra.headers ?? {}),
    },
    data: encodeDeadLetter(letter),
    storedAt: new Date(Date.UTC(2026, 10, 1, 12, 0, seq)),
  };
}

/** A telemetry reading of `deviceId` (event time 2023-11-14T22:13:20Z). */
export function reading(eventId: string, deviceId: string, region = 'eu'): Event {
  return {
    kind: {
      $case: 'telemetry',
      value: TelemetryEvent.fromPartial({
        eventId,
        deviceId,
        region,
        sensorType: 'engine_temp',
        value: 71.5,
        unit: 'C',
        eventTime: new Date(1_700_000_000_000),
        schemaVersion: 2,
      }),
    },
  };
}

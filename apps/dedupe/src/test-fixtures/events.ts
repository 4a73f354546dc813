// Test builders shared by the dedupe specs (no network).
import { TelemetryEvent, type Event } from '@sluice/contracts';

/** A telemetry event with the given id (event time 2023-11-14T22:13:20Z unless given). */
export function telemetryEvent(
  eventId: string,
  region = 'eu',
  deviceId = 'dev-1',
  eventTime = new Date(1_700_000_000_000),
): Event {
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
        eventTime,
        schemaVersion: 1,
      }),
    },
  };
}

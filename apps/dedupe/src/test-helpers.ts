// Test builders shared by the dedupe specs and the benchmark (no network).
import { TelemetryEvent, type Event } from '@sluice/contracts';

/** A telemetry event with the given id. */
export function telemetryEvent(eventId: string, region = 'eu', deviceId = 'dev-1'): Event {
  return {
    kind: {
      $case: 'telemetry',
      value: TelemetryEvent.fromPartial({ eventId, deviceId, region, sensorType: 'engine_temp', value: 71.5, unit: 'C', eventTime: new Date(1_700_000_000_000), schemaVersion: 1 }),
    },
  };
}

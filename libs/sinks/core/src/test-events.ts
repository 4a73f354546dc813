import type { Event } from '@sluice/contracts';

/** A telemetry event with deterministic fields, for tests and benchmarks. */
export function telemetryEvent(
  id: string,
  opts: {
    region?: string;
    deviceId?: string;
    sensorType?: string;
    time?: Date;
    value?: number;
    attributes?: Record<string, string>;
  } = {},
): Event {
  return {
    kind: {
      $case: 'telemetry',
      value: {
        eventId: id,
        deviceId: opts.deviceId ?? 'dev-1',
        eventTime: opts.time ?? new Date(Date.UTC(2026, 10, 1, 12, 0, 0)),
        sensorType: opts.sensorType ?? 'engine_temp',
        value: opts.value ?? 21.5,
        unit: 'celsius',
        firmwareVersion: '1.2.3',
        region: opts.region ?? 'eu-west',
        schemaVersion: 2,
        attributes: opts.attributes ?? { site: 'plant-7' },
      },
    },
  };
}

/** A detection event with one bounding box, for tests. */
export function detectionEvent(
  id: string,
  opts: { region?: string; deviceId?: string; time?: Date } = {},
): Event {
  return {
    kind: {
      $case: 'detection',
      value: {
        eventId: id,
        deviceId: opts.deviceId ?? 'cam-dev-1',
        streamId: 'cam-1',
        frameTime: opts.time ?? new Date(Date.UTC(2026, 10, 1, 12, 0, 1)),
        region: opts.region ?? 'eu-west',
        schemaVersion: 2,
        detections: [
          {
            objectId: 'o1',
            classId: 1,
            label: 'person',
            confidence: 0.91,
            trackerId: '184467440737095516',
            bbox: { left: 0.1, top: 0.2, width: 0.3, height: 0.4 },
          },
        ],
        attributes: {},
        firmwareVersion: '',
      },
    },
  };
}

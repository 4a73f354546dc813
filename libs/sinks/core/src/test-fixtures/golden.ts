// The golden events of the export formats: every destination's integration spec writes them and
// checks that what it reads back from the real server equals GOLDEN_RECORDS (golden-records.json).
import type { Event } from '@sluice/contracts';
import type { ExportRecord } from '../formats';
import golden from './golden-records.json';

/**
 * A reading and a frame chosen to trip the formats: a non-ASCII device id, CSV-hostile attribute
 * values, a double that is not short in decimal, milliseconds, 32-bit
 * floats, an untracked detection without a box.
 */
export const GOLDEN_EVENTS: readonly Event[] = [
  {
    kind: {
      $case: 'telemetry',
      value: {
        eventId: 'golden-t-1',
        deviceId: 'pump-ü-7',
        eventTime: new Date(Date.UTC(2026, 10, 1, 12, 0, 0, 123)),
        sensorType: 'engine_temp',
        value: 0.1 + 0.2,
        unit: 'celsius',
        firmwareVersion: '1.2.3',
        region: 'eu-west',
        schemaVersion: 2,
        attributes: { site: 'plant-7', note: 'a,b "quoted"\nnext line' },
      },
    },
  },
  {
    kind: {
      $case: 'detection',
      value: {
        eventId: 'golden-d-1',
        deviceId: 'cam-dev-1',
        streamId: 'cam-1',
        frameTime: new Date(Date.UTC(2026, 10, 1, 12, 0, 1, 40)),
        region: 'eu-west',
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
          {
            objectId: 'o2',
            classId: 3,
            label: 'car',
            confidence: Math.fround(0.55),
            trackerId: '',
            bbox: undefined,
          },
        ],
        attributes: { lens: 'wide' },
        firmwareVersion: '4.0.1',
      },
    },
  },
];

/** What every destination must hold for {@link GOLDEN_EVENTS}, field for field. */
export const GOLDEN_RECORDS = golden as unknown as readonly ExportRecord[];

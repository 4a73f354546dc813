import type { Event } from '@sluice/contracts';
import { rowToEvent } from './reader';
import { decodeParquet, encodeParquet, toRow, type Row } from './schema';

const prov = {
  stream: 'TELEMETRY',
  stream_seq: 7,
  batch_index: 3,
  batch_id: 'b-1',
  stored_at: 1764000000123,
};

const events: Event[] = [
  {
    kind: {
      $case: 'telemetry',
      value: {
        eventId: 'e-1',
        deviceId: 'boat-1',
        eventTime: new Date(1764000000456),
        sensorType: 'engine_temp',
        value: 81.25,
        unit: 'celsius',
        firmwareVersion: '1.2.3',
        region: 'eu-west',
        schemaVersion: 2,
        attributes: { hull: 'h1', 'with space': 'ü' },
      },
    },
  },
  {
    kind: {
      $case: 'detection',
      value: {
        eventId: 'e-2',
        deviceId: 'cam-1',
        streamId: 'rtsp://cam-1/main',
        frameTime: new Date(1764000000789),
        region: 'eu-west',
        schemaVersion: 2,
        firmwareVersion: '',
        attributes: {},
        detections: [
          {
            objectId: 'o1',
            classId: 3,
            label: 'boat',
            confidence: Math.fround(0.875),
            trackerId: '18446744073709551615',
            bbox: { left: 0.125, top: 0.25, width: 0.5, height: 0.0625 },
          },
          { objectId: 'o2', classId: 1, label: 'person', confidence: 0.5, trackerId: '' },
        ],
      },
    },
  },
];

describe('rowToEvent', () => {
  it.each(events.map((e) => [e.kind!.$case, e] as const))(
    'gives back the %s event the archive stored, through a Parquet file',
    (_kind, event) => {
      const row = toRow(event, prov);
      const dataset = event.kind!.$case === 'telemetry' ? 'telemetry' : 'detections';
      const [read] = decodeParquet(encodeParquet({ dataset, rows: [row] } as never)).rows as Row[];
      expect(read).toMatchObject(prov);
      expect(rowToEvent(read!, 'eu-west')).toEqual(event);
    },
  );
});

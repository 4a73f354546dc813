import { RecordRejectedError } from '@sluice/sinks-core';
import { detectionEvent, telemetryEvent } from '@sluice/sinks-core/testing';
import { toDocument } from './documents';
import { isRetriableMongoError, DocumentRejectedError } from './errors';

const source = {
  stream: 'S',
  seq: 7,
  subject: 'telemetry.clean.eu-west',
  index: 2,
  batchId: 'b',
  publishedAt: new Date(1_000),
  deliveryCount: 1,
};

describe('documents', () => {
  it('maps a telemetry event to a typed document keyed by event_id', () => {
    const now = new Date(2_000);
    const d = toDocument({ id: 'e1', event: telemetryEvent('e1'), source }, now);
    expect(d.kind).toBe('telemetry');
    expect(d.doc).toMatchObject({
      _id: 'e1',
      device_id: 'dev-1',
      sensor_type: 'engine_temp',
      value: 21.5,
      ingest: { seq: 7, index: 2, batch_id: 'b', published_at: new Date(1_000), captured_at: now },
    });
    expect(d.kind === 'telemetry' && d.doc.event_time).toBeInstanceOf(Date);
    expect(d.values).toEqual({ region: 'eu-west', sensor_type: 'engine_temp' });
  });

  it('maps detections with bbox subdocuments', () => {
    const d = toDocument({ id: 'd1', event: detectionEvent('d1'), source });
    expect(d.kind).toBe('detection');
    if (d.kind !== 'detection') return;
    expect(d.doc.detections[0]!.bbox).toEqual({ left: 0.1, top: 0.2, width: 0.3, height: 0.4 });
    expect(d.values).toEqual({ region: 'eu-west', stream_id: 'cam-1' });
  });

  it('rejects an event without time', () => {
    const e = telemetryEvent('e2');
    if (e.kind?.$case === 'telemetry') e.kind.value.eventTime = undefined;
    expect(() => toDocument({ id: 'e2', event: e, source })).toThrow(RecordRejectedError);
  });

  it('classifies errors', () => {
    expect(isRetriableMongoError(new DocumentRejectedError(2, 'bad key'))).toBe(false);
    expect(isRetriableMongoError(new Error('connection reset'))).toBe(true);
  });
});

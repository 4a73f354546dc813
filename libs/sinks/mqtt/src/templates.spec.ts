import { toExportRecord } from '@sluice/sinks-core';
import { detectionEvent, telemetryEvent } from '@sluice/sinks-core/testing';
import { parseTopicTemplate } from './templates';

describe('topic templates', () => {
  it('keeps each value one level: "/", "+", "#" and control characters become _', () => {
    const t = parseTopicTemplate('detections/{stream_id}/{label}', 'detection', 'S');
    const frame = detectionEvent('d');
    if (frame.kind?.$case === 'detection') {
      frame.kind.value.streamId = 'cam/1+#';
      frame.kind.value.detections[0]!.label = 'per\u0000son\n';
    }
    expect(t.render(toExportRecord(frame))).toEqual(['detections/cam_1__/per_son_']);
  });

  it('lets a first level from data start with "$" (the broker decides), but not the template', () => {
    const t = parseTopicTemplate('{region}/t/{device_id}', 'telemetry', 'S');
    expect(t.render(toExportRecord(telemetryEvent('e', { region: '$SYS' })))).toEqual([
      '$SYS/t/dev-1',
    ]);
    expect(() => parseTopicTemplate('$share/{region}', 'telemetry', 'S')).toThrow(/reserved/);
    expect(() => parseTopicTemplate('a//{region}', 'telemetry', 'S')).toThrow(/empty topic level/);
  });
});

import { wirePath } from './index';

describe('wirePath', () => {
  it.each([
    ['telemetry.event_id', 1, 'event_id'],
    ['telemetry.event_time', 1, 'event_time'],
    ['telemetry.region', 1, 'region'],
    ['telemetry.value', 1, 'value'],
    ['telemetry.attributes', 1, 'attributes'],
    ['telemetry.attributes["hull"]', 1, 'attributes.hull'],
    ['telemetry.attributes["rack.slot"]', 2, 'attributes["rack.slot"]'],
    ['telemetry.event_id', 2, 'id'],
    ['telemetry.event_time', 2, 'time'],
    ['telemetry.device_id', 2, 'device.id'],
    ['telemetry.firmware_version', 2, 'device.firmware'],
    ['telemetry.sensor_type', 2, 'reading.sensor'],
    ['telemetry.value', 2, 'reading.value'],
    ['telemetry.region', 2, 'region'],
    ['detection.frame_time', 2, 'time'],
    ['detection.stream_id', 2, 'detections.stream'],
    ['detection.detections', 2, 'detections.objects'],
    ['detection.detections[3].bbox', 2, 'detections.objects[3].bbox'],
    ['kind', 2, ''],
    ['batch', 1, 'batch'],
  ] as const)('maps %s of a v%d event to %j', (canonical, version, wire) => {
    expect(wirePath(canonical, version)).toBe(wire);
  });

  it('names the v1 time alias when the event used it', () => {
    expect(wirePath('telemetry.event_time', 1, 'timestamp')).toBe('timestamp');
  });
});

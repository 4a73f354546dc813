import type { Event } from '@sluice/contracts';

/** A canonical event as the JSON wire object of `version` (detections are always version 2). */
export function toWireJson(e: Event, version: 1 | 2): Record<string, unknown> {
  const kind = e.kind!;
  const time = (d: Date | undefined) =>
    d && Number.isFinite(d.getTime()) ? d.toISOString() : null;
  if (kind.$case === 'detection') {
    const v = kind.value;
    return {
      schema_version: 2,
      id: v.eventId,
      time: time(v.frameTime),
      region: v.region,
      device: { id: v.deviceId, firmware: v.firmwareVersion },
      detections: {
        stream: v.streamId,
        objects: v.detections.map((d) => ({
          object_id: d.objectId,
          class_id: d.classId,
          label: d.label,
          confidence: d.confidence,
          tracker_id: d.trackerId,
          bbox: d.bbox,
        })),
      },
      attributes: v.attributes,
    };
  }
  const v = kind.value;
  // NaN has no JSON form; send it as a string so the malformed event reaches the gateway.
  const value = Number.isFinite(v.value) ? v.value : 'NaN';
  if (version === 1) {
    return {
      event_id: v.eventId,
      device_id: v.deviceId,
      timestamp: time(v.eventTime),
      sensor_type: v.sensorType,
      value,
      unit: v.unit,
      firmware_version: v.firmwareVersion,
      region: v.region,
      attributes: v.attributes,
    };
  }
  return {
    schema_version: 2,
    id: v.eventId,
    time: time(v.eventTime),
    region: v.region,
    device: { id: v.deviceId, firmware: v.firmwareVersion },
    reading: { sensor: v.sensorType, value, unit: v.unit },
    attributes: v.attributes,
  };
}

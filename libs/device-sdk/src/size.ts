import type { Event } from '@sluice/contracts';

// Per-field overhead of the protobuf encoding (tag, length prefix, nested message headers), rounded up.
const EVENT_OVERHEAD = 56;
const DETECTION_OVERHEAD = 48;
const ATTRIBUTE_OVERHEAD = 6;

function attributesSize(attributes: { [key: string]: string } | undefined): number {
  let n = 0;
  if (attributes === undefined) return 0;
  for (const k in attributes) n += ATTRIBUTE_OVERHEAD + k.length + (attributes[k]?.length ?? 0);
  return n;
}

/**
 * Estimated encoded size of an event, bytes: string lengths plus a fixed overhead per field. Exact
 * for ASCII text up to the overheads; text outside ASCII encodes up to 3 bytes per UTF-16 unit, which
 * the sender's exact check on the encoded batch catches. No allocation: it only reads lengths.
 */
export function estimateEventBytes(event: Event): number {
  const kind = event.kind;
  if (kind === undefined) return EVENT_OVERHEAD;
  if (kind.$case === 'telemetry') {
    const v = kind.value;
    return (
      EVENT_OVERHEAD +
      v.eventId.length +
      v.deviceId.length +
      v.sensorType.length +
      v.unit.length +
      v.firmwareVersion.length +
      v.region.length +
      attributesSize(v.attributes)
    );
  }
  const v = kind.value;
  let n =
    EVENT_OVERHEAD +
    v.eventId.length +
    v.deviceId.length +
    v.streamId.length +
    v.firmwareVersion.length +
    v.region.length +
    attributesSize(v.attributes);
  const list = v.detections;
  for (let i = 0; i < list.length; i++) {
    const d = list[i]!;
    n += DETECTION_OVERHEAD + d.objectId.length + d.label.length + d.trackerId.length;
  }
  return n;
}

import type { DetectionEvent, Event, TelemetryEvent } from '../gen/sluice/telemetry/v1/telemetry';
import type { SchemaVersion } from './versions';

/** Every canonical field but `schemaVersion`, which the wire version alone decides. */
type Content<T> = Omit<T, 'schemaVersion'>;

/** The canonical telemetry event; every schema version builds it here. */
export function telemetryEvent(
  content: Content<TelemetryEvent>,
  schemaVersion: SchemaVersion,
): Event {
  return { kind: { $case: 'telemetry', value: { ...content, schemaVersion } } };
}

/** The canonical detection event; every schema version builds it here. */
export function detectionEvent(
  content: Content<DetectionEvent>,
  schemaVersion: SchemaVersion,
): Event {
  return { kind: { $case: 'detection', value: { ...content, schemaVersion } } };
}

/**
 * The event with `schemaVersion` set to 0, the only field that differs between the schema
 * versions of the same reading. Two wire events describe the same thing exactly when their
 * results are deep-equal (for example a device re-sending a v1 event as v2 after an upgrade).
 */
export function withoutSchemaVersion(event: Event): Event {
  const kind = event.kind;
  if (kind === undefined) return { kind: undefined };
  switch (kind.$case) {
    case 'telemetry':
      return { kind: { $case: 'telemetry', value: { ...kind.value, schemaVersion: 0 } } };
    case 'detection':
      return { kind: { $case: 'detection', value: { ...kind.value, schemaVersion: 0 } } };
  }
}

"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.telemetryEvent = telemetryEvent;
exports.detectionEvent = detectionEvent;
exports.withoutSchemaVersion = withoutSchemaVersion;
/** The canonical telemetry event; every schema version builds it here. */
function telemetryEvent(content, schemaVersion) {
    return { kind: { $case: 'telemetry', value: { ...content, schemaVersion } } };
}
/** The canonical detection event; every schema version builds it here. */
function detectionEvent(content, schemaVersion) {
    return { kind: { $case: 'detection', value: { ...content, schemaVersion } } };
}
/**
 * The event with `schemaVersion` set to 0, the only field that differs between the schema
 * versions of the same reading. Two wire events describe the same thing exactly when their
 * results are deep-equal (for example a device re-sending a v1 event as v2 after an upgrade).
 */
function withoutSchemaVersion(event) {
    const kind = event.kind;
    if (kind === undefined)
        return { kind: undefined };
    switch (kind.$case) {
        case 'telemetry':
            return { kind: { $case: 'telemetry', value: { ...kind.value, schemaVersion: 0 } } };
        case 'detection':
            return { kind: { $case: 'detection', value: { ...kind.value, schemaVersion: 0 } } };
    }
}
//# sourceMappingURL=canonical.js.map
"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.createV1Parser = void 0;
const fields_1 = require("./fields");
const canonical_1 = require("./canonical");
const result_1 = require("./result");
const createV1Parser = (limits, unknownFields) => {
    const schema = (0, fields_1.objectOf)({
        schema_version: (0, fields_1.optional)((input) => (input === 1 ? 1 : new fields_1.Invalid('must be 1'))),
        event_id: (0, fields_1.required)((0, fields_1.eventId)(limits.maxEventIdLength)),
        device_id: (0, fields_1.required)((0, fields_1.text)(limits.maxDeviceIdLength)),
        timestamp: (0, fields_1.required)(fields_1.time),
        sensor_type: (0, fields_1.required)((0, fields_1.text)(limits.maxTextLength)),
        value: (0, fields_1.required)(fields_1.finiteNumber),
        unit: (0, fields_1.required)((0, fields_1.text)(limits.maxTextLength)),
        firmware_version: (0, fields_1.optional)((0, fields_1.text)(limits.maxTextLength, { allowEmpty: true })),
        region: (0, fields_1.required)(fields_1.region),
        attributes: (0, fields_1.attributes)(limits),
    }, unknownFields);
    return {
        idField: 'event_id',
        parse(input) {
            const result = schema.safeParse(input);
            if (!result.success)
                return { ok: false, errors: (0, result_1.fieldErrors)(result.error.issues) };
            const v1 = result.data;
            const event = (0, canonical_1.telemetryEvent)({
                eventId: v1.event_id,
                deviceId: v1.device_id,
                eventTime: v1.timestamp,
                sensorType: v1.sensor_type,
                value: v1.value,
                unit: v1.unit,
                firmwareVersion: v1.firmware_version ?? '',
                region: v1.region,
                attributes: v1.attributes ?? {},
            }, 1);
            return { ok: true, event };
        },
    };
};
exports.createV1Parser = createV1Parser;
//# sourceMappingURL=v1.js.map
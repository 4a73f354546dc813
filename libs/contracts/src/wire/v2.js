"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.createV2Parser = void 0;
// Schema version 2: nested, carrying either one reading or the detections of one frame.
const zod_1 = require("zod");
const canonical_1 = require("./canonical");
const fields_1 = require("./fields");
const result_1 = require("./result");
/** Rounding slack for `left + width <= 1` and `top + height <= 1`. */
const FRAME_EPSILON = 1e-6;
const createV2Parser = (limits, unknownFields) => {
    const maxText = limits.maxTextLength;
    const device = (0, fields_1.objectOf)({
        id: (0, fields_1.required)((0, fields_1.text)(limits.maxDeviceIdLength)),
        firmware: (0, fields_1.optional)((0, fields_1.text)(maxText, { allowEmpty: true })),
    }, unknownFields);
    const reading = (0, fields_1.objectOf)({
        sensor: (0, fields_1.required)((0, fields_1.text)(maxText)),
        value: (0, fields_1.required)(fields_1.finiteNumber),
        unit: (0, fields_1.required)((0, fields_1.text)(maxText)),
    }, unknownFields);
    const coordinate = (0, fields_1.required)((0, fields_1.unitInterval)('(normalised to the frame)'));
    const bbox = (0, fields_1.objectOf)({ left: coordinate, top: coordinate, width: coordinate, height: coordinate }, unknownFields).superRefine((box, ctx) => {
        if (box.left + box.width > 1 + FRAME_EPSILON) {
            ctx.addIssue({
                code: 'custom',
                path: ['width'],
                message: `left + width must be at most 1 (the box must lie inside the frame), got ${box.left} + ${box.width}`,
            });
        }
        if (box.top + box.height > 1 + FRAME_EPSILON) {
            ctx.addIssue({
                code: 'custom',
                path: ['height'],
                message: `top + height must be at most 1 (the box must lie inside the frame), got ${box.top} + ${box.height}`,
            });
        }
    });
    const detection = (0, fields_1.objectOf)({
        object_id: (0, fields_1.required)((0, fields_1.text)(maxText)),
        class_id: (0, fields_1.required)(fields_1.uint32),
        label: (0, fields_1.required)((0, fields_1.text)(maxText)),
        confidence: (0, fields_1.required)((0, fields_1.unitInterval)()),
        tracker_id: (0, fields_1.optional)((0, fields_1.trackerId)(maxText)),
        bbox,
    }, unknownFields);
    const objects = zod_1.z
        .array(detection, {
        error: (issue) => issue.input === undefined
            ? 'is required'
            : `must be an array, got ${(0, result_1.describeInput)(issue.input)}`,
    })
        .max(limits.maxDetections, {
        error: (issue) => `must have at most ${limits.maxDetections} objects, got ${Array.isArray(issue.input) ? issue.input.length : '?'}`,
    })
        .superRefine((list, ctx) => {
        const firstIndex = new Map();
        list.forEach((item, index) => {
            const first = firstIndex.get(item.object_id);
            if (first === undefined)
                firstIndex.set(item.object_id, index);
            else {
                ctx.addIssue({
                    code: 'custom',
                    path: [index, 'object_id'],
                    message: `must be unique within the event; objects[${first}] has the same id ${JSON.stringify(item.object_id)}`,
                });
            }
        });
    });
    const detections = (0, fields_1.objectOf)({ stream: (0, fields_1.required)((0, fields_1.text)(maxText)), objects }, unknownFields);
    const schema = (0, fields_1.objectOf)({
        schema_version: (0, fields_1.required)((input) => (input === 2 ? 2 : new fields_1.Invalid('must be 2'))),
        id: (0, fields_1.required)((0, fields_1.eventId)(limits.maxEventIdLength)),
        time: (0, fields_1.required)(fields_1.time),
        region: (0, fields_1.required)(fields_1.region),
        device,
        reading: reading.nullish(),
        detections: detections.nullish(),
        attributes: (0, fields_1.attributes)(limits),
    }, unknownFields);
    return {
        idField: 'id',
        parse(input) {
            const errors = [];
            const result = schema.safeParse(input);
            if (!result.success)
                errors.push(...(0, result_1.fieldErrors)(result.error.issues));
            const hasReading = input['reading'] !== undefined && input['reading'] !== null;
            const hasDetections = input['detections'] !== undefined && input['detections'] !== null;
            if (hasReading && hasDetections) {
                errors.push({
                    path: 'detections',
                    message: 'must not be sent together with "reading"; send exactly one of the two',
                });
            }
            else if (!hasReading && !hasDetections) {
                errors.push({
                    path: 'reading',
                    message: 'is required unless "detections" is sent; send exactly one of the two',
                });
            }
            if (!result.success || errors.length > 0)
                return { ok: false, errors };
            const v2 = result.data;
            const common = {
                eventId: v2.id,
                deviceId: v2.device.id,
                firmwareVersion: v2.device.firmware ?? '',
                region: v2.region,
                attributes: v2.attributes ?? {},
            };
            if (v2.reading) {
                const event = (0, canonical_1.telemetryEvent)({
                    ...common,
                    eventTime: v2.time,
                    sensorType: v2.reading.sensor,
                    value: v2.reading.value,
                    unit: v2.reading.unit,
                }, 2);
                return { ok: true, event };
            }
            const frame = v2.detections;
            // Unreachable: exactly one of reading/detections was checked above.
            if (!frame)
                throw new Error('v2 event has neither reading nor detections');
            const event = (0, canonical_1.detectionEvent)({
                ...common,
                streamId: frame.stream,
                frameTime: v2.time,
                // float fields are rounded to float32 now, so the canonical event survives encode/decode unchanged.
                detections: frame.objects.map((item) => ({
                    objectId: item.object_id,
                    classId: item.class_id,
                    label: item.label,
                    confidence: Math.fround(item.confidence),
                    trackerId: item.tracker_id ?? '',
                    bbox: {
                        left: Math.fround(item.bbox.left),
                        top: Math.fround(item.bbox.top),
                        width: Math.fround(item.bbox.width),
                        height: Math.fround(item.bbox.height),
                    },
                })),
            }, 2);
            return { ok: true, event };
        },
    };
};
exports.createV2Parser = createV2Parser;
//# sourceMappingURL=v2.js.map
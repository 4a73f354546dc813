// Schema version 2: nested, carrying either one reading or the detections of one frame.
import { z } from 'zod';
import { detectionEvent, telemetryEvent } from './canonical';
import {
  Invalid,
  attributes,
  eventId,
  finiteNumber,
  objectOf,
  optional,
  region,
  required,
  text,
  time,
  trackerId,
  uint32,
  unitInterval,
} from './fields';
import { describeInput, fieldErrors, type FieldError } from './result';
import type { VersionParserFactory } from './versions';

/** Rounding slack for `left + width <= 1` and `top + height <= 1`. */
const FRAME_EPSILON = 1e-6;

export const createV2Parser: VersionParserFactory = (limits, unknownFields) => {
  const maxText = limits.maxTextLength;
  const device = objectOf(
    {
      id: required(text(limits.maxDeviceIdLength)),
      firmware: optional(text(maxText, { allowEmpty: true })),
    },
    unknownFields,
  );
  const reading = objectOf(
    {
      sensor: required(text(maxText)),
      value: required(finiteNumber),
      unit: required(text(maxText)),
    },
    unknownFields,
  );
  const coordinate = required(unitInterval('(normalised to the frame)'));
  const bbox = objectOf(
    { left: coordinate, top: coordinate, width: coordinate, height: coordinate },
    unknownFields,
  ).superRefine((box, ctx) => {
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
  const detection = objectOf(
    {
      object_id: required(text(maxText)),
      class_id: required(uint32),
      label: required(text(maxText)),
      confidence: required(unitInterval()),
      tracker_id: optional(trackerId(maxText)),
      bbox,
    },
    unknownFields,
  );
  const objects = z
    .array(detection, {
      error: (issue) =>
        issue.input === undefined
          ? 'is required'
          : `must be an array, got ${describeInput(issue.input)}`,
    })
    .max(limits.maxDetections, {
      error: (issue) =>
        `must have at most ${limits.maxDetections} objects, got ${
          Array.isArray(issue.input) ? issue.input.length : '?'
        }`,
    })
    .superRefine((list, ctx) => {
      const firstIndex = new Map<string, number>();
      list.forEach((item, index) => {
        const first = firstIndex.get(item.object_id);
        if (first === undefined) firstIndex.set(item.object_id, index);
        else {
          ctx.addIssue({
            code: 'custom',
            path: [index, 'object_id'],
            message: `must be unique within the event; objects[${first}] has the same id ${JSON.stringify(item.object_id)}`,
          });
        }
      });
    });
  const detections = objectOf({ stream: required(text(maxText)), objects }, unknownFields);

  const schema = objectOf(
    {
      schema_version: required((input) => (input === 2 ? 2 : new Invalid('must be 2'))),
      id: required(eventId(limits.maxEventIdLength)),
      time: required(time),
      region: required(region),
      device,
      reading: reading.nullish(),
      detections: detections.nullish(),
      attributes: attributes(limits),
    },
    unknownFields,
  );

  return {
    idField: 'id',
    parse(input) {
      const errors: FieldError[] = [];
      const result = schema.safeParse(input);
      if (!result.success) errors.push(...fieldErrors(result.error.issues));
      const hasReading = input['reading'] !== undefined && input['reading'] !== null;
      const hasDetections = input['detections'] !== undefined && input['detections'] !== null;
      if (hasReading && hasDetections) {
        errors.push({
          path: 'detections',
          message: 'must not be sent together with "reading"; send exactly one of the two',
        });
      } else if (!hasReading && !hasDetections) {
        errors.push({
          path: 'reading',
          message: 'is required unless "detections" is sent; send exactly one of the two',
        });
      }
      if (!result.success || errors.length > 0) return { ok: false, errors };

      const v2: z.output<typeof schema> = result.data;
      const common = {
        eventId: v2.id,
        deviceId: v2.device.id,
        firmwareVersion: v2.device.firmware ?? '',
        region: v2.region,
        attributes: v2.attributes ?? {},
      };
      if (v2.reading) {
        const event = telemetryEvent(
          {
            ...common,
            eventTime: v2.time,
            sensorType: v2.reading.sensor,
            value: v2.reading.value,
            unit: v2.reading.unit,
          },
          2,
        );
        return { ok: true, event };
      }
      const frame = v2.detections;
      // Unreachable: exactly one of reading/detections was checked above.
      if (!frame) throw new Error('v2 event has neither reading nor detections');
      const event = detectionEvent(
        {
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
        },
        2,
      );
      return { ok: true, event };
    },
  };
};

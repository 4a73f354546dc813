// Schema version 1: the flat telemetry object of the seed example. The event time is `event_time`
// (the seed's name); `timestamp` is an accepted alias, and an event must carry exactly one of them.
import { z } from 'zod';
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
} from './fields';
import { telemetryEvent } from './canonical';
import { fieldErrors } from './result';
import type { VersionParserFactory } from './versions';

export const createV1Parser: VersionParserFactory = (limits, unknownFields) => {
  const schema = objectOf(
    {
      schema_version: optional((input) => (input === 1 ? 1 : new Invalid('must be 1'))),
      event_id: required(eventId(limits.maxEventIdLength)),
      device_id: required(text(limits.maxDeviceIdLength)),
      event_time: optional(time),
      timestamp: optional(time),
      sensor_type: required(text(limits.maxTextLength)),
      value: required(finiteNumber),
      unit: required(text(limits.maxTextLength)),
      firmware_version: optional(text(limits.maxTextLength, { allowEmpty: true })),
      region: required(region),
      attributes: attributes(limits),
    },
    unknownFields,
  ).superRefine((v1, ctx) => {
    if (v1.event_time !== undefined && v1.timestamp !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['timestamp'],
        message: 'is an alias of "event_time"; send only one of them',
      });
    } else if (v1.event_time === undefined && v1.timestamp === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['event_time'],
        message: 'is required (or its alias "timestamp")',
      });
    }
  });
  return {
    idField: 'event_id',
    parse(input) {
      const result = schema.safeParse(input);
      if (!result.success) return { ok: false, errors: fieldErrors(result.error.issues) };
      const v1: z.output<typeof schema> = result.data;
      const event = telemetryEvent(
        {
          eventId: v1.event_id,
          deviceId: v1.device_id,
          // One of the two is set: the refinement above refuses the event otherwise.
          eventTime: (v1.event_time ?? v1.timestamp)!,
          sensorType: v1.sensor_type,
          value: v1.value,
          unit: v1.unit,
          firmwareVersion: v1.firmware_version ?? '',
          region: v1.region,
          attributes: v1.attributes ?? {},
        },
        1,
      );
      return { ok: true, event };
    },
  };
};

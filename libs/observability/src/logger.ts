import { trace } from '@opentelemetry/api';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { DeviceHasher } from './device-hash';

export type { Logger } from 'pino';

/** Keys whose values are device ids wherever they appear at the top level of a log record. */
const DEVICE_KEYS = ['device_id', 'deviceId', 'device'];

export interface LoggerOptions {
  /** `service` field on every line. */
  service: string;
  /** pino level. Default `info`. */
  level?: string;
  /** Applied to `device_id`/`deviceId`/`device` fields before a line is written. */
  hashDeviceId: DeviceHasher;
  /** Where lines go. Default stdout. */
  destination?: DestinationStream;
}

/**
 * JSON logger with `trace_id`/`span_id` of the active span on every line. Device ids are replaced
 * by their keyed hash (as `device_hash`) in the formatter, so no call site can log one raw.
 */
export function createLogger(opts: LoggerOptions): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: opts.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      mixin() {
        const ctx = trace.getActiveSpan()?.spanContext();
        return ctx ? { trace_id: ctx.traceId, span_id: ctx.spanId } : {};
      },
      formatters: {
        level: (label) => ({ level: label }),
        log(obj) {
          for (const key of DEVICE_KEYS) {
            const v = obj[key];
            if (typeof v === 'string') {
              delete obj[key];
              obj['device_hash'] = opts.hashDeviceId(v);
            }
          }
          return obj;
        },
      },
    },
    opts.destination ?? pino.destination({ sync: false }),
  );
}

import { type DestinationStream, type Logger } from 'pino';
import type { DeviceHasher } from './device-hash';
export type { Logger } from 'pino';
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
export declare function createLogger(opts: LoggerOptions): Logger;

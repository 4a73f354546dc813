// One validator for both paths: gRPC batches (decoded protobuf) and HTTP bodies (after the wire
// parser upcast them). It checks the canonical Event, so both paths enforce exactly the same rules.
import {
  NAME_TOKEN_PATTERN,
  type DetectionEvent,
  type Event,
  type EventRejection,
  type TelemetryEvent,
} from '@sluice/contracts';

/** Limits of {@link EventValidator}. */
export interface ValidationLimits {
  /** Longest event id. @default 128 */
  maxEventIdLength: number;
  /** Longest device id. @default 128 */
  maxDeviceIdLength: number;
  /** Longest other text field (sensor type, unit, firmware, stream id, labels). @default 128 */
  maxTextLength: number;
  /** Most attributes per event. @default 64 */
  maxAttributes: number;
  /** Longest attribute key and value. @default 256 */
  maxAttributeLength: number;
  /** Most objects in one detection event. @default 256 */
  maxDetections: number;
  /** Largest allowed `event_time - now`, ms. @default 3_600_000 */
  maxFutureSkewMs: number;
  /** Largest allowed `now - event_time`, ms. @default 30 days */
  maxAgeMs: number;
}

export const DEFAULT_VALIDATION_LIMITS: Readonly<ValidationLimits> = Object.freeze({
  maxEventIdLength: 128,
  maxDeviceIdLength: 128,
  maxTextLength: 128,
  maxAttributes: 64,
  maxAttributeLength: 256,
  maxDetections: 256,
  maxFutureSkewMs: 3_600_000,
  maxAgeMs: 30 * 86_400_000,
});

/** Which devices a caller may publish for: a set of ids, or every device (`*`). */
export type DeviceScope = ReadonlySet<string> | '*';

/** Per-request facts the rules depend on. */
export interface ValidationContext {
  /** Arrival time, epoch ms. */
  now: number;
  /** Devices the authenticated caller may publish for. */
  devices: DeviceScope;
}

const EVENT_ID = /^[A-Za-z0-9._:-]+$/;
const NOT_PRINTABLE = /[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/u;
const SCHEMA_VERSIONS_TELEMETRY = new Set([0, 1, 2]);
const SCHEMA_VERSIONS_DETECTION = new Set([0, 2]);

function rejection(index: number, eventId: string, field: string, reason: string): EventRejection {
  return { index, eventId, field, reason };
}

function show(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}

/**
 * Validates canonical events. Allocation-free on the accept path: it returns `undefined` for a good
 * event and builds an {@link EventRejection} (first problem found) only for a bad one.
 */
export class EventValidator {
  readonly limits: Readonly<ValidationLimits>;
  private readonly regions: ReadonlySet<string>;
  private readonly regionList: string;

  constructor(servedRegions: readonly string[], limits: Partial<ValidationLimits> = {}) {
    this.limits = { ...DEFAULT_VALIDATION_LIMITS, ...limits };
    this.regions = new Set(servedRegions);
    this.regionList = [...servedRegions].join(', ');
  }

  /** `undefined` when `event` (at `index` of its batch) may be stored; else why not. */
  check(event: Event, index: number, ctx: ValidationContext): EventRejection | undefined {
    const kind = event.kind;
    if (kind === undefined)
      return rejection(index, '', 'kind', 'must be set: exactly one of "telemetry" or "detection"');
    const e = kind.value;
    const prefix = kind.$case;
    const idProblem = this.eventIdProblem(e.eventId);
    if (idProblem) return rejection(index, '', `${prefix}.event_id`, idProblem);
    const id = e.eventId;
    const deviceProblem = this.textProblem(e.deviceId, this.limits.maxDeviceIdLength, false);
    if (deviceProblem) return rejection(index, id, `${prefix}.device_id`, deviceProblem);
    if (ctx.devices !== '*' && !ctx.devices.has(e.deviceId)) {
      return rejection(
        index,
        id,
        `${prefix}.device_id`,
        `this credential may not publish for device ${show(e.deviceId)}`,
      );
    }
    if (!NAME_TOKEN_PATTERN.test(e.region)) {
      return rejection(
        index,
        id,
        `${prefix}.region`,
        `must be a region token matching ${String(NAME_TOKEN_PATTERN)}, got ${show(e.region)}`,
      );
    }
    if (!this.regions.has(e.region)) {
      return rejection(
        index,
        id,
        `${prefix}.region`,
        `region ${show(e.region)} is not served by this gateway (serves: ${this.regionList}); send it to that region's gateway`,
      );
    }
    if (kind.$case === 'telemetry') return this.checkTelemetry(kind.value, index, ctx);
    return this.checkDetection(kind.value, index, ctx);
  }

  private checkTelemetry(
    e: TelemetryEvent,
    index: number,
    ctx: ValidationContext,
  ): EventRejection | undefined {
    const id = e.eventId;
    const timeProblem = this.timeProblem(e.eventTime, ctx.now);
    if (timeProblem) return rejection(index, id, 'telemetry.event_time', timeProblem);
    let p = this.textProblem(e.sensorType, this.limits.maxTextLength, false);
    if (p) return rejection(index, id, 'telemetry.sensor_type', p);
    if (typeof e.value !== 'number' || !Number.isFinite(e.value)) {
      return rejection(
        index,
        id,
        'telemetry.value',
        `must be a finite number, got ${String(e.value)}`,
      );
    }
    p = this.textProblem(e.unit, this.limits.maxTextLength, false);
    if (p) return rejection(index, id, 'telemetry.unit', p);
    p = this.textProblem(e.firmwareVersion, this.limits.maxTextLength, true);
    if (p) return rejection(index, id, 'telemetry.firmware_version', p);
    if (!SCHEMA_VERSIONS_TELEMETRY.has(e.schemaVersion)) {
      return rejection(
        index,
        id,
        'telemetry.schema_version',
        `unsupported schema version ${e.schemaVersion}; supported: 1, 2 (0 = native protobuf)`,
      );
    }
    return this.attributesProblem(e.attributes, index, id, 'telemetry');
  }

  private checkDetection(
    e: DetectionEvent,
    index: number,
    ctx: ValidationContext,
  ): EventRejection | undefined {
    const id = e.eventId;
    const timeProblem = this.timeProblem(e.frameTime, ctx.now);
    if (timeProblem) return rejection(index, id, 'detection.frame_time', timeProblem);
    let p = this.textProblem(e.streamId, this.limits.maxTextLength, false);
    if (p) return rejection(index, id, 'detection.stream_id', p);
    p = this.textProblem(e.firmwareVersion, this.limits.maxTextLength, true);
    if (p) return rejection(index, id, 'detection.firmware_version', p);
    if (!SCHEMA_VERSIONS_DETECTION.has(e.schemaVersion)) {
      return rejection(
        index,
        id,
        'detection.schema_version',
        `unsupported schema version ${e.schemaVersion}; supported: 2 (0 = native protobuf)`,
      );
    }
    const list = e.detections;
    if (list.length > this.limits.maxDetections) {
      return rejection(
        index,
        id,
        'detection.detections',
        `must have at most ${this.limits.maxDetections} objects, got ${list.length}`,
      );
    }
    for (let i = 0; i < list.length; i++) {
      const d = list[i]!;
      const at = `detection.detections[${i}]`;
      p = this.textProblem(d.objectId, this.limits.maxTextLength, false);
      if (p) return rejection(index, id, `${at}.object_id`, p);
      p = this.textProblem(d.label, this.limits.maxTextLength, false);
      if (p) return rejection(index, id, `${at}.label`, p);
      if (!unit(d.confidence))
        return rejection(
          index,
          id,
          `${at}.confidence`,
          `must be a number in [0, 1], got ${d.confidence}`,
        );
      const b = d.bbox;
      if (!b) return rejection(index, id, `${at}.bbox`, 'is required');
      if (!unit(b.left) || !unit(b.top) || !unit(b.width) || !unit(b.height)) {
        return rejection(
          index,
          id,
          `${at}.bbox`,
          'every coordinate must be a number in [0, 1] (normalised to the frame)',
        );
      }
      if (b.left + b.width > 1 + 1e-6 || b.top + b.height > 1 + 1e-6) {
        return rejection(
          index,
          id,
          `${at}.bbox`,
          'the box must lie inside the frame (left + width <= 1, top + height <= 1)',
        );
      }
    }
    return this.attributesProblem(e.attributes, index, id, 'detection');
  }

  private eventIdProblem(id: string): string | undefined {
    if (typeof id !== 'string' || id.length === 0) return 'is required';
    if (id.length > this.limits.maxEventIdLength)
      return `must be at most ${this.limits.maxEventIdLength} characters, got ${id.length}`;
    if (!EVENT_ID.test(id)) return `may contain only letters, digits and . _ : -, got ${show(id)}`;
    return undefined;
  }

  private textProblem(value: string, max: number, allowEmpty: boolean): string | undefined {
    if (typeof value !== 'string') return 'must be a string';
    if (value.length === 0) return allowEmpty ? undefined : 'is required';
    if (value.length > max) return `must be at most ${max} characters, got ${value.length}`;
    if (NOT_PRINTABLE.test(value)) return 'must contain only printable characters';
    if (value.charCodeAt(0) === 32 || value.charCodeAt(value.length - 1) === 32)
      return 'must not start or end with a space';
    return undefined;
  }

  private timeProblem(time: Date | undefined, now: number): string | undefined {
    if (time === undefined) return 'is required';
    const t = time.getTime();
    if (!Number.isFinite(t)) return 'must be a valid timestamp';
    if (t - now > this.limits.maxFutureSkewMs) {
      return `is ${Math.round((t - now) / 1000)} s in the future; at most ${Math.round(this.limits.maxFutureSkewMs / 1000)} s of clock skew is allowed (check the device clock)`;
    }
    if (now - t > this.limits.maxAgeMs) {
      return `is ${Math.round((now - t) / 1000)} s old; events older than ${Math.round(this.limits.maxAgeMs / 1000)} s are not accepted`;
    }
    return undefined;
  }

  private attributesProblem(
    attributes: Record<string, string>,
    index: number,
    id: string,
    prefix: string,
  ): EventRejection | undefined {
    let count = 0;
    const max = this.limits.maxAttributeLength;
    for (const key in attributes) {
      if (++count > this.limits.maxAttributes) {
        return rejection(
          index,
          id,
          `${prefix}.attributes`,
          `must have at most ${this.limits.maxAttributes} entries`,
        );
      }
      const value = attributes[key]!;
      if (key.length === 0 || key.length > max)
        return rejection(
          index,
          id,
          `${prefix}.attributes`,
          `key ${show(key)} must be 1..${max} characters`,
        );
      if (typeof value !== 'string' || value.length > max)
        return rejection(
          index,
          id,
          `${prefix}.attributes[${JSON.stringify(key)}]`,
          `must be at most ${max} characters`,
        );
    }
    return undefined;
  }
}

function unit(n: number): boolean {
  return typeof n === 'number' && n >= 0 && n <= 1;
}

import { SluiceError } from '@sluice/errors';
/**
 * Size limits of the JSON wire. Lengths count UTF-16 code units (JavaScript `string.length`),
 * which equals characters for text outside the astral planes. The gateway configures these.
 */
export interface WireLimits {
  /** Maximum length of `event_id` / `id`. @default 128 */
  maxEventIdLength: number;
  /** Maximum length of the device id. @default 128 */
  maxDeviceIdLength: number;
  /**
   * Maximum length of the other text fields: sensor type, unit, firmware version, detection
   * stream, object id, label and tracker id. @default 128
   */
  maxTextLength: number;
  /** Maximum number of entries in `attributes`. @default 64 */
  maxAttributes: number;
  /** Maximum length of one attribute key. @default 256 */
  maxAttributeKeyLength: number;
  /** Maximum length of one attribute value. @default 256 */
  maxAttributeValueLength: number;
  /** Maximum number of objects in one detection event. @default 256 */
  maxDetections: number;
}

/** The defaults documented on {@link WireLimits}. */
export const DEFAULT_WIRE_LIMITS: Readonly<WireLimits> = Object.freeze({
  maxEventIdLength: 128,
  maxDeviceIdLength: 128,
  maxTextLength: 128,
  maxAttributes: 64,
  maxAttributeKeyLength: 256,
  maxAttributeValueLength: 256,
  maxDetections: 256,
});

/** What to do with a JSON field the schema version does not define. */
export type UnknownFieldPolicy = 'reject' | 'ignore';

/** Options of {@link createWireParser}. */
export interface WireParserOptions {
  /** Overrides of {@link DEFAULT_WIRE_LIMITS}; each must be a positive integer. @default {} */
  limits?: Partial<WireLimits>;
  /**
   * `reject`: an unknown field is a field error (a misspelt optional field would otherwise be
   * dropped silently). `ignore`: unknown fields are skipped. @default 'reject'
   */
  unknownFields?: UnknownFieldPolicy;
}

/** A {@link WireParserOptions} value that cannot be used. */
export class InvalidWireOptionsError extends SluiceError {
  override readonly name = 'InvalidWireOptionsError';
  readonly code = 'wire_options_invalid';
}

/** Defaults applied and checked. Throws {@link InvalidWireOptionsError}. */
export function resolveWireOptions(options: WireParserOptions): {
  limits: Readonly<WireLimits>;
  unknownFields: UnknownFieldPolicy;
} {
  const limits: WireLimits = { ...DEFAULT_WIRE_LIMITS };
  for (const [key, value] of Object.entries(options.limits ?? {})) {
    if (!(key in DEFAULT_WIRE_LIMITS)) {
      throw new InvalidWireOptionsError(`unknown wire limit "${key}"`);
    }
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new InvalidWireOptionsError(
        `wire limit ${key} must be a positive integer, got ${String(value)}`,
      );
    }
    limits[key as keyof WireLimits] = value;
  }
  const unknownFields = options.unknownFields ?? 'reject';
  if (unknownFields !== 'reject' && unknownFields !== 'ignore') {
    throw new InvalidWireOptionsError(
      `unknownFields must be "reject" or "ignore", got ${String(unknownFields)}`,
    );
  }
  return { limits: Object.freeze(limits), unknownFields };
}

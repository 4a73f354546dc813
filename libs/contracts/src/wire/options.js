"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.InvalidWireOptionsError = exports.DEFAULT_WIRE_LIMITS = void 0;
exports.resolveWireOptions = resolveWireOptions;
/** The defaults documented on {@link WireLimits}. */
exports.DEFAULT_WIRE_LIMITS = Object.freeze({
    maxEventIdLength: 128,
    maxDeviceIdLength: 128,
    maxTextLength: 128,
    maxAttributes: 64,
    maxAttributeKeyLength: 256,
    maxAttributeValueLength: 256,
    maxDetections: 256,
});
/** A {@link WireParserOptions} value that cannot be used. */
class InvalidWireOptionsError extends Error {
    name = 'InvalidWireOptionsError';
}
exports.InvalidWireOptionsError = InvalidWireOptionsError;
/** Defaults applied and checked. Throws {@link InvalidWireOptionsError}. */
function resolveWireOptions(options) {
    const limits = { ...exports.DEFAULT_WIRE_LIMITS };
    for (const [key, value] of Object.entries(options.limits ?? {})) {
        if (!(key in exports.DEFAULT_WIRE_LIMITS)) {
            throw new InvalidWireOptionsError(`unknown wire limit "${key}"`);
        }
        if (value === undefined)
            continue;
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
            throw new InvalidWireOptionsError(`wire limit ${key} must be a positive integer, got ${String(value)}`);
        }
        limits[key] = value;
    }
    const unknownFields = options.unknownFields ?? 'reject';
    if (unknownFields !== 'reject' && unknownFields !== 'ignore') {
        throw new InvalidWireOptionsError(`unknownFields must be "reject" or "ignore", got ${String(unknownFields)}`);
    }
    return { limits: Object.freeze(limits), unknownFields };
}
//# sourceMappingURL=options.js.map
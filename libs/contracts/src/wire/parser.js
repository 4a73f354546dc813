"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.createWireParser = createWireParser;
exports.parseWireEvent = parseWireEvent;
exports.parseWireBody = parseWireBody;
const options_1 = require("./options");
const result_1 = require("./result");
const fields_1 = require("./fields");
const v1_1 = require("./v1");
const v2_1 = require("./v2");
const versions_1 = require("./versions");
function isObject(value) {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}
const SUPPORTED = versions_1.SUPPORTED_SCHEMA_VERSIONS.join(', ');
/** Throws InvalidWireOptionsError for unusable options. */
function createWireParser(options = {}) {
    const { limits, unknownFields } = (0, options_1.resolveWireOptions)(options);
    const parsers = new Map([
        [1, (0, v1_1.createV1Parser)(limits, unknownFields)],
        [2, (0, v2_1.createV2Parser)(limits, unknownFields)],
    ]);
    const validEventId = (0, fields_1.eventId)(limits.maxEventIdLength);
    const parseEvent = (input) => {
        if (!isObject(input)) {
            return {
                ok: false,
                errors: [{ path: '', message: `must be a JSON object, got ${(0, result_1.describeInput)(input)}` }],
            };
        }
        // An absent schema_version means version 1, which predates the field.
        const version = input['schema_version'] ?? 1;
        const parser = parsers.get(version);
        if (!parser) {
            const message = typeof version === 'number'
                ? `unsupported schema version ${version}; supported versions are ${SUPPORTED}`
                : `must be one of ${SUPPORTED} as a JSON number, got ${(0, result_1.describeInput)(version)}`;
            return { ok: false, errors: [{ path: 'schema_version', message }] };
        }
        const result = parser.parse(input);
        if (result.ok)
            return result;
        const id = validEventId(input[parser.idField]);
        return typeof id === 'string' ? { ...result, eventId: id } : result;
    };
    return {
        limits,
        parseEvent,
        parseBody(body) {
            if (Array.isArray(body)) {
                return {
                    events: body.map((item, index) => ({ ...parseEvent(item), index })),
                };
            }
            if (isObject(body))
                return { events: [{ ...parseEvent(body), index: 0 }] };
            const message = `must be a JSON object or an array of JSON objects, got ${(0, result_1.describeInput)(body)}`;
            return { events: [{ ok: false, errors: [{ path: '', message }], index: 0 }] };
        },
    };
}
let defaultParser;
function parserFor(options) {
    if (options)
        return createWireParser(options);
    defaultParser ??= createWireParser();
    return defaultParser;
}
/**
 * Validates one JSON wire event (schema version 1 or 2) and upcasts it to the canonical Event.
 * With `options`, builds a parser per call: hold a {@link createWireParser} result instead on
 * hot paths.
 */
function parseWireEvent(input, options) {
    return parserFor(options).parseEvent(input);
}
/** {@link parseWireEvent} for a request body holding one event object or an array of them. */
function parseWireBody(body, options) {
    return parserFor(options).parseBody(body);
}
//# sourceMappingURL=parser.js.map
import { resolveWireOptions, type WireLimits, type WireParserOptions } from './options';
import {
  describeInput,
  type IndexedWireResult,
  type WireBodyResult,
  type WireResult,
} from './result';
import { eventId } from './fields';
import { createV1Parser } from './v1';
import { createV2Parser } from './v2';
import { SUPPORTED_SCHEMA_VERSIONS, type VersionParser } from './versions';

/** Parses JSON wire events with one set of options; build once, use for every request. */
export interface WireParser {
  /** The limits in force, defaults applied. */
  readonly limits: Readonly<WireLimits>;
  /** One already-JSON-parsed event of any supported schema version. */
  parseEvent(input: unknown): WireResult;
  /** A request body: one event object, or an array of them (results keep the array order). */
  parseBody(body: unknown): WireBodyResult;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const SUPPORTED = SUPPORTED_SCHEMA_VERSIONS.join(', ');

/** Throws InvalidWireOptionsError for unusable options. */
export function createWireParser(options: WireParserOptions = {}): WireParser {
  const { limits, unknownFields } = resolveWireOptions(options);
  const parsers = new Map<unknown, VersionParser>([
    [1, createV1Parser(limits, unknownFields)],
    [2, createV2Parser(limits, unknownFields)],
  ]);
  const validEventId = eventId(limits.maxEventIdLength);

  const parseEvent = (input: unknown): WireResult => {
    if (!isObject(input)) {
      return {
        ok: false,
        errors: [{ path: '', message: `must be a JSON object, got ${describeInput(input)}` }],
      };
    }
    // An absent schema_version means version 1, which predates the field.
    const version = input['schema_version'] ?? 1;
    const parser = parsers.get(version);
    if (!parser) {
      const message =
        typeof version === 'number'
          ? `unsupported schema version ${version}; supported versions are ${SUPPORTED}`
          : `must be one of ${SUPPORTED} as a JSON number, got ${describeInput(version)}`;
      return { ok: false, errors: [{ path: 'schema_version', message }] };
    }
    const result = parser.parse(input);
    if (result.ok) return result;
    const id = validEventId(input[parser.idField]);
    return typeof id === 'string' ? { ...result, eventId: id } : result;
  };

  return {
    limits,
    parseEvent,
    parseBody(body) {
      if (Array.isArray(body)) {
        return {
          events: body.map((item, index): IndexedWireResult => ({ ...parseEvent(item), index })),
        };
      }
      if (isObject(body)) return { events: [{ ...parseEvent(body), index: 0 }] };
      const message = `must be a JSON object or an array of JSON objects, got ${describeInput(body)}`;
      return { events: [{ ok: false, errors: [{ path: '', message }], index: 0 }] };
    },
  };
}

let defaultParser: WireParser | undefined;

function parserFor(options: WireParserOptions | undefined): WireParser {
  if (options) return createWireParser(options);
  defaultParser ??= createWireParser();
  return defaultParser;
}

/**
 * Validates one JSON wire event (schema version 1 or 2) and upcasts it to the canonical Event.
 * With `options`, builds a parser per call: hold a {@link createWireParser} result instead on
 * hot paths.
 */
export function parseWireEvent(input: unknown, options?: WireParserOptions): WireResult {
  return parserFor(options).parseEvent(input);
}

/** {@link parseWireEvent} for a request body holding one event object or an array of them. */
export function parseWireBody(body: unknown, options?: WireParserOptions): WireBodyResult {
  return parserFor(options).parseBody(body);
}

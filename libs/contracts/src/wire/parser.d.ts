import { type WireLimits, type WireParserOptions } from './options';
import { type WireBodyResult, type WireResult } from './result';
/** Parses JSON wire events with one set of options; build once, use for every request. */
export interface WireParser {
    /** The limits in force, defaults applied. */
    readonly limits: Readonly<WireLimits>;
    /** One already-JSON-parsed event of any supported schema version. */
    parseEvent(input: unknown): WireResult;
    /** A request body: one event object, or an array of them (results keep the array order). */
    parseBody(body: unknown): WireBodyResult;
}
/** Throws InvalidWireOptionsError for unusable options. */
export declare function createWireParser(options?: WireParserOptions): WireParser;
/**
 * Validates one JSON wire event (schema version 1 or 2) and upcasts it to the canonical Event.
 * With `options`, builds a parser per call: hold a {@link createWireParser} result instead on
 * hot paths.
 */
export declare function parseWireEvent(input: unknown, options?: WireParserOptions): WireResult;
/** {@link parseWireEvent} for a request body holding one event object or an array of them. */
export declare function parseWireBody(body: unknown, options?: WireParserOptions): WireBodyResult;

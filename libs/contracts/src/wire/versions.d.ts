import type { Event } from '../gen/sluice/telemetry/v1/telemetry';
import type { UnknownFieldPolicy, WireLimits } from './options';
import type { FieldError } from './result';
/** The JSON wire schema versions accepted, oldest first. */
export declare const SUPPORTED_SCHEMA_VERSIONS: readonly [1, 2];
export type SchemaVersion = (typeof SUPPORTED_SCHEMA_VERSIONS)[number];
/** One schema version's parser: a JSON object in, the canonical event or field errors out. */
export interface VersionParser {
    /** Name of the JSON field holding the event id, to name rejected events. */
    readonly idField: string;
    parse(input: Record<string, unknown>): {
        ok: true;
        event: Event;
    } | {
        ok: false;
        errors: FieldError[];
    };
}
export type VersionParserFactory = (limits: Readonly<WireLimits>, unknownFields: UnknownFieldPolicy) => VersionParser;

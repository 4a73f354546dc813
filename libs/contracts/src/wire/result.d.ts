import type { Event } from '../gen/sluice/telemetry/v1/telemetry';
/** One problem with one field of a wire event. */
export interface FieldError {
    /**
     * Where, in the event's own JSON: `reading.value`, `detections.objects[0].bbox.left`,
     * `attributes["rack.slot"]`; `""` means the event as a whole.
     */
    path: string;
    /** What is wrong and what is expected, for example `must be a finite number, got "NaN"`. */
    message: string;
}
/** Outcome of parsing one wire event. */
export type WireResult = {
    ok: true;
    event: Event;
} | {
    ok: false;
    errors: FieldError[];
    /** The event's id when it was itself valid, so a rejection can name the event. */
    eventId?: string;
};
/** A {@link WireResult} with the event's position in the request body, from 0. */
export type IndexedWireResult = WireResult & {
    index: number;
};
/** Outcome of parsing a request body; one result per event, in body order. */
export interface WireBodyResult {
    events: IndexedWireResult[];
}
/** `["a", "b", 0, "c.d"]` → `a.b[0]["c.d"]`. */
export declare function formatPath(path: readonly PropertyKey[]): string;
/** A short rendering of a rejected input for error messages: `"NaN"`, `12`, `null`, `an array`. */
export declare function describeInput(input: unknown): string;
/** Zod issues as field errors; an unknown-keys issue becomes one error per key. */
export declare function fieldErrors(issues: readonly {
    code?: string;
    path: PropertyKey[];
    message: string;
    keys?: string[];
}[]): FieldError[];

import { type ParsedSubject, type StreamSpec } from './subjects';
/**
 * The streams and subjects of one Sluice installation. The default namespace `''` is the canonical
 * layout of subjects.ts; a namespace (e.g. `staging`, or a test's unique id) prefixes every subject
 * with `<ns>.` and every stream name with `<NS>_`, so several installations or tests share one NATS
 * account without their streams' subjects overlapping.
 */
export interface Topology {
    readonly namespace: string;
    readonly streams: {
        readonly raw: StreamSpec;
        readonly clean: StreamSpec;
        readonly rollups: StreamSpec;
        readonly dlq: StreamSpec;
    };
    readonly filters: {
        readonly raw: string;
        readonly clean: string;
        readonly rollup: string;
        readonly dlq: string;
    };
    raw(region: string): string;
    clean(region: string): string;
    rollup(resolution: string, region: string): string;
    dlq(service: string): string;
    /** {@link parseSubject} of a subject of this namespace; `undefined` for any other. */
    parse(subject: string): ParsedSubject | undefined;
}
/** Builds the topology of `namespace` (a name token, or `''` for the canonical one). */
export declare function topology(namespace?: string): Topology;
